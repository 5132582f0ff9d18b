"""Segments through the routes Lambda runs: permissions, bad input, backfills, membership."""

from __future__ import annotations

import pytest

BUYERS = {"field": "tags", "op": "has_any", "value": ["buyer"]}


@pytest.fixture
def team(http, workspace):
    """The workspace plus a second member, Kim."""
    kim = http("POST", "/api-keys", workspace.admin_key, {"user_id": "kim", "role": "member"})
    return workspace, kim.body["key"]


def test_team_segments_are_for_admins_to_make_and_edit(http, team):
    ws, kim = team
    made = http("POST", "/segments", ws.admin_key, {"kind": "contact", "name": "Team one"})
    assert made.status == 201 and made.body["visibility"] == "team"
    seg = made.body["id"]
    assert http("POST", "/segments", ws.member_key,
                {"kind": "contact", "name": "Nope", "visibility": "team"}).status == 403
    # members see it, but cannot change it
    assert http("GET", f"/segments/{seg}", ws.member_key).status == 200
    for method, path, body in [("PATCH", f"/segments/{seg}", {"name": "x"}),
                               ("DELETE", f"/segments/{seg}", None),
                               ("POST", f"/segments/{seg}/members", {"ids": ["c_x"]}),
                               ("POST", f"/segments/{seg}/members/remove", {"ids": ["c_x"]}),
                               ("POST", f"/segments/{seg}/reevaluate", None)]:
        answer = http(method, path, ws.member_key, body)
        assert answer.status == 403, (method, path, answer.body)
    assert http("GET", f"/segments/{seg}", ws.admin_key).body["name"] == "Team one"


def test_personal_segments_belong_to_their_owner(http, team):
    ws, kim = team
    made = http("POST", "/segments", ws.member_key,
                {"kind": "contact", "name": "Mine", "visibility": "personal"})
    assert made.status == 201 and made.body["owner"] == "member@example.com"
    seg = made.body["id"]
    assert http("PATCH", f"/segments/{seg}", ws.member_key, {"name": "Still mine"}).status == 200
    # invisible to everyone else, admins included: 404 as if it did not exist
    for key in (kim, ws.admin_key):
        assert http("GET", f"/segments/{seg}", key).status == 404
        assert http("PATCH", f"/segments/{seg}", key, {"name": "x"}).status == 404
        assert http("DELETE", f"/segments/{seg}", key).status == 404
        assert http("GET", f"/segments/{seg}/members", key).status == 404
        listed = http("GET", "/segments", key).body["items"]
        assert seg not in {s["id"] for s in listed}
    assert seg in {s["id"] for s in http("GET", "/segments", ws.member_key).body["items"]}
    assert http("DELETE", f"/segments/{seg}", ws.member_key).status == 204
    assert http("GET", f"/segments/{seg}", ws.member_key).status == 404


