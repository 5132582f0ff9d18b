"""The backfill worker: SQS messages, one shard of one segment each, or a chunk of a large
organization's contacts to re-check (powertools BatchProcessor, partial batch failures: a
failed message comes back, the others are done)."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from chalice import Blueprint
from chalice.app import SQSEvent

from chalicelib.adapters import deps
from chalicelib.persistence.queues import BACKFILL_QUEUE

bp = Blueprint(__name__)
processor = BatchProcessor(event_type=EventType.SQS)


def handle_message(record: SQSRecord) -> None:
    work = json.loads(record.body)
    if work.get("kind") == "recheck":
        deps.live().recheck_contacts(str(work["workspace_id"]), list(work["segment_ids"]),
                                     list(work["contact_ids"]))
        return
    deps.segments().backfill_shard(str(work["workspace_id"]), str(work["segment_id"]),
                                   str(work["run"]), int(work["shard"]))


@bp.on_sqs_message(queue=BACKFILL_QUEUE, batch_size=4, name="backfill_worker")
def backfill_worker(event: SQSEvent) -> dict[str, Any]:
    return dict(process_partial_response(event=event.to_dict(), record_handler=handle_message,
                                         processor=processor,
                                         context=event.context))  # type: ignore[arg-type]
