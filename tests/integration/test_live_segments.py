"""Live segments: changes flow through the records stream into memberships, and the result
always equals a full recompute (the oracle)."""

from __future__ import annotations

import random

import pytest

from tests.helpers import every_page, make_segment, member_ids, tapped_runtime

BUYERS = {"field": "tags", "op": "has_any", "value": ["buyer"]}


def test_a_contact_change_moves_it_in_and_out(http, workspace, runtime):
    key = workspace.admin_key
    seg = make_segment(http, key, runtime, "Buyers", {"add": BUYERS})
    contact = http("POST", "/contacts", key, {"name": "x", "tags": ["lead"]}).body["id"]
    runtime.drain()
    assert member_ids(http, key, seg) == set()
    http("PATCH", f"/contacts/{contact}", key, {"tags": ["lead", "Buyer"]})
    runtime.drain()
    assert member_ids(http, key, seg) == {contact}
    http("PATCH", f"/contacts/{contact}", key, {"tags": []})
    runtime.drain()
    assert member_ids(http, key, seg) == set()
    events = http("GET", f"/segments/{seg}/history", key).body["items"]
    assert [(e["action"], e["reason"]) for e in events] == [("removed", "rule"),
                                                            ("added", "rule")]


def test_organizations_activities_moves_deletes_and_segment_conditions(http, workspace, runtime):
    key = workspace.admin_key
    big = http("POST", "/organizations", key, {"name": "Big", "attributes": {"size": 5}}).body
    other = http("POST", "/organizations", key, {"name": "Other"}).body
    ada = http("POST", "/contacts", key, {"name": "ada", "org_id": big["id"]}).body["id"]
    at_big = make_segment(http, key, runtime, "At big orgs", {"add": {
        "field": "org.attributes.size", "op": "gte", "value": 100}})
    active = make_segment(http, key, runtime, "Active", {"add": {
        "activity": {"type": "github.star"}, "op": "count_gte", "value": 2}})
    busy_orgs = make_segment(http, key, runtime, "Busy orgs", {"add": {
        "activity": {}, "op": "count_gte", "value": 2}}, kind="organization")
    not_big = make_segment(http, key, runtime, "Not at big orgs", {"add": {
        "segment": at_big, "op": "not_member"}})
    assert member_ids(http, key, not_big) == {ada}

    # an organization change re-checks its contacts, and dependents follow
    http("PATCH", f"/organizations/{big['id']}", key, {"attributes": {"size": 500}})
    runtime.drain()
    assert member_ids(http, key, at_big) == {ada}
    assert member_ids(http, key, not_big) == set()
    orgs = http("GET", f"/segments/{at_big}/organizations", key).body["items"]
    assert [(o["name"], o["member_count"]) for o in orgs] == [("Big", 1)]

    # activities count for the contact and its organization
    for _ in range(2):
        http("POST", "/activities", key, {"contact_id": ada, "type": "github.star"})
    runtime.drain()
    assert member_ids(http, key, active) == {ada}
    assert member_ids(http, key, busy_orgs) == {big["id"]}

    # moving organization: org conditions re-checked, organization counts follow
    http("PATCH", f"/contacts/{ada}", key, {"org_id": other["id"]})
    runtime.drain()
    assert member_ids(http, key, at_big) == set()
    assert member_ids(http, key, not_big) == {ada}
    manual = http("POST", "/segments", key, {"kind": "contact", "name": "Picked",
                                             "members": [ada]}).body["id"]
    http("PATCH", f"/contacts/{ada}", key, {"org_id": big["id"]})
    runtime.drain()
    orgs = http("GET", f"/segments/{manual}/organizations", key).body["items"]
    assert [(o["name"], o["member_count"]) for o in orgs] == [("Big", 1)]

    # deleting the contact takes it out of every segment, manual ones too
    http("DELETE", f"/contacts/{ada}", key)
    runtime.drain()
    for seg in (at_big, active, not_big, manual):
        assert member_ids(http, key, seg) == set(), seg
    events = http("GET", f"/segments/{manual}/history", key).body["items"]
    assert events[0]["reason"] == "record_deleted"


OPS = ("create", "tag", "untag", "title", "attr", "move", "delete", "activity", "org_size",
       "manual_add", "manual_remove", "rules")


# steps per run: the plain run is the long one; each step is one API call or a manual change
STEPS = {"once": 500, "twice": 300, "failing": 300}


