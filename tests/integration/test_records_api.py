"""Contacts, organizations, activities and the profile, through the routes Lambda runs."""

from __future__ import annotations

from tests.helpers import tapped_runtime


def test_contact_lifecycle(http, workspace):
    org = http("POST", "/organizations", workspace.member_key,
               {"name": "Acme", "domain": "https://www.Acme.com/", "tags": ["Customer"],
                "attributes": {"employee_count": 1200}})
    assert org.status == 201 and org.body["domain"] == "acme.com"
    made = http("POST", "/contacts", workspace.member_key, {
        "email": "Ada@Acme.com", "name": "Ada", "title": "VP", "org_id": org.body["id"],
        "tags": ["Economic buyer", "economic BUYER", " Ideal persona "], "country": "US",
        "attributes": {"seniority": "exec", "score": 9.5}})
    assert made.status == 201, made.body
    contact = made.body
    assert contact["tags"] == ["Economic buyer", "Ideal persona"]
    assert contact["email"] == "Ada@Acme.com"
    assert contact["created_at"].endswith("Z") and contact["last_active_at"] is None

    profile = http("GET", f"/contacts/{contact['id']}", workspace.member_key)
    assert profile.status == 200
    assert profile.body["organization"]["name"] == "Acme"
    assert profile.body["segments"] == []
    assert profile.body["attributes"] == {"seniority": "exec", "score": 9.5}

    patched = http("PATCH", f"/contacts/{contact['id']}", workspace.member_key,
                   {"title": None, "attributes": {"score": None, "plan": "pro"}})
    assert patched.status == 200
    assert patched.body["title"] is None and patched.body["name"] == "Ada"
    assert patched.body["attributes"] == {"seniority": "exec", "plan": "pro"}

    assert http("DELETE", f"/contacts/{contact['id']}", workspace.member_key).status == 204
    assert http("GET", f"/contacts/{contact['id']}", workspace.member_key).status == 404
    # the email is free again once its contact is gone
    again = http("POST", "/contacts", workspace.member_key, {"email": "ada@acme.com"})
    assert again.status == 201


def test_email_and_domain_are_unique_case_insensitively(http, workspace):
    first = http("POST", "/contacts", workspace.member_key, {"email": "bo@x.io"})
    dup = http("POST", "/contacts", workspace.member_key, {"email": "BO@X.IO"})
    assert dup.status == 409
    assert dup.body["error"]["code"] == "email_taken"
    assert dup.body["error"]["details"]["existing_id"] == first.body["id"]
    other = http("POST", "/contacts", workspace.member_key, {"email": "cy@x.io"})
    moved = http("PATCH", f"/contacts/{other.body['id']}", workspace.member_key,
                 {"email": "Bo@x.io"})
    assert moved.status == 409 and moved.body["error"]["details"]["existing_id"] == first.body["id"]
    # the failed change left the contact as it was
    assert http("GET", f"/contacts/{other.body['id']}",
                workspace.member_key).body["email"] == "cy@x.io"
    # changing an email frees the old one
    assert http("PATCH", f"/contacts/{first.body['id']}", workspace.member_key,
                {"email": "bo2@x.io"}).status == 200
    assert http("POST", "/contacts", workspace.member_key, {"email": "bo@x.io"}).status == 201

    org = http("POST", "/organizations", workspace.member_key, {"name": "X", "domain": "x.io"})
    dup_org = http("POST", "/organizations", workspace.member_key,
                   {"name": "X2", "domain": "WWW.X.IO"})
    assert dup_org.status == 409 and dup_org.body["error"]["code"] == "domain_taken"
    assert dup_org.body["error"]["details"]["existing_id"] == org.body["id"]


def test_same_email_in_two_workspaces_is_fine(http, make_workspace):
    a, b = make_workspace("A"), make_workspace("B")
    assert http("POST", "/contacts", a.member_key, {"email": "same@x.io"}).status == 201
    assert http("POST", "/contacts", b.member_key, {"email": "same@x.io"}).status == 201


