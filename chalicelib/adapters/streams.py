"""Consumers of the records table's stream: one typed function per record, run by a
powertools BatchProcessor that reports partial batch failures to Lambda."""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from chalice import Blueprint
from chalice.app import DynamoDBEvent

from chalicelib.adapters import deps
from chalicelib.domain.filters import changed_paths
from chalicelib.observability import logger, metrics
from chalicelib.persistence.raw import plain
from chalicelib.services.changes import RecordChange, apply_change

bp = Blueprint(__name__)
processor = BatchProcessor(event_type=EventType.DynamoDBStreams)

# Chalice needs the ARN when the decorator runs. In AWS, deploy with the real ARN in the
# environment (infra/README.md); the local runtime reads the table name out of this one.
LOCAL_RECORDS_STREAM = "arn:aws:dynamodb:local:000000000000:table/segments-records/stream/local"
_KINDS = {"INSERT": "insert", "MODIFY": "modify", "REMOVE": "remove"}
IDEMPOTENCY_SECONDS = 3 * 24 * 3600  # longer than the stream's 24-hour retention


def change_of(record: DynamoDBRecord) -> RecordChange | None:
    """The change a stream record describes, or None for items that are not records."""
    stream = record.raw_event.get("dynamodb") or {}
    new = plain(stream["NewImage"]) if stream.get("NewImage") else None
    old = plain(stream["OldImage"]) if stream.get("OldImage") else None
    image = new or old
    if not image or image.get("kind") not in ("contact", "organization", "activity"):
        return None
    return RecordChange(kind=_KINDS[record.raw_event["eventName"]],  # type: ignore[arg-type]
                        record_type=str(image["kind"]), workspace_id=str(image["workspace_id"]),
                        new=new, old=old)


@lru_cache(maxsize=1)
def _apply_once() -> tuple[Callable[..., Any], Any]:
    """apply_change guarded by powertools idempotency on the stream record's eventID."""
    from aws_lambda_powertools.utilities.idempotency import (
        DynamoDBPersistenceLayer,
        IdempotencyConfig,
        idempotent_function,
    )

    from chalicelib.persistence import tables
    from chalicelib.persistence.repositories import DynamoRecordStore

    settings = deps.bound_settings()
    persistence = DynamoDBPersistenceLayer(table_name=settings.idempotency_table,
                                           boto3_client=tables.dynamodb_client(settings))
    config = IdempotencyConfig(event_key_jmespath="eventID",
                               expires_after_seconds=IDEMPOTENCY_SECONDS)
    store = DynamoRecordStore()

    @idempotent_function(data_keyword_argument="record", persistence_store=persistence,
                         config=config)
    def apply(record: dict[str, Any]) -> None:
        change = change_of(DynamoDBRecord(record))
        if change is not None:
            apply_change(change, store, deps.now()[:10])

    return apply, config


def handle_record(record: DynamoDBRecord) -> None:
    change = change_of(record)
    if change is None:
        return
    apply, _ = _apply_once()
    apply(record=record.raw_event)  # derived data: once per stream record
    evaluate(change)  # segments: idempotent by construction, so outside that guard


def evaluate(change: RecordChange) -> None:
    """Re-check the segments this change can affect (the field index decides which)."""
    live = deps.live()
    image = change.new or change.old or {}
    if change.record_type == "activity":
        if change.kind == "insert":
            live.activity_added(change.workspace_id, str(image["contact_id"]))
        return
    changed = changed_paths(change.old if change.kind != "insert" else None,
                            change.new if change.kind != "remove" else None)
    if changed:
        live.record_changed(change.workspace_id, change.record_type, str(image["id"]), changed,
                            old_org=(change.old or {}).get("org_id"),
                            new_org=(change.new or {}).get("org_id"))


@bp.on_dynamodb_record(stream_arn=os.environ.get("SEGMENTS_RECORDS_STREAM_ARN",
                                                 LOCAL_RECORDS_STREAM),
                       batch_size=100, starting_position="TRIM_HORIZON",
                       name="records_stream")
def records_stream(event: DynamoDBEvent) -> dict[str, Any]:
    _, idempotency = _apply_once()
    idempotency.register_lambda_context(event.context)
    response = process_partial_response(event=event.to_dict(), record_handler=handle_record,
                                        processor=processor,
                                        context=event.context)  # type: ignore[arg-type]
    failures = len(response.get("batchItemFailures", []))
    metrics.add_metric(name="RecordChangesFailed", unit=MetricUnit.Count, value=failures)
    if failures:
        logger.warning("records stream batch had failures", extra={"failed": failures})
    return dict(response)
