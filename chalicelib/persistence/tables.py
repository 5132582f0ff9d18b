"""Bind the models to the configured tables and endpoint; create the tables where needed."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from pynamodb.connection import Connection

from chalicelib.persistence.models import (
    ALL_MODELS,
    ControlItem,
    MembershipItem,
    RecordItem,
)
from chalicelib.settings import Settings, get_settings

_bound: Settings | None = None
_connection: Connection | None = None


def bind(settings: Settings | None = None) -> Settings:
    """Point every model at the settings' tables and endpoint (idempotent, cheap)."""
    global _bound, _connection
    settings = settings or get_settings()
    if _bound == settings:
        return settings
    names = {
        RecordItem: settings.records_table,
        MembershipItem: settings.memberships_table,
        ControlItem: settings.control_table,
    }
    for model in ALL_MODELS:
        base = next(base for base in names if issubclass(model, base))
        model.Meta.table_name = names[base]
        model.Meta.host = settings.dynamodb_endpoint
        model.Meta.region = settings.region
        model._connection = None  # drop a connection made for other settings
    _bound = settings
    _connection = Connection(region=settings.region, host=settings.dynamodb_endpoint)
    return settings


def connection() -> Connection:
    """The low-level connection for transactions, bound like the models."""
    if _connection is None:
        bind()
    assert _connection is not None
    return _connection


def dynamodb_client(settings: Settings | None = None) -> Any:
    settings = settings or get_settings()
    return _client(settings.region, settings.dynamodb_endpoint)


@lru_cache(maxsize=8)
def _client(region: str, endpoint: str | None) -> Any:
    import boto3

    return boto3.client("dynamodb", region_name=region, endpoint_url=endpoint)


def create_tables(settings: Settings | None = None) -> None:
    """Create missing tables (local runtime and tests; infra/ owns them in AWS)."""
    settings = bind(settings)
    client = dynamodb_client(settings)
    for model in (RecordItem, MembershipItem, ControlItem):
        if not model.exists():
            model.create_table(wait=True)
        else:
            _add_missing_indexes(client, model)
    existing = client.list_tables()["TableNames"]
    if settings.idempotency_table not in existing:
        client.create_table(
            TableName=settings.idempotency_table,
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        client.get_waiter("table_exists").wait(TableName=settings.idempotency_table)
        client.update_time_to_live(
            TableName=settings.idempotency_table,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": "expiration"},
        )


def _add_missing_indexes(client: Any, model: Any) -> None:
    """A table kept in SEGMENTS_DATA_DIR from an older version gets the indexes added since."""
    table = client.describe_table(TableName=model.Meta.table_name)["Table"]
    present = {index["IndexName"] for index in table.get("GlobalSecondaryIndexes", [])}
    for index in model._get_schema()["global_secondary_indexes"]:
        if index["index_name"] in present:
            continue
        client.update_table(
            TableName=model.Meta.table_name,
            AttributeDefinitions=index["attribute_definitions"],
            GlobalSecondaryIndexUpdates=[{"Create": {
                "IndexName": index["index_name"], "KeySchema": index["key_schema"],
                "Projection": index["projection"]}}])


def stream_arn(table_name: str, settings: Settings | None = None) -> str:
    description = dynamodb_client(settings).describe_table(TableName=table_name)
    return str(description["Table"]["LatestStreamArn"])


class Transaction:
    """TransactWriteItems that remembers what each operation is, so a cancelled transaction
    says which condition failed. (PynamoDB sends checks, deletes, puts, then updates, not
    call order; DynamoDB's cancellation reasons follow the order sent.)"""

    _ORDER = ("check", "delete", "put", "update")

    def __init__(self) -> None:
        from pynamodb.transactions import TransactWrite

        self._write = TransactWrite(connection=connection())
        self._labels: dict[str, list[str]] = {kind: [] for kind in self._ORDER}

    def check(self, label: str, model_cls: Any, hash_key: str, range_key: str,
              condition: Any) -> None:
        """A condition on an item the transaction does not write."""
        self._write.condition_check(model_cls, hash_key, range_key, condition=condition)
        self._labels["check"].append(label)

    def put(self, label: str, model: Any, condition: Any = None) -> None:
        self._write.save(model, condition=condition)
        self._labels["put"].append(label)

    def delete(self, label: str, model: Any, condition: Any = None,
               add_version_condition: bool = True) -> None:
        self._write.delete(model, condition=condition,
                           add_version_condition=add_version_condition)
        self._labels["delete"].append(label)

    def update(self, label: str, model: Any, actions: list[Any], condition: Any = None,
               add_version_condition: bool = True) -> None:
        self._write.update(model, actions=actions, condition=condition,
                           add_version_condition=add_version_condition)
        self._labels["update"].append(label)

    def commit(self) -> set[str]:
        """Write all or nothing; answers the labels whose conditions failed (empty: done).
        Any other failure raises."""
        from pynamodb.exceptions import TransactWriteError

        try:
            self._write._commit()
        except TransactWriteError as error:
            labels = [label for kind in self._ORDER for label in self._labels[kind]]
            failed = {labels[index] for index, reason in enumerate(error.cancellation_reasons)
                      if reason is not None and reason.code == "ConditionalCheckFailed"
                      and index < len(labels)}
            if not failed:
                raise
            return failed
        return set()