def test_activities_feed_last_active_and_counts_through_the_stream(http, workspace, runtime):
    contact = http("POST", "/contacts", workspace.member_key, {"name": "Ann"}).body
    batch = http("POST", "/activities", workspace.member_key, {"items": [
        {"contact_id": contact["id"], "type": "github.star", "occurred_at": "2026-11-01T10:00:00Z"},
        {"contact_id": contact["id"], "type": "slack.message", "source": "slack",
         "occurred_at": "2026-11-03T09:30:00+01:00", "properties": {"channel": "#help"}},
    ]})
    assert batch.status == 201, batch.body
    assert [a["source"] for a in batch.body["items"]] == ["github", "slack"]
    older = http("POST", "/activities", workspace.member_key,
                 {"contact_id": contact["id"], "type": "github.fork",
                  "occurred_at": "2026-10-01T00:00:00Z"})
    assert older.status == 201

    runtime.drain()

    profile = http("GET", f"/contacts/{contact['id']}", workspace.member_key).body
    # the latest activity wins, whatever order they arrived in
    assert profile["last_active_at"] == "2026-11-03T08:30:00Z"
    counts = http("GET", "/workspace", workspace.member_key).body["counts"]
    assert counts == {"contacts": 1, "organizations": 0, "activities": 3}

    page1 = http("GET", f"/contacts/{contact['id']}/activities?limit=2", workspace.member_key)
    assert [a["type"] for a in page1.body["items"]] == ["slack.message", "github.star"]
    page2 = http("GET", f"/contacts/{contact['id']}/activities?limit=2&cursor="
                 f"{page1.body['next_cursor']}", workspace.member_key)
    assert [a["type"] for a in page2.body["items"]] == ["github.fork"]
    assert page2.body["next_cursor"] is None


def test_stream_replay_does_not_double_count(http, workspace, settings):
    """Lambda may deliver a stream batch twice: the counters must not move twice."""
    from app import app
    from chalicelib.adapters.invoke import LambdaContext

    delivered = []
    handler = app.handler_map["records_stream"]
    runtime = tapped_runtime(settings, {"records_stream": lambda event, context: (
        delivered.append(event), handler(event, context))[1]})  # every batch kept for a replay
    http("POST", "/organizations", workspace.member_key, {"name": "Once"})
    http("POST", "/activities", workspace.member_key, {
        "contact_id": http("POST", "/contacts", workspace.member_key, {"name": "c"}).body["id"],
        "type": "x.y"})
    runtime.drain()
    before = http("GET", "/workspace", workspace.member_key).body["counts"]
    assert before == {"contacts": 1, "organizations": 1, "activities": 1}
    assert delivered
    for event in delivered:  # the same batches again
        handler(event, LambdaContext("records_stream"))
    after = http("GET", "/workspace", workspace.member_key).body["counts"]
    assert after == before


def test_deleting_an_organization_detaches_its_contacts(http, workspace, runtime):
    org = http("POST", "/organizations", workspace.member_key, {"name": "Gone"}).body
    contact = http("POST", "/contacts", workspace.member_key,
                   {"name": "Left", "org_id": org["id"]}).body
    assert http("DELETE", f"/organizations/{org['id']}", workspace.member_key).status == 204
    runtime.drain()
    profile = http("GET", f"/contacts/{contact['id']}", workspace.member_key).body
    assert profile["org_id"] is None and profile["organization"] is None


