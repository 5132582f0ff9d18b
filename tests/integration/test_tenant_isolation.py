"""Another workspace's ids answer 404 on every route, exactly as unknown ids, and change nothing."""

from __future__ import annotations

from chalicelib.adapters.api import api


def _other_workspace_data(http, ws):
    org = http("POST", "/organizations", ws.admin_key, {"name": "B org", "domain": "b.example"})
    contact = http("POST", "/contacts", ws.admin_key,
                   {"name": "B person", "email": "b@b.example", "org_id": org.body["id"]})
    http("POST", "/activities", ws.admin_key, {"contact_id": contact.body["id"], "type": "x.y"})
    segment = http("POST", "/segments", ws.admin_key, {
        "kind": "contact", "name": "B segment", "members": [contact.body["id"]]})
    assert segment.status == 201, segment.body
    return {"contact": contact.body["id"], "organization": org.body["id"],
            "prefix": ws.member_key.split("_")[1], "segment": segment.body["id"]}


def test_every_route_with_another_workspaces_ids_is_404(http, make_workspace):
    a, b = make_workspace("A"), make_workspace("B")
    theirs = _other_workspace_data(http, b)
    mine = http("POST", "/contacts", a.admin_key, {"name": "A person"}).body["id"]
    my_segment = http("POST", "/segments", a.admin_key,
                      {"kind": "contact", "name": "A segment"}).body["id"]
    # (method, path template, path value, body): every route that takes an id, path or body
    calls = [
        ("GET", "/contacts/{id}", theirs["contact"], None),
        ("PATCH", "/contacts/{id}", theirs["contact"], {"name": "hijacked"}),
        ("DELETE", "/contacts/{id}", theirs["contact"], None),
        ("GET", "/contacts/{id}/activities", theirs["contact"], None),
        ("GET", "/organizations/{id}", theirs["organization"], None),
        ("PATCH", "/organizations/{id}", theirs["organization"], {"name": "hijacked"}),
        ("DELETE", "/organizations/{id}", theirs["organization"], None),
        ("DELETE", "/api-keys/{prefix}", theirs["prefix"], None),
        ("POST", "/activities", None, {"contact_id": theirs["contact"], "type": "x.y"}),
        ("POST", "/contacts", None, {"name": "x", "org_id": theirs["organization"]}),
        ("PATCH", "/contacts/{id}", mine, {"org_id": theirs["organization"]}),
        ("GET", "/segments/{id}", theirs["segment"], None),
        ("PATCH", "/segments/{id}", theirs["segment"], {"name": "hijacked"}),
        ("DELETE", "/segments/{id}", theirs["segment"], None),
        ("GET", "/segments/{id}/members", theirs["segment"], None),
        ("POST", "/segments/{id}/members", theirs["segment"], {"ids": [mine]}),
        ("POST", "/segments/{id}/members/remove", theirs["segment"], {"ids": [mine]}),
        ("GET", "/segments/{id}/organizations", theirs["segment"], None),
        ("GET", "/segments/{id}/history", theirs["segment"], None),
        ("POST", "/segments/{id}/reevaluate", theirs["segment"], None),
        ("GET", "/segments/{id}/explain/{record_id}", f"{my_segment}/explain/{theirs['contact']}",
         None),
        ("DELETE", "/segments/{id}/exclusions/{record_id}",
         f"{my_segment}/exclusions/{theirs['contact']}", None),
    ]
    covered = set()
    for method, template, value, body in calls:
        path = template.replace("{id}", value or "").replace("{prefix}", value or "")
        if "{record_id}" in template:
            path = template.split("{id}")[0] + value
        theirs_answer = http(method, path, a.admin_key, body)
        unknown = path.replace(value, "zz_unknown") if value else path
        unknown_body = ({k: ("zz_unknown" if v in theirs.values() else v) for k, v in body.items()}
                        if body else None)
        unknown_answer = http(method, unknown, a.admin_key, unknown_body)
        assert theirs_answer.status == 404, (method, path, theirs_answer.body)
        # exactly as an unknown id: same status, same code
        assert unknown_answer.status == 404
        assert theirs_answer.body["error"]["code"] == unknown_answer.body["error"]["code"]
        covered.add((method, template))
    # every workspace route with a path parameter is walked (a new route must join this
    # test); operator routes hold no workspace data and answer 403 (test_dead_letters)
    with_ids = {(spec.method, spec.path) for spec in api.routes
                if "{" in spec.path and spec.auth != "operator"}
    assert with_ids <= covered, with_ids - covered
    # and B's data is untouched
    assert http("GET", f"/contacts/{theirs['contact']}", b.admin_key).body["name"] == "B person"
    assert http("GET", f"/organizations/{theirs['organization']}",
                b.admin_key).body["name"] == "B org"
    assert http("GET", "/workspace", b.member_key).status == 200
    assert len(http("GET", f"/contacts/{theirs['contact']}/activities",
                    b.admin_key).body["items"]) == 1
    segment = http("GET", f"/segments/{theirs['segment']}", b.admin_key).body
    assert segment["name"] == "B segment" and segment["member_count"] == 1
    # ids in a body: another workspace's record is "not_found", as an unknown one
    added = http("POST", f"/segments/{my_segment}/members", a.admin_key,
                 {"ids": [theirs["contact"], "c_unknown"]})
    assert added.status == 200
    assert added.body["rejected"] == [{"id": theirs["contact"], "reason": "not_found"},
                                      {"id": "c_unknown", "reason": "not_found"}]


def test_unique_values_do_not_leak_across_workspaces(http, make_workspace):
    a, b = make_workspace("A"), make_workspace("B")
    http("POST", "/contacts", b.admin_key, {"email": "secret@b.example"})
    # A can use the same email: B's contact is neither revealed nor blocking
    made = http("POST", "/contacts", a.admin_key, {"email": "secret@b.example"})
    assert made.status == 201