@pytest.mark.parametrize("delivery", ["once", "twice", "failing"])
def test_oracle_incremental_equals_full_recompute(http, workspace, settings, delivery):
    """Random operations (seeded) through the real stream path; afterwards every segment's
    membership equals a full recompute, and history has one event per real change.
    twice: every batch is delivered a second time; failing: the first delivery of a batch
    fails (so the runtime retries, bisecting), at a random record."""
    from app import app
    from chalicelib.adapters import deps
    from chalicelib.adapters.invoke import LambdaContext
    from chalicelib.domain.identity import Principal, Role
    from chalicelib.local.events import EventRuntime

    handler = app.handler_map["records_stream"]
    failed_once: set[str] = set()
    chaos = random.Random(7)
    rng = random.Random(f"20261204-{delivery}")

    def deliver(event, context):  # type: ignore[no-untyped-def]
        if delivery == "twice":
            handler(event, LambdaContext("replay"))
        first = event["Records"][0]["dynamodb"]["SequenceNumber"]
        if delivery == "failing" and first not in failed_once:
            failed_once.add(first)
            partial = dict(event, Records=event["Records"][:chaos.randint(0, len(
                event["Records"]))])
            handler(partial, context)  # part of the batch got through, then it failed
            raise RuntimeError("injected failure")
        return handler(event, context)

    runtime = tapped_runtime(settings, deliver, retry_backoff=0.0)
    key = workspace.admin_key
    orgs = [http("POST", "/organizations", key, {"name": f"O{i}", "attributes": {
        "size": rng.choice([5, 50, 500])}}).body["id"] for i in range(3)]
    contacts = [http("POST", "/contacts", key, {"name": f"c{i}", "tags": ["buyer"] if i % 2
                                                else [], "org_id": rng.choice(orgs)}
                     ).body["id"] for i in range(12)]
    runtime.drain()
    backfills = EventRuntime(app, settings)
    backfills.skip_to_latest()

    def make(name, rules, kind="contact"):  # type: ignore[no-untyped-def]
        made = http("POST", "/segments", key, {"kind": kind, "name": name, "rules": rules})
        backfills.drain()
        return made.body["id"]

    segments = [
        make("buyers", {"add": BUYERS}),
        make("vip titles", {"add": {"field": "title", "op": "contains", "value": "vp"},
                            "remove": {"mode": "custom", "filter": {
                                "field": "attributes.score", "op": "lt", "value": 3}}}),
        make("big orgs", {"add": {"field": "org.attributes.size", "op": "gte", "value": 100}}),
        make("active", {"add": {"activity": {"within_days": 30}, "op": "count_gte",
                                "value": 2}, "remove": {"mode": "none"}}),
        make("orgs with buyers", {"add": {"activity": {}, "op": "count_gte", "value": 1}},
             kind="organization"),
    ]
    segments.append(make("buyers not at big orgs", {"add": {"all": [
        {"segment": segments[0], "op": "member"},
        {"segment": segments[2], "op": "not_member"}]}}))
    admin = Principal(workspace_id=workspace.id, user_id="admin", role=Role.ADMIN)
    service = deps.segments()
    alive = list(contacts)
    for step in range(STEPS[delivery]):
        op = rng.choice(OPS)
        target = rng.choice(alive) if alive else None
        if op == "create" or target is None:
            alive.append(http("POST", "/contacts", key, {
                "name": f"n{step}", "org_id": rng.choice(orgs)}).body["id"])
        elif op == "tag":
            http("PATCH", f"/contacts/{target}", key, {"tags": ["buyer"]})
        elif op == "untag":
            http("PATCH", f"/contacts/{target}", key, {"tags": []})
        elif op == "title":
            http("PATCH", f"/contacts/{target}", key, {"title": rng.choice(["VP", "dev"])})
        elif op == "attr":
            http("PATCH", f"/contacts/{target}", key, {"attributes": {
                "score": rng.randint(0, 5)}})
        elif op == "move":
            http("PATCH", f"/contacts/{target}", key, {"org_id": rng.choice(orgs)})
        elif op == "delete":
            http("DELETE", f"/contacts/{target}", key)
            alive.remove(target)
        elif op == "activity":
            http("POST", "/activities", key, {"contact_id": target, "type": "x.y"})
        elif op == "org_size":
            http("PATCH", f"/organizations/{rng.choice(orgs)}", key,
                 {"attributes": {"size": rng.choice([5, 500])}})
        elif op == "manual_add":
            service.add_members(admin, rng.choice(segments[:4]), [target])
        elif op == "manual_remove":
            service.remove_members(admin, rng.choice(segments[:4]), [target])
        elif op == "rules":  # a rule edit, then its backfill
            runtime.drain()
            service.update(admin, segments[1], {"rules": {"add": {
                "field": "title", "op": rng.choice(["contains", "not_contains"]), "value": "vp"},
                "remove": {"mode": rng.choice(["inverse", "none"])}}})
            backfills.drain()
        if rng.random() < 0.3:
            runtime.drain()
    runtime.drain()
    for segment_id in segments:
        current = service.get(admin, segment_id)
        diff = service.diff(current, current.rules)
        assert (diff.would_add, diff.would_remove) == (0, 0), (current.name, diff)
        members = member_ids(http, key, segment_id)
        assert current.member_count == len(members), current.name
        history = every_page(
            lambda cursor, s=segment_id: service.history(admin, s, 200, cursor))
        added = sum(1 for e in history if e["action"] == "added")
        removed = sum(1 for e in history if e["action"] == "removed")
        assert added - removed == len(members), current.name