def test_bad_contact_input(http, workspace):
    key = workspace.member_key
    cases = [
        ({"email": "not-an-email"}, "invalid_email", "$.email"),
        ({"tags": "vip"}, "invalid_request", "$.tags"),
        ({"tags": ["ok", ""]}, "invalid_tag", "$.tags[1]"),
        ({"tags": ["ok", 3]}, "invalid_request", "$.tags[1]"),
        ({"attributes": {"a.b": 1}}, "invalid_attribute_name", "$.attributes.a.b"),
        ({"attributes": []}, "invalid_request", "$.attributes"),
        ({"name": 7}, "invalid_request", "$.name"),
        ({"nickname": "x"}, "invalid_request", "$.nickname"),
        ({"tags": [f"t{i}" for i in range(101)]}, "too_many_tags", "$.tags"),
    ]
    for body, code, path in cases:
        answer = http("POST", "/contacts", key, body)
        assert answer.status == 400, (body, answer.body)
        assert answer.body["error"]["code"] == code, body
        assert answer.body["error"]["details"]["path"] == path, body
    missing_org = http("POST", "/contacts", key, {"name": "x", "org_id": "o_missing"})
    assert missing_org.status == 404 and missing_org.body["error"]["details"]["path"] == "$.org_id"
    assert http("PATCH", "/contacts/c_missing", key, {"name": "x"}).status == 404
    assert http("DELETE", "/contacts/c_missing", key).status == 404
    assert http("GET", "/contacts/c_missing/activities", key).status == 404
    made = http("POST", "/contacts", key, {"name": "x"}).body
    for query in ("limit=0", "limit=201", "limit=abc", "cursor=%%%", "cursor=eyJwayI6IngifQ"):
        answer = http("GET", f"/contacts/{made['id']}/activities?{query}", key)
        assert answer.status == 400, (query, answer.body)
    # nothing was stored by the rejected calls
    assert http("GET", "/workspace", key).status == 200


def test_bad_organization_input(http, workspace):
    key = workspace.member_key
    for body, path in (({}, "$.name"), ({"name": ""}, "$.name"),
                       ({"name": "x", "domain": "not a domain"}, "$.domain"),
                       ({"name": "x", "tags": {"a": 1}}, "$.tags")):
        answer = http("POST", "/organizations", key, body)
        assert answer.status == 400, (body, answer.body)
        assert answer.body["error"]["details"]["path"] == path
    org = http("POST", "/organizations", key, {"name": "Keep"}).body
    assert http("PATCH", f"/organizations/{org['id']}", key, {"name": None}).status == 400
    assert http("GET", f"/organizations/{org['id']}", key).body["name"] == "Keep"


def test_bad_activity_input_stores_nothing(http, workspace):
    key = workspace.member_key
    contact = http("POST", "/contacts", key, {"name": "x"}).body
    good = {"contact_id": contact["id"], "type": "github.star"}
    cases = [
        ({"items": []}, 400, "$.items"),
        ({"items": [good] * 101}, 400, "$.items"),
        ({**good, "type": "has space"}, 400, "$.type"),
        ({**good, "occurred_at": "yesterday"}, 400, "$.occurred_at"),
        ({"items": [good, {**good, "occurred_at": "2026-13-45"}]}, 400, "$.items[1].occurred_at"),
        ({"items": [good, {**good, "contact_id": "c_nobody"}]}, 404, "$.items[1].contact_id"),
        ({"type": "x"}, 400, "$.contact_id"),
    ]
    for body, status, path in cases:
        answer = http("POST", "/activities", key, body)
        assert answer.status == status, (body, answer.body)
        assert answer.body["error"]["details"]["path"] == path, answer.body
    listed = http("GET", f"/contacts/{contact['id']}/activities", key).body
    assert listed["items"] == []


def test_openapi_describes_every_route(http):
    from chalicelib.adapters.api import api

    document = http("GET", "/openapi.json").body
    assert document["openapi"].startswith("3.")
    for spec in api.routes:
        assert spec.method.lower() in document["paths"][spec.path], spec.path
    post_contacts = document["paths"]["/contacts"]["post"]
    schema_name = post_contacts["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = document["components"]["schemas"][schema_name.rsplit("/", 1)[1]]
    assert "email" in schema["properties"] and schema["additionalProperties"] is False
    assert http("GET", "/health").body["status"] == "ok"
