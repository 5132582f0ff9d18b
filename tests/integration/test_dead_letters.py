"""Dead letters over the API: the operator lists them, re-drives them (a handled one is gone,
its change applied), discards them; nobody else can."""

from __future__ import annotations

from tests.conftest import OPERATOR_KEY
from tests.helpers import make_segment, member_ids, tapped_runtime

BUYERS = {"field": "tags", "op": "has_any", "value": ["buyer"]}


def _letters_of(http, contact_id):  # type: ignore[no-untyped-def]
    letters, cursor = [], None
    while True:
        page = http("GET", "/admin/dead-letters?limit=2" + (f"&cursor={cursor}" if cursor
                                                             else ""), OPERATOR_KEY)
        assert page.status == 200, page.body
        letters += page.body["items"]
        cursor = page.body["next_cursor"]
        if cursor is None:
            return [letter for letter in letters if letter["payload"]["dynamodb"].get(
                "NewImage", {}).get("id", {}).get("S") == contact_id]


def test_a_dead_lettered_change_is_applied_when_the_operator_redrives_it(
        http, workspace, settings, runtime):
    key = workspace.admin_key
    buyers = make_segment(http, key, runtime, "Buyers", {"add": BUYERS})

    def deliver(event, context):  # type: ignore[no-untyped-def]
        raise RuntimeError("the evaluator is down")

    failing = tapped_runtime(settings, {"records_stream": deliver}, max_retries=1,
                             retry_backoff=0.0)
    ada = http("POST", "/contacts", key, {"name": "Ada", "tags": ["Buyer"]}).body["id"]
    bob = http("POST", "/contacts", key, {"name": "Bob", "tags": ["buyer"]}).body["id"]
    failing.drain()
    assert member_ids(http, key, buyers) == set()  # the changes never got through

    [ada_letter] = _letters_of(http, ada)
    [bob_letter] = _letters_of(http, bob)
    assert ada_letter["consumer"] == "records_stream"
    assert ada_letter["attempts"] == 2 and ada_letter["redrives"] == 0
    assert "RuntimeError: the evaluator is down" in ada_letter["error"]
    assert ada_letter["payload"]["eventName"] == "INSERT"

    # the cause is fixed (the API's app runs the real consumer): one re-drive applies Ada
    done = http("POST", f"/admin/dead-letters/{ada_letter['id']}/redrive", OPERATOR_KEY)
    assert done.status == 200
    assert done.body == {"id": ada_letter["id"], "handled": True, "error": None}
    assert member_ids(http, key, buyers) == {ada}
    assert _letters_of(http, ada) == [] and len(_letters_of(http, bob)) == 1
    again = http("POST", f"/admin/dead-letters/{ada_letter['id']}/redrive", OPERATOR_KEY)
    assert again.status == 404  # handled letters are gone: a replay cannot apply twice

    # a record the consumer cannot handle stays, with the new error and the re-drive counted
    poison = dict(bob_letter["payload"], eventID="poison-" + bob_letter["payload"]["eventID"])
    poison["dynamodb"] = dict(poison["dynamodb"], NewImage={
        k: v for k, v in poison["dynamodb"]["NewImage"].items() if k != "id"})
    poison_id = failing.dead_letters.record("records_stream", "test", poison, "made up", 1)
    failed = http("POST", f"/admin/dead-letters/{poison_id}/redrive", OPERATOR_KEY)
    assert failed.status == 200 and failed.body["handled"] is False
    listed = {letter["id"]: letter for letter in http(
        "GET", "/admin/dead-letters?limit=200", OPERATOR_KEY).body["items"]}
    assert listed[poison_id]["redrives"] == 1
    assert listed[poison_id]["error"] == failed.body["error"] != "made up"

    # re-drive everything: Bob is handled, the poison record still fails
    everything = http("POST", "/admin/dead-letters/redrive", OPERATOR_KEY)
    assert everything.status == 200
    outcome = {item["id"]: item["handled"] for item in everything.body["items"]}
    assert outcome[bob_letter["id"]] is True and outcome[poison_id] is False
    assert everything.body["handled"] == sum(outcome.values())
    assert everything.body["still_failing"] == len(outcome) - sum(outcome.values())
    assert member_ids(http, key, buyers) == {ada, bob}

    # the operator gives up on the poison record
    assert http("DELETE", f"/admin/dead-letters/{poison_id}", OPERATOR_KEY).status == 204
    assert http("DELETE", f"/admin/dead-letters/{poison_id}", OPERATOR_KEY).status == 404
    # one history event per real change, whatever was re-driven
    history = http("GET", f"/segments/{buyers}/history", key).body["items"]
    assert sorted((e["record_id"], e["action"]) for e in history) == sorted(
        [(ada, "added"), (bob, "added")])


def test_operator_routes_answer_403_to_workspace_keys_and_404_to_unknown_ids(http, workspace):
    routes = [("GET", "/admin/dead-letters"), ("POST", "/admin/dead-letters/redrive"),
              ("POST", "/admin/dead-letters/dl_unknown/redrive"),
              ("DELETE", "/admin/dead-letters/dl_unknown")]
    for method, path in routes:
        assert http(method, path).status == 401
        for key in (workspace.admin_key, workspace.member_key):
            answer = http(method, path, key)
            assert answer.status == 403, (method, path, answer.body)
            assert answer.body["error"]["code"] == "forbidden"
    for method, path in routes[2:]:
        answer = http(method, path, OPERATOR_KEY)
        assert answer.status == 404
        assert answer.body["error"]["code"] == "dead_letter_not_found"
    for query in ("limit=0", "limit=201", "limit=x", "cursor=not-a-cursor"):
        answer = http("GET", f"/admin/dead-letters?{query}", OPERATOR_KEY)
        assert answer.status == 400, (query, answer.body)
