"""Workspaces, API keys and who may do what."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from enum import StrEnum

from .errors import Forbidden, Unauthorized

KEY_PREFIX_LENGTH = 12
_KEY = re.compile(rf"^sk_([a-z0-9]{{{KEY_PREFIX_LENGTH}}})_([A-Za-z0-9_-]{{20,}})$")


class Role(StrEnum):
    ADMIN = "admin"
    MEMBER = "member"


@dataclass(frozen=True)
class Workspace:
    id: str
    name: str
    created_at: str


@dataclass(frozen=True)
class ApiKey:
    workspace_id: str
    prefix: str
    key_hash: str
    user_id: str
    role: Role
    created_at: str


@dataclass(frozen=True)
class Principal:
    """Who is calling: the operator (no workspace) or a user of one workspace."""

    workspace_id: str | None
    user_id: str
    role: Role | None
    is_operator: bool = False

    def require_operator(self) -> None:
        if not self.is_operator:
            raise Forbidden("this action needs the operator key")

    def require_workspace(self) -> str:
        if self.workspace_id is None:
            raise Forbidden("the operator key cannot act inside a workspace; use an API key")
        return self.workspace_id

    def require_admin(self) -> str:
        workspace_id = self.require_workspace()
        if self.role is not Role.ADMIN:
            raise Forbidden("this action needs an admin key")
        return workspace_id


# the operator: whoever holds the operator key, or runs the operator CLI on the database
OPERATOR = Principal(workspace_id=None, user_id="operator", role=None, is_operator=True)


@dataclass(frozen=True)
class IssuedKey:
    """A freshly made key: `secret` is shown once; only `key_hash` is ever stored."""

    prefix: str
    secret: str
    key_hash: str


def hash_key(secret: str) -> str:
    # Keys carry 192 random bits, so a fast hash is safe; a slow KDF would only cost latency.
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def issue_key() -> IssuedKey:
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    prefix = "".join(secrets.choice(alphabet) for _ in range(KEY_PREFIX_LENGTH))
    secret = f"sk_{prefix}_{secrets.token_urlsafe(24)}"
    return IssuedKey(prefix=prefix, secret=secret, key_hash=hash_key(secret))


def key_prefix(secret: str) -> str:
    match = _KEY.match(secret)
    if not match:
        raise Unauthorized("the API key is malformed")
    return match.group(1)


def key_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_key(secret), stored_hash)


def bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise Unauthorized("send 'Authorization: Bearer <api key>'")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("send 'Authorization: Bearer <api key>'")
    return token.strip()
