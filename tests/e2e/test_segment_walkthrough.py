"""The segment-creation guide's walkthrough, over HTTP against the running local runtime."""

from __future__ import annotations

import pytest
import requests

from tests.e2e.conftest import OPERATOR
from tests.helpers import wait_for

pytestmark = pytest.mark.e2e
ECONOMIC_IDEAL = {"all": [{"field": "tags", "op": "has_all",
                           "value": ["Economic buyer", "Ideal persona"]}]}


class Api:
    def __init__(self, url: str, key: str) -> None:
        self.url, self.key = url, key

    def __call__(self, method: str, path: str, body=None):  # type: ignore[no-untyped-def]
        answer = requests.request(method, f"{self.url}{path}", json=body, timeout=30,
                                  headers={"Authorization": f"Bearer {self.key}"})
        return answer.status_code, (answer.json() if answer.content else None)


def ready(api: Api, segment_id: str) -> dict:
    return wait_for(lambda: (s := api("GET", f"/segments/{segment_id}")[1])["status"] == "ready"
                    and s, timeout=60, what="the backfill")


def test_the_guides_walkthrough(service):
    runtime, _ = service
    _, made = Api(runtime["api_url"], OPERATOR)("POST", "/workspaces", {"name": "Guide"})
    admin = Api(runtime["api_url"], made["admin_key"])
    member_key = admin("POST", "/api-keys", {"user_id": "sam", "role": "member"})[1]["key"]
    member = Api(runtime["api_url"], member_key)

    _, acme = admin("POST", "/organizations", {"name": "Acme", "domain": "acme.io"})
    _, globex = admin("POST", "/organizations", {"name": "Globex", "domain": "globex.io"})
    people = {}
    for name, tags, org, title in [
        ("ada", ["Economic buyer", "Ideal persona"], acme, "VP"),
        ("ben", ["economic BUYER", "ideal persona"], globex, "CTO"),
        ("cleo", ["Economic buyer", "Ideal persona"], acme, "Intern"),
        ("dev", ["Economic buyer"], acme, "Director"),
        ("eve", ["Ideal persona"], None, "Engineer"),
    ]:
        status, body = admin("POST", "/contacts", {
            "name": name, "email": f"{name}@x.io", "tags": tags, "title": title,
            "org_id": org["id"] if org else None})
        assert status == 201, body
        people[name] = body["id"]

    # Set the filter criteria and see the preview
    status, preview = admin("POST", "/segments/preview",
                            {"kind": "contact", "filter": ECONOMIC_IDEAL, "limit": 10})
    assert status == 200 and preview["count"] == 3

    # A member cannot make a team segment
    status, body = member("POST", "/segments", {"kind": "contact", "name": "Buyers",
                                                 "rules": {"add": ECONOMIC_IDEAL}})
    assert status == 403

    # Save the criteria: the segment backfills, then holds the contacts and their orgs
    status, segment = admin("POST", "/segments", {
        "kind": "contact", "name": "Economic buyers who fit the persona",
        "description": "from the guide", "visibility": "team",
        "rules": {"add": ECONOMIC_IDEAL}})
    assert status == 201, segment
    assert segment["status"] in ("backfilling", "ready")
    assert segment["rules"]["remove"] == {"mode": "inverse"}
    seg = segment["id"]
    done = ready(admin, seg)
    assert done["member_count"] == 3 and done["backfill"]["shards_done"] == 16
    _, members = member("GET", f"/segments/{seg}/members?limit=50")
    assert {m["id"] for m in members["items"]} == {people["ada"], people["ben"], people["cleo"]}
    assert {m["source"] for m in members["items"]} == {"rule"}
    _, orgs = member("GET", f"/segments/{seg}/organizations")
    assert {(o["name"], o["member_count"]) for o in orgs["items"]} == {("Acme", 2),
                                                                        ("Globex", 1)}
    # A duplicate name (any case) is a conflict
    status, body = admin("POST", "/segments", {"kind": "contact",
                                               "name": "ECONOMIC BUYERS who fit the persona"})
    assert status == 409 and body["error"]["code"] == "segment_name_taken"

    # Under the inverse remove rule, a manual add of a non-matching contact is refused
    status, result = admin("POST", f"/segments/{seg}/members", {"ids": [people["dev"]]})
    assert status == 200
    assert result["rejected"] == [{"id": people["dev"], "reason": "would_be_auto_removed"}]

    # Edit the remove rules to custom: dry run first, then for real
    custom = {"add": ECONOMIC_IDEAL, "remove": {"mode": "custom", "filter": {
        "field": "title", "op": "eq", "value": "intern"}}}
    status, diff = admin("PATCH", f"/segments/{seg}?dry_run=true", {"rules": custom})
    assert status == 200 and diff["dry_run"] is True
    assert (diff["would_add"], diff["would_remove"]) == (0, 1)
    assert diff["sample_remove"] == [people["cleo"]]
    assert ready(admin, seg)["member_count"] == 3  # the dry run changed nothing
    status, edited = admin("PATCH", f"/segments/{seg}", {"rules": custom})
    assert status == 200 and edited["rules"]["remove"]["mode"] == "custom"
    assert ready(admin, seg)["member_count"] == 2

    # Now someone can be added by hand
    status, result = admin("POST", f"/segments/{seg}/members",
                           {"ids": [people["dev"], people["ada"], "c_nobody", acme["id"]]})
    assert result["added"] == [people["dev"]] and result["already"] == [people["ada"]]
    assert result["rejected"] == [{"id": "c_nobody", "reason": "not_found"},
                                  {"id": acme["id"], "reason": "wrong_kind"}]

    # Remove someone who still matches: excluded, and stays out through a re-evaluation
    status, removed = admin("POST", f"/segments/{seg}/members/remove", {"ids": [people["ben"]]})
    assert removed["removed"] == [people["ben"]] and removed["excluded"] == [people["ben"]]
    status, _ = admin("POST", f"/segments/{seg}/reevaluate")
    assert status == 202
    after = ready(admin, seg)
    assert after["member_count"] == 2  # ada (rule) and dev (manual)
    _, explained = member("GET", f"/segments/{seg}/explain/{people['ben']}")
    assert explained["member"] is False and explained["excluded"] is True
    assert explained["matches_add"] is True and "excluded" in explained["why"]
    assert explained["add"]["children"][0]["result"] is True
    _, cleo = member("GET", f"/segments/{seg}/explain/{people['cleo']}")
    assert cleo["auto_removes"] is True and cleo["remove"]["actual"] == "Intern"

    # History tells what happened and why
    _, history = member("GET", f"/segments/{seg}/history?limit=200")
    events = {(e["record_id"], e["action"], e["reason"]) for e in history["items"]}
    assert {(people["ada"], "added", "rule"), (people["cleo"], "removed", "rule_change"),
            (people["dev"], "added", "manual"), (people["ben"], "removed", "manual")} <= events
    assert len(history["items"]) == 6  # 3 backfill adds, 1 rule-change remove, 1 add, 1 remove

    # Lifting the exclusion lets the rules bring ben back at once
    status, _ = admin("DELETE", f"/segments/{seg}/exclusions/{people['ben']}")
    assert status == 204
    assert admin("GET", f"/segments/{seg}")[1]["member_count"] == 3

    # The profile shows the segments a contact is in, with how it got there
    _, profile = member("GET", f"/contacts/{people['dev']}")
    assert profile["segments"][0]["segment_id"] == seg
    assert profile["segments"][0]["source"] == "manual"
    assert profile["segments"][0]["name"] == "Economic buyers who fit the persona"
