"""A backfill killed mid-way (SIGKILL of the worker process) resumes to exactly the membership
an uninterrupted backfill reaches, with one history event per member."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from chalicelib.local.processes import ROOT
from tests.helpers import every_page, wait_for

CONTACTS = 20_000
RULES = {"add": {"any": [{"field": "tags", "op": "has_any", "value": ["buyer"]},
                         {"field": "attributes.score", "op": "gte", "value": 90}]}}


def seed(workspace_id: str) -> None:
    from chalicelib.domain.ids import new_id
    from chalicelib.domain.records import Contact
    from chalicelib.persistence.models import ContactItem
    from chalicelib.persistence.repositories import contact_item

    with ContactItem.batch_write() as batch:
        for i in range(CONTACTS):
            batch.save(contact_item(Contact(
                workspace_id=workspace_id, id=new_id("c"), name=f"p{i}",
                tags=["buyer"] if i % 3 == 0 else ["other"], attributes={"score": i % 100},
                created_at="2026-12-01T00:00:00Z", updated_at="2026-12-01T00:00:00Z")))


def worker(settings) -> subprocess.Popen:  # type: ignore[no-untyped-def, type-arg]
    env = {**os.environ, "SEGMENTS_APP_MODULE": "tests.integration.backfill_app"}
    return subprocess.Popen([sys.executable, "-m", "chalicelib.local.events"], cwd=ROOT,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def members(store, workspace_id: str, segment_id: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {record_id: member["source"] for shard in range(16)
            for record_id, member in store.shard_members(workspace_id, segment_id, shard).items()}


def test_a_killed_backfill_resumes_to_the_same_membership(http, workspace, settings):
    from chalicelib.persistence.segments import DynamoSegmentStore

    store = DynamoSegmentStore()
    seed(workspace.id)

    def progress(segment_id: str) -> tuple[int, str]:
        segment = store.get_segment(workspace.id, segment_id)
        assert segment is not None
        return len((segment.backfill or {}).get("done", [])), segment.status

    # Given a backfill whose worker is killed after a few shards
    interrupted = http("POST", "/segments", workspace.admin_key,
                       {"kind": "contact", "name": "Interrupted", "rules": RULES}).body["id"]
    first = worker(settings)
    try:
        wait_for(lambda: progress(interrupted)[0] >= 3, 120, "three shards done", every=0.05)
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    done_at_kill, status = progress(interrupted)
    assert status == "backfilling" and done_at_kill < 16, "the kill came too late to test"

    # When a new worker starts, it resumes (the in-flight shard comes back from the queue)
    second = worker(settings)
    try:
        wait_for(lambda: progress(interrupted)[1] == "ready", 180, "the resumed backfill")
        # And an uninterrupted backfill of the same rules, for comparison
        whole = http("POST", "/segments", workspace.admin_key,
                     {"kind": "contact", "name": "Uninterrupted", "rules": RULES}).body["id"]
        wait_for(lambda: progress(whole)[1] == "ready", 180, "the uninterrupted backfill")
    finally:
        os.killpg(second.pid, signal.SIGKILL)
        second.wait()

    # Then both hold exactly the same records, and the count says so
    resumed, reference = members(store, workspace.id, interrupted), members(
        store, workspace.id, whole)
    expected = sum(1 for i in range(CONTACTS) if i % 3 == 0 or i % 100 >= 90)
    assert len(reference) == expected
    assert set(resumed) == set(reference)
    assert store.member_count(workspace.id, interrupted) == expected
    segment = http("GET", f"/segments/{interrupted}", workspace.admin_key).body
    assert segment["member_count"] == expected and segment["backfill"]["shards_done"] == 16
    # and the history has exactly one "added" event per member
    events = every_page(lambda cursor: store.history(workspace.id, interrupted, 200, cursor))
    assert len(events) == expected
    assert {e["record_id"] for e in events} == set(resumed)
