"""Create what the deployed stack's infra/ creates: tables, the imports bucket, its queue and
the S3 -> SQS notification. Local runtime and tests only; every step is idempotent."""

from __future__ import annotations

import json
from typing import Any

from chalicelib.persistence.queues import backfill_queue_name
from chalicelib.settings import Settings

IMPORTS_QUEUE = "segments-imports"


def _client(service: str, settings: Settings) -> Any:
    import boto3

    endpoint = settings.s3_endpoint if service == "s3" else settings.sqs_endpoint
    return boto3.client(service, region_name=settings.region, endpoint_url=endpoint)


def ensure_queue(sqs: Any, name: str, *, max_receive_count: int = 4,
                 visibility_timeout: int = 30) -> tuple[str, str]:
    """A queue with a dead-letter queue `<name>-dlq`; answers (url, arn). An existing queue
    is used as it is (its attributes were set by whoever made it)."""
    try:
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"]
        return url, arn
    except sqs.exceptions.QueueDoesNotExist:
        pass
    dlq_url = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    url = sqs.create_queue(QueueName=name, Attributes={
        "VisibilityTimeout": str(visibility_timeout),
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn,
                                     "maxReceiveCount": str(max_receive_count)}),
    })["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    return url, arn


def route_bucket_to_queue(s3: Any, bucket: str, queue_arn: str, prefix: str = "") -> None:
    """ObjectCreated events of `bucket` (under `prefix`) go to the queue, as in infra/."""
    rule: dict[str, Any] = {"QueueArn": queue_arn, "Events": ["s3:ObjectCreated:*"]}
    if prefix:
        rule["Filter"] = {"Key": {"FilterRules": [{"Name": "prefix", "Value": prefix}]}}
    s3.put_bucket_notification_configuration(
        Bucket=bucket, NotificationConfiguration={"QueueConfigurations": [rule]})


def ensure_bucket(s3: Any, bucket: str) -> None:
    existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    if bucket not in existing:
        s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})


def bootstrap(settings: Settings) -> None:
    from chalicelib.persistence import tables

    tables.create_tables(settings)
    if settings.s3_endpoint:
        s3 = _client("s3", settings)
        ensure_bucket(s3, settings.imports_bucket)
        sqs = _client("sqs", settings)
        _, queue_arn = ensure_queue(sqs, IMPORTS_QUEUE)
        route_bucket_to_queue(s3, settings.imports_bucket, queue_arn)
        ensure_queue(sqs, backfill_queue_name(), visibility_timeout=10)
