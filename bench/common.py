"""Shared set-up of the benchmarks: a fresh in-memory DynamoDB Local, settings, timing."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from chalicelib.local.processes import free_port, start_dynamodb_local, stop


@contextmanager
def fresh_dynamodb() -> Iterator[Any]:
    """A DynamoDB Local of its own, with the tables; answers the bound settings."""
    process = start_dynamodb_local(free_port())
    port = process.args[process.args.index("-port") + 1]
    os.environ.update({
        "SEGMENTS_DYNAMODB_ENDPOINT": f"http://127.0.0.1:{port}",
        "SEGMENTS_OPERATOR_KEY": "op_bench_operator_key_0123456789",
        "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_DEFAULT_REGION": "us-east-1", "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_DISABLED": "true",
    })
    from chalicelib.persistence import tables
    from chalicelib.settings import get_settings, reset_settings

    reset_settings()
    tables.create_tables(get_settings())
    try:
        yield get_settings()
    finally:
        stop(process)


def timed(function: Callable[[], Any]) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def median_of(runs: int, function: Callable[[], Any]) -> float:
    return statistics.median(timed(function) for _ in range(runs))


def report(name: str, rows: list[tuple[str, str]]) -> None:
    print(f"\n== {name}")
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"  {label:<{width}}  {value}")


def seed_contacts(workspace_id: str, records: list[dict[str, Any]]) -> float:
    """Batch-write contacts (as the API stores them) straight to the table; seconds taken."""
    from chalicelib.domain.ids import new_id
    from chalicelib.domain.records import Contact
    from chalicelib.persistence.models import ContactItem
    from chalicelib.persistence.repositories import contact_item

    started = time.perf_counter()
    with ContactItem.batch_write() as batch:
        for record in records:
            batch.save(contact_item(Contact(
                workspace_id=workspace_id, id=new_id("c"), name=record["name"],
                title=record.get("title"), tags=record["tags"], country=record.get("country"),
                attributes=record["attributes"], created_at="2026-12-01T00:00:00Z",
                updated_at="2026-12-01T00:00:00Z")))
    return time.perf_counter() - started


def raw_scan(settings: Any, workspace_id: str) -> list[str]:
    """The naive baseline: the same queries the service makes, with boto3, nothing else."""
    from chalicelib.persistence.repositories import workspace_partitions
    from chalicelib.persistence.tables import dynamodb_client

    client = dynamodb_client(settings)
    ids = []
    for key in workspace_partitions(workspace_id, "C"):
        args: dict[str, Any] = {"TableName": settings.records_table,
                                "KeyConditionExpression": "pk = :v",
                                "ExpressionAttributeValues": {":v": {"S": key}}}
        while True:
            page = client.query(**args)
            ids += [item["sk"]["S"] for item in page["Items"]]
            if "LastEvaluatedKey" not in page:
                break
            args["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    return ids
