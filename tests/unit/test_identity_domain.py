"""API keys and principals (pure domain) and the identity service on fakes."""

from __future__ import annotations

import pytest

from chalicelib.domain.errors import Forbidden, NotFound, Unauthorized
from chalicelib.domain.identity import Role, bearer_token, issue_key, key_matches, key_prefix
from chalicelib.services.identity import IdentityService
from tests.unit.fakes import FakeIdentityStore


def test_issued_keys_are_random_and_only_their_hash_matches():
    first, second = issue_key(), issue_key()
    assert first.secret != second.secret and first.prefix != second.prefix
    assert key_prefix(first.secret) == first.prefix
    assert key_matches(first.secret, first.key_hash)
    assert not key_matches(second.secret, first.key_hash)
    assert first.secret not in first.key_hash


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer   ", "Token abc", "abc"])
def test_bearer_header_is_required(header):
    with pytest.raises(Unauthorized):
        bearer_token(header)


def _service() -> IdentityService:
    return IdentityService(FakeIdentityStore(), "op_secret", lambda: "2026-12-04T10:00:00Z")


def test_operator_then_admin_then_member():
    service = _service()
    operator = service.authenticate("Bearer op_secret")
    made = service.create_workspace(operator, "W")
    admin = service.authenticate(f"Bearer {made.admin_key}")
    assert admin.workspace_id == made.workspace.id and admin.role is Role.ADMIN
    secret, key = service.create_api_key(admin, "u1", Role.MEMBER)
    member = service.authenticate(f"Bearer {secret}")
    assert member.role is Role.MEMBER and member.user_id == "u1"
    with pytest.raises(Forbidden):
        service.create_api_key(member, "u2", Role.ADMIN)
    with pytest.raises(Forbidden):
        service.create_workspace(admin, "other")
    service.revoke_api_key(admin, key.prefix)
    with pytest.raises(Unauthorized):
        service.authenticate(f"Bearer {secret}")


def test_a_key_of_another_workspace_cannot_be_revoked():
    service = _service()
    operator = service.authenticate("Bearer op_secret")
    a = service.authenticate(f"Bearer {service.create_workspace(operator, 'A').admin_key}")
    b_key = service.create_workspace(operator, "B").admin_key
    with pytest.raises(NotFound):
        service.revoke_api_key(a, key_prefix(b_key))
    assert service.authenticate(f"Bearer {b_key}").role is Role.ADMIN


def test_a_forged_key_with_a_real_prefix_is_rejected():
    service = _service()
    made = service.create_workspace(service.authenticate("Bearer op_secret"), "W")
    forged = made.admin_key[:16] + "x" * 32
    with pytest.raises(Unauthorized):
        service.authenticate(f"Bearer {forged}")