def test_bad_segment_input(http, workspace):
    key = workspace.admin_key
    cases = [
        ({"kind": "people", "name": "x"}, "invalid_request", "$.kind"),
        ({"kind": "contact"}, "invalid_request", "$.name"),
        ({"kind": "contact", "name": ""}, "invalid_request", "$.name"),
        ({"kind": "contact", "name": "x", "visibility": "public"}, "invalid_request",
         "$.visibility"),
        ({"kind": "contact", "name": "x", "rules": {"add": {"field": "tags", "op": "equals",
                                                            "value": 1}}},
         "invalid_filter", "$.rules.add.op"),
        ({"kind": "contact", "name": "x", "rules": {"add": BUYERS, "remove": {"mode": "all"}}},
         "invalid_rules", "$.rules.remove.mode"),
        ({"kind": "contact", "name": "x", "rules": {"add": BUYERS,
                                                    "remove": {"mode": "custom"}}},
         "invalid_rules", "$.rules.remove.filter"),
        ({"kind": "contact", "name": "x", "rules": {"add": BUYERS, "keep": 1}}, "invalid_rules",
         "$.rules.keep"),
        ({"kind": "organization", "name": "x",
          "rules": {"add": {"field": "email", "op": "exists"}}},
         "invalid_filter", "$.rules.add.field"),
        ({"kind": "contact", "name": "x",
          "rules": {"add": {"segment": "s_nope", "op": "member"}}},
         "invalid_filter", "$.rules"),
        ({"kind": "contact", "name": "x", "members": "c_1"}, "invalid_request", "$.members"),
    ]
    for body, code, path in cases:
        answer = http("POST", "/segments", key, body)
        assert answer.status == 400, (body, answer.body)
        assert answer.body["error"]["code"] == code, (body, answer.body)
        assert answer.body["error"]["details"]["path"] == path, (body, answer.body)
    seg = http("POST", "/segments", key, {"kind": "contact", "name": "Fine"}).body["id"]
    other = http("POST", "/segments", key, {"kind": "contact", "name": "Other"}).body["id"]
    for method, path, body in (("POST", "/segments", {"kind": "contact", "name": " FINE "}),
                               ("PATCH", f"/segments/{other}", {"name": "fine"})):
        taken = http(method, path, key, body)
        assert taken.status == 409, taken.body
        assert taken.body["error"] == {"code": "segment_name_taken", "message": taken.body[
            "error"]["message"], "details": {"path": "$.name"}}
    assert http("PATCH", f"/segments/{other}", key, {"name": "Renamed"}).status == 200
    assert http("POST", "/segments", key, {"kind": "contact", "name": "other"}).status == 201
    for body in ({"ids": []}, {"ids": "c_1"}, {"ids": ["c"] * 1001}, {}):
        assert http("POST", f"/segments/{seg}/members", key, body).status == 400, body
    assert http("DELETE", f"/segments/{seg}/exclusions/c_never", key).status == 404
    assert http("GET", f"/segments/{seg}/explain/c_nobody", key).status == 404
    assert http("GET", f"/segments/{seg}/members?limit=0", key).status == 400
    assert http("POST", f"/segments/{seg}/reevaluate", key).status == 400  # no rules
    # nothing above changed the segment
    assert http("GET", f"/segments/{seg}", key).body["member_count"] == 0


def test_segment_rules_can_use_other_segments_but_not_in_a_cycle(http, workspace, runtime):
    key = workspace.admin_key
    buyer = http("POST", "/contacts", key, {"name": "b", "tags": ["buyer"]}).body["id"]
    http("POST", "/contacts", key, {"name": "n", "tags": []})
    base = http("POST", "/segments", key, {"kind": "contact", "name": "Buyers",
                                           "rules": {"add": BUYERS}}).body["id"]
    runtime.drain()
    derived = http("POST", "/segments", key, {"kind": "contact", "name": "Not buyers", "rules": {
        "add": {"segment": base, "op": "not_member"}}})
    assert derived.status == 201, derived.body
    runtime.drain()
    got = http("GET", f"/segments/{derived.body['id']}", key).body
    assert got["status"] == "ready" and got["member_count"] == 1
    cycle = http("PATCH", f"/segments/{base}", key, {"rules": {"add": {
        "segment": derived.body["id"], "op": "member"}}})
    assert cycle.status == 400 and cycle.body["error"]["code"] == "segment_cycle"
    in_use = http("DELETE", f"/segments/{base}", key)
    assert in_use.status == 409 and in_use.body["error"]["code"] == "segment_in_use"
    assert http("GET", f"/segments/{base}/members", key).body["items"][0]["id"] == buyer


