"""Bulk reads without model objects: DynamoDB JSON straight to plain dicts. Listing a whole
workspace (explorers, previews, backfills) is dominated by deserialisation, so this path skips
PynamoDB's per-item model instantiation."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

from chalicelib.persistence.tables import dynamodb_client

JSON_FIELDS = frozenset({"attributes", "properties", "days", "totals", "rules", "payload"})


def _value(typed: dict[str, Any]) -> Any:
    (kind, value), = typed.items()
    if kind == "S":
        return value
    if kind == "N":
        return int(value) if value.lstrip("-").isdigit() else float(value)
    if kind == "BOOL":
        return value
    if kind == "NULL":
        return None
    if kind == "L":
        return [_value(item) for item in value]
    if kind == "M":
        return {key: _value(item) for key, item in value.items()}
    if kind in ("SS", "NS"):
        return [_value({kind[0]: item}) for item in value]
    return value


def plain(item: dict[str, Any]) -> dict[str, Any]:
    """A DynamoDB-JSON item (a query result or a stream image) as a plain dict."""
    result = {}
    for key, typed in item.items():
        value = _value(typed)
        if key in JSON_FIELDS and isinstance(value, str):
            value = json.loads(value)
        result[key] = value
    return result


def query_items(table: str, key_name: str, key_value: str, *, index: str | None = None,
                consistent: bool = False, descending: bool = False,
                sort_below: str | None = None, sort_above: str | None = None,
                sort_at_most: str | None = None, sort_prefix: str | None = None,
                page_size: int | None = None) -> Iterator[dict[str, Any]]:
    """The items of one partition (of the table or a GSI), page after page, as plain dicts;
    optionally newest first and only sort keys below/above a bound (`sk`)."""
    client = dynamodb_client()
    condition = "#k = :v"
    values: dict[str, Any] = {":v": {"S": key_value}}
    names = {"#k": key_name}
    for placeholder, bound, test in ((":below", sort_below, "#s < {}"),
                                     (":above", sort_above, "#s > {}"),
                                     (":most", sort_at_most, "#s <= {}"),
                                     (":prefix", sort_prefix, "begins_with(#s, {})")):
        if bound is not None:
            condition += " AND " + test.format(placeholder)
            values[placeholder] = {"S": bound}
            names["#s"] = "sk"
    args: dict[str, Any] = {
        "TableName": table, "KeyConditionExpression": condition,
        "ExpressionAttributeNames": names, "ExpressionAttributeValues": values,
        "ScanIndexForward": not descending,
    }
    if page_size:
        args["Limit"] = page_size
    if index:
        args["IndexName"] = index
    elif consistent:
        args["ConsistentRead"] = True
    while True:
        page = client.query(**args)
        for item in page["Items"]:
            yield plain(item)
        if "LastEvaluatedKey" not in page:
            return
        args["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _typed(value: Any) -> dict[str, Any]:
    if isinstance(value, list):
        return {"L": [_typed(item) for item in value]}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, (int, float)):
        return {"N": str(value)}
    if value is None:
        return {"NULL": True}
    return {"S": str(value)}


def batch_write(table: str, puts: list[dict[str, Any]], deletes: list[dict[str, str]],
                workers: int = 2) -> None:
    """BatchWriteItem in chunks of 25 over a few threads; unprocessed items are retried with
    exponential backoff (PynamoDB retries without backoff, then raises)."""
    from concurrent.futures import ThreadPoolExecutor

    client = dynamodb_client()
    requests = [{"PutRequest": {"Item": {k: _typed(v) for k, v in item.items()
                                         if v is not None}}} for item in puts]
    requests += [{"DeleteRequest": {"Key": {k: {"S": v} for k, v in key.items()}}}
                 for key in deletes]

    def send(chunk: list[dict[str, Any]]) -> None:
        pending: dict[str, Any] = {table: chunk}
        delay = 0.05
        for _ in range(12):
            pending = client.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
            if not pending:
                return
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
        raise RuntimeError(f"{sum(len(v) for v in pending.values())} writes still unprocessed")

    chunks = [requests[i:i + 25] for i in range(0, len(requests), 25)]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(send, chunks))
