"""Backfill of a segment over 50,000 contacts vs a raw scan of the same contacts plus a raw
batch write of the same number of memberships, on the same DynamoDB Local, in one run.

The backfill runs all 16 shards in this process through SegmentsService.backfill_shard (the
function the SQS worker calls); the queue is skipped so only the work itself is timed.
It writes a member item per member and its history as plan chunks (100 records an item); a
second baseline writes a member item and a separate event item per member, raw.
"""

from __future__ import annotations

import os
import statistics
from datetime import UTC, datetime
from typing import Any

from bench.common import fresh_dynamodb, raw_scan, report, seed_contacts, timed
from bench.filters import synthetic_contacts

RULES = {"add": {"all": [
    {"field": "tags", "op": "has_any", "value": ["Economic buyer", "Ideal persona"]}]}}


class CollectingQueue:
    def __init__(self) -> None:
        self.work: list[tuple[str, str, str, int]] = []

    def enqueue(self, workspace_id: str, segment_id: str, run: str, shards: list[int]) -> None:
        self.work += [(workspace_id, segment_id, run, shard) for shard in shards]


def run() -> dict[str, float]:
    n = int(os.environ.get("BENCH_BACKFILL_N", "50000"))
    rounds = int(os.environ.get("BENCH_BACKFILL_ROUNDS", "3"))
    with fresh_dynamodb() as settings:
        from chalicelib.domain.identity import Principal, Role
        from chalicelib.domain.ids import new_id
        from chalicelib.persistence.repositories import DynamoMembershipReader, DynamoRecordStore
        from chalicelib.persistence.segments import DynamoSegmentStore
        from chalicelib.persistence.tables import dynamodb_client
        from chalicelib.services.search import SearchService
        from chalicelib.services.segments import SegmentsService

        workspace = "ws_bench"
        seed_contacts(workspace, synthetic_contacts(n))
        clock = lambda: datetime.now(UTC)  # noqa: E731
        queue = CollectingQueue()
        store = DynamoSegmentStore()
        service = SegmentsService(store, DynamoRecordStore(), SearchService(
            DynamoRecordStore(), DynamoMembershipReader(), clock), queue, clock)
        admin = Principal(workspace_id=workspace, user_id="bench", role=Role.ADMIN)
        client = dynamodb_client(settings)
        members: list[int] = []

        def backfill() -> None:
            segment, _ = service.create(admin, {"kind": "contact", "name": new_id("bench"),
                                                "rules": RULES})
            for work in queue.work:
                service.backfill_shard(*work)
            queue.work.clear()
            done = store.get_segment(workspace, segment.id)
            assert done is not None and done.status == "ready"
            members.append(done.member_count)

        def raw(items_per_member: int) -> Any:
            def scan_and_write() -> None:
                ids = raw_scan(settings, workspace)
                segment = new_id("raw")
                wanted = ids[: members[0]] * items_per_member
                requests = [{"PutRequest": {"Item": {
                    "pk": {"S": f"W#{workspace}#S#{segment}#{i % 16:02d}"},
                    "sk": {"S": f"{record_id}#{i}"}, "source": {"S": "rule"},
                    "added_at": {"S": "2026-12-04T00:00:00Z"}}}}
                    for i, record_id in enumerate(wanted)]
                for start in range(0, len(requests), 25):
                    pending = {settings.memberships_table: requests[start:start + 25]}
                    while pending:
                        pending = client.batch_write_item(RequestItems=pending).get(
                            "UnprocessedItems") or {}
            return scan_and_write

        backfill()  # warm up, and learn how many members the rules give
        times: dict[str, list[float]] = {"backfill": [], "raw_1": [], "raw_2": []}
        ways = {"backfill": backfill, "raw_1": raw(1), "raw_2": raw(2)}
        order = list(ways)
        for round_number in range(rounds):
            for name in order[round_number % 3:] + order[:round_number % 3]:
                times[name].append(timed(ways[name]))
    median = {name: statistics.median(values) for name, values in times.items()}
    result = {"n": float(n), "members": float(members[0]), **{f"{k}_s": v
                                                              for k, v in median.items()},
              "ratio_members": median["backfill"] / median["raw_1"],
              "ratio_items": median["backfill"] / median["raw_2"]}
    report(f"backfill over {n:,} contacts ({members[0]:,} members; median of {rounds})", [
        ("backfill (16 shards, members + history)", f"{median['backfill']:.2f} s"),
        ("raw scan + raw batch write, 1 item/member", f"{median['raw_1']:.2f} s"),
        ("raw scan + raw batch write, 2 items/member", f"{median['raw_2']:.2f} s"),
        ("ratio backfill / raw (same memberships)", f"{result['ratio_members']:.2f}x "
                                                     "(goal <= 1.3x)"),
        ("ratio backfill / raw with an event per member", f"{result['ratio_items']:.2f}x"),
    ])
    return result


if __name__ == "__main__":
    run()