def test_create_with_members_and_organization_segments(http, workspace, runtime):
    key = workspace.admin_key
    org = http("POST", "/organizations", key, {"name": "Big", "attributes": {"size": 500}}).body
    small = http("POST", "/organizations", key, {"name": "Small",
                                                  "attributes": {"size": 5}}).body
    a = http("POST", "/contacts", key, {"name": "a", "org_id": org["id"]}).body["id"]
    b = http("POST", "/contacts", key, {"name": "b", "org_id": org["id"]}).body["id"]
    # "create new segment" from an explorer selection: members in the same call
    made = http("POST", "/segments", key, {"kind": "contact", "name": "Picked",
                                           "members": [a, b, a, "c_nope"]})
    assert made.status == 201
    assert made.body["members_result"] == {"added": [a, b], "already": [],
                                           "rejected": [{"id": "c_nope", "reason": "not_found"}]}
    assert made.body["member_count"] == 2 and made.body["status"] == "ready"
    orgs = http("GET", f"/segments/{made.body['id']}/organizations", key).body["items"]
    assert [(o["name"], o["member_count"]) for o in orgs] == [("Big", 2)]
    removed = http("POST", f"/segments/{made.body['id']}/members/remove", key,
                   {"ids": [b, "c_other"]}).body
    assert removed == {"removed": [b], "excluded": [], "not_member": ["c_other"]}
    orgs = http("GET", f"/segments/{made.body['id']}/organizations", key).body["items"]
    assert [(o["name"], o["member_count"]) for o in orgs] == [("Big", 1)]

    big = http("POST", "/segments", key, {"kind": "organization", "name": "Big orgs", "rules": {
        "add": {"field": "attributes.size", "op": "gte", "value": 100}}}).body
    runtime.drain()
    members = http("GET", f"/segments/{big['id']}/members", key).body["items"]
    assert [m["id"] for m in members] == [org["id"]]
    assert small["id"] not in {m["id"] for m in members}
    assert http("GET", f"/segments/{big['id']}/organizations", key).status == 400


def test_counts_and_history_stay_exact_under_concurrent_writers(http, workspace):
    """Eight writers add and remove overlapping records at once: every real change is counted
    once and has exactly one history event."""
    from concurrent.futures import ThreadPoolExecutor

    from chalicelib.adapters import deps
    from chalicelib.domain.identity import Principal, Role

    key = workspace.admin_key
    org = http("POST", "/organizations", key, {"name": "O"}).body["id"]
    ids = [http("POST", "/contacts", key, {"name": f"p{i}", "org_id": org}).body["id"]
           for i in range(12)]
    seg = http("POST", "/segments", key, {"kind": "contact", "name": "Busy"}).body["id"]
    admin = Principal(workspace_id=workspace.id, user_id="admin", role=Role.ADMIN)
    service = deps.segments()

    def writer(n: int) -> None:
        for round_ in range(3):
            batch = ids[(n + round_) % 4::2]
            service.add_members(admin, seg, batch)
            if n % 2:
                service.remove_members(admin, seg, batch[:2])

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(writer, range(8)))

    members = http("GET", f"/segments/{seg}/members?limit=200", key).body["items"]
    segment = http("GET", f"/segments/{seg}", key).body
    assert segment["member_count"] == len(members)
    orgs = http("GET", f"/segments/{seg}/organizations", key).body["items"]
    assert sum(o["member_count"] for o in orgs) == len(members)
    history = http("GET", f"/segments/{seg}/history?limit=200", key).body["items"]
    added = sum(1 for e in history if e["action"] == "added")
    removed = sum(1 for e in history if e["action"] == "removed")
    assert added - removed == len(members)  # every event is a real change, once


def test_segment_lists_page_like_every_list(http, make_workspace):
    ws = make_workspace("Pages")
    made = {http("POST", "/segments", ws.admin_key, {"kind": "contact", "name": f"S{i}"}
                 ).body["id"] for i in range(3)}
    first = http("GET", "/segments?limit=2", ws.admin_key).body
    second = http("GET", f"/segments?limit=2&cursor={first['next_cursor']}", ws.admin_key).body
    assert len(first["items"]) == 2 and second["next_cursor"] is None
    assert {s["id"] for s in first["items"] + second["items"]} == made
    assert http("GET", "/segments?limit=500", ws.admin_key).status == 400


def test_rules_cannot_name_someone_elses_personal_segment(http, team):
    ws, kim = team
    private = http("POST", "/segments", kim, {"kind": "contact", "name": "Kim's",
                                               "visibility": "personal"}).body["id"]
    answer = http("POST", "/segments", ws.member_key, {
        "kind": "contact", "name": "Peek", "visibility": "personal",
        "rules": {"add": {"segment": private, "op": "member"}}})
    assert answer.status == 400 and answer.body["error"]["code"] == "invalid_filter"
