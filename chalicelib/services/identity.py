"""Workspaces, API keys and authentication."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass

from chalicelib.domain.errors import NotFound, Unauthorized
from chalicelib.domain.identity import (
    OPERATOR,
    ApiKey,
    Principal,
    Role,
    Workspace,
    bearer_token,
    issue_key,
    key_matches,
    key_prefix,
)
from chalicelib.domain.ids import new_id
from chalicelib.services.ports import IdentityStore


@dataclass(frozen=True)
class NewWorkspace:
    workspace: Workspace
    admin_key: str


class IdentityService:
    def __init__(self, store: IdentityStore, operator_key: str, now: Callable[[], str]) -> None:
        self._store = store
        self._operator_key = operator_key
        self._now = now

    def authenticate(self, authorization: str | None) -> Principal:
        """The caller behind an `Authorization: Bearer ...` header, or Unauthorized."""
        token = bearer_token(authorization)
        if self._operator_key and hmac.compare_digest(token.encode(), self._operator_key.encode()):
            return OPERATOR
        key = self._store.get_key(key_prefix(token))
        if key is None or not key_matches(token, key.key_hash):
            raise Unauthorized("the API key is not valid")
        return Principal(workspace_id=key.workspace_id, user_id=key.user_id, role=key.role)

    def create_workspace(self, caller: Principal, name: str) -> NewWorkspace:
        """Operator only: a new workspace and the first admin key for it."""
        caller.require_operator()
        workspace = Workspace(id=new_id("ws"), name=name, created_at=self._now())
        self._store.add_workspace(workspace)
        admin = self._issue(workspace.id, "admin", Role.ADMIN)
        return NewWorkspace(workspace=workspace, admin_key=admin)

    def get_workspace(self, caller: Principal) -> tuple[Workspace, dict[str, int]]:
        workspace_id = caller.require_workspace()
        workspace = self._store.get_workspace(workspace_id)
        if workspace is None:
            raise NotFound("workspace not found")
        return workspace, self._store.workspace_counts(workspace_id)

    def create_api_key(self, caller: Principal, user_id: str, role: Role) -> tuple[str, ApiKey]:
        workspace_id = caller.require_admin()
        secret = self._issue(workspace_id, user_id, role)
        key = self._store.get_key(key_prefix(secret))
        assert key is not None
        return secret, key

    def revoke_api_key(self, caller: Principal, prefix: str) -> None:
        workspace_id = caller.require_admin()
        key = self._store.get_key(prefix)
        if key is None or key.workspace_id != workspace_id:
            raise NotFound(f"no API key with prefix '{prefix}'", details={"path": "prefix"})
        self._store.delete_key(prefix)

    def _issue(self, workspace_id: str, user_id: str, role: Role) -> str:
        issued = issue_key()
        self._store.add_key(ApiKey(workspace_id=workspace_id, prefix=issued.prefix,
                                   key_hash=issued.key_hash, user_id=user_id, role=role,
                                   created_at=self._now()))
        return issued.secret
