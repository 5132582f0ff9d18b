"""Workspaces, API keys and the 401/403 rules (SPEC: Tenancy and identity)."""

from __future__ import annotations

from tests.conftest import OPERATOR_KEY


def test_operator_creates_workspace_and_admin_key_works(http):
    # Given the operator key, when a workspace is created
    made = http("POST", "/workspaces", OPERATOR_KEY, {"name": "Acme community"})
    # Then it answers 201 with an admin key that works inside that workspace
    assert made.status == 201
    assert made.body["name"] == "Acme community"
    assert made.body["admin_key"].startswith("sk_")
    me = http("GET", "/workspace", made.body["admin_key"])
    assert me.status == 200
    assert me.body["workspace_id"] == made.body["workspace_id"]
    assert me.body["counts"] == {"contacts": 0, "organizations": 0, "activities": 0}


def test_keys_are_stored_hashed_never_in_clear(http, workspace, settings):
    from chalicelib.persistence.models import ApiKeyItem

    prefix = workspace.member_key.split("_")[1]
    stored = ApiKeyItem.get(f"KEY#{prefix}", "#key")
    assert workspace.member_key not in str(stored.attribute_values)
    assert stored.key_hash != workspace.member_key and len(stored.key_hash) == 64


def test_admin_creates_and_revokes_member_key(http, workspace):
    made = http("POST", "/api-keys", workspace.admin_key, {"user_id": "sam", "role": "member"})
    assert made.status == 201 and made.body["role"] == "member"
    assert http("GET", "/workspace", made.body["key"]).status == 200
    # When the admin revokes it, then the key stops working at once
    assert http("DELETE", f"/api-keys/{made.body['prefix']}", workspace.admin_key).status == 204
    gone = http("GET", "/workspace", made.body["key"])
    assert gone.status == 401 and gone.body["error"]["code"] == "unauthorized"
    # and revoking it again is a 404
    again = http("DELETE", f"/api-keys/{made.body['prefix']}", workspace.admin_key)
    assert again.status == 404


def test_missing_or_invalid_key_is_401(http):
    for headers in ({}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer"},
                    {"Authorization": "Bearer sk_nope"},
                    {"Authorization": "Bearer sk_abcdefghijkl_notarealsecretatallxxxxxx"}):
        answer = http("GET", "/workspace", headers=headers)
        assert answer.status == 401, headers
        assert answer.body["error"]["code"] == "unauthorized"


def test_valid_key_forbidden_action_is_403(http, workspace):
    # a member may not make keys; a workspace key may not make workspaces;
    # the operator key does not act inside a workspace
    member = http("POST", "/api-keys", workspace.member_key, {"user_id": "x", "role": "admin"})
    assert member.status == 403 and member.body["error"]["code"] == "forbidden"
    admin = http("POST", "/workspaces", workspace.admin_key, {"name": "mine"})
    assert admin.status == 403
    operator = http("POST", "/contacts", OPERATOR_KEY, {"name": "x"})
    assert operator.status == 403
    member_revoke = http("DELETE", f"/api-keys/{workspace.admin_key.split('_')[1]}",
                         workspace.member_key)
    assert member_revoke.status == 403
    assert http("GET", "/workspace", workspace.admin_key).status == 200


def test_bad_identity_input(http, workspace):
    cases = [
        (OPERATOR_KEY, "/workspaces", None, "", "invalid_json"),
        (OPERATOR_KEY, "/workspaces", None, "{not json", "invalid_json"),
        (OPERATOR_KEY, "/workspaces", {}, None, "invalid_request"),
        (OPERATOR_KEY, "/workspaces", {"name": ""}, None, "invalid_request"),
        (OPERATOR_KEY, "/workspaces", {"name": 42}, None, "invalid_request"),
        (OPERATOR_KEY, "/workspaces", {"name": "x", "plan": "pro"}, None, "invalid_request"),
        (OPERATOR_KEY, "/workspaces", ["x"], None, "invalid_request"),
        (workspace.admin_key, "/api-keys", {"user_id": "u", "role": "owner"}, None,
         "invalid_request"),
        (workspace.admin_key, "/api-keys", {"role": "member"}, None, "invalid_request"),
    ]
    for key, path, body, raw, code in cases:
        answer = http("POST", path, key, body=body, raw=raw)
        assert answer.status == 400, (path, body, raw, answer.body)
        assert answer.body["error"]["code"] == code
        assert answer.body["error"]["details"]["path"].startswith("$")
    unknown_field = http("POST", "/workspaces", OPERATOR_KEY, {"name": "x", "plan": "pro"})
    assert unknown_field.body["error"]["details"]["path"] == "$.plan"
    huge = http("POST", "/workspaces", OPERATOR_KEY, raw='{"name": "' + "x" * 1_100_000 + '"}')
    assert huge.status == 413 and huge.body["error"]["code"] == "payload_too_large"
