"""The work queue (SQS) of the backfill worker: one message per shard of a backfill run, so
shards run in parallel in AWS and a crashed shard comes back to another consumer; and one per
chunk of a large organization's contacts to re-check (`kind: recheck`)."""

from __future__ import annotations

import json
import os
from functools import lru_cache
from typing import Any

from chalicelib.settings import get_settings

BACKFILL_QUEUE = "segments-backfill"


def backfill_queue_name() -> str:
    return os.environ.get("SEGMENTS_BACKFILL_QUEUE", BACKFILL_QUEUE)


@lru_cache(maxsize=4)
def _sqs(region: str, endpoint: str | None) -> Any:
    import boto3

    return boto3.client("sqs", region_name=region, endpoint_url=endpoint)


class SqsBackfillQueue:
    def enqueue(self, workspace_id: str, segment_id: str, run: str, shards: list[int]) -> None:
        settings = get_settings()
        sqs = _sqs(settings.region, settings.sqs_endpoint)
        url = sqs.get_queue_url(QueueName=backfill_queue_name())["QueueUrl"]
        entries = [{"Id": str(shard), "MessageBody": json.dumps({
            "workspace_id": workspace_id, "segment_id": segment_id, "run": run,
            "shard": shard})} for shard in shards]
        for start in range(0, len(entries), 10):
            answer = sqs.send_message_batch(QueueUrl=url, Entries=entries[start:start + 10])
            if answer.get("Failed"):
                raise RuntimeError(f"could not queue backfill work: {answer['Failed']}")

    def enqueue_recheck(self, workspace_id: str, segment_ids: list[str],
                        contact_ids: list[str]) -> None:
        settings = get_settings()
        sqs = _sqs(settings.region, settings.sqs_endpoint)
        url = sqs.get_queue_url(QueueName=backfill_queue_name())["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps({
            "kind": "recheck", "workspace_id": workspace_id, "segment_ids": segment_ids,
            "contact_ids": contact_ids}))
