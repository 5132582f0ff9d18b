"""The local event runtime: delivers DynamoDB stream records, SQS messages (S3 object events
arrive that way, as in the deployed stack) and schedules to the handler functions the Chalice
app registered, with Lambda's semantics:

- stream records in batches per shard, in order; a handler's `batchItemFailures` makes the
  runtime retry from the lowest failed sequence number; an exception fails the whole batch
  and halves the next batch (bisect on error); past `max_retries` the failing record goes to
  the dead-letter table (DeadLetterItem) and the shard moves on;
- checkpoints (last sequence number done per shard) live in DynamoDB, so a restarted runtime
  resumes where it stopped, and a record is delivered at least once;
- SQS messages are deleted when handled; failed ones come back after a backoff, and the
  queue's redrive policy moves them to its dead-letter queue;
- `rate(...)` schedules fire on time (`SEGMENTS_SCHEDULE_SECONDS` shortens every period).
"""

from __future__ import annotations

import os
import re
import signal
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from chalice import Chalice
from chalice.app import DynamoDBEventConfig, ScheduledEventConfig, SQSEventConfig

from chalicelib.adapters import deps
from chalicelib.adapters.invoke import Handler, LambdaContext, failed_identifiers
from chalicelib.settings import Settings, get_settings


@dataclass
class Delivery:
    """What the runtime did, for tests and the status line."""

    consumer: str
    records: int
    failed: int


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- DynamoDB streams ------------------------------------------------------------------------

class StreamConsumer:
    def __init__(self, runtime: EventRuntime, name: str, handler: Handler, table: str,
                 batch_size: int, starting_position: str = "TRIM_HORIZON") -> None:
        self.runtime = runtime
        self.name = name
        self.handler = handler
        self.table = table
        self.batch_size = batch_size
        self.starting_position = starting_position
        self.ignore_checkpoints = False
        self.checkpointed: set[str] = set()
        self.stream_arn: str | None = None
        self.shards: dict[str, dict[str, Any]] = {}
        self.finished: set[str] = set()
        self.iterators: dict[str, str | None] = {}
        self.buffers: dict[str, list[dict[str, Any]]] = {}
        self.attempts: dict[str, int] = {}
        self.limit = batch_size
        self._described = 0.0

    # shard discovery, parents before children
    def _refresh_shards(self) -> None:
        if time.monotonic() - self._described < 2.0 and self.stream_arn:
            return
        client = self.runtime.streams_client
        if self.stream_arn is None:
            table = self.runtime.tables_client.describe_table(TableName=self.table)["Table"]
            self.stream_arn = table.get("LatestStreamArn")
            if not self.stream_arn:
                raise RuntimeError(f"table {self.table} has no stream")
        shards: list[dict[str, Any]] = []
        start: dict[str, Any] = {}
        while True:
            description = client.describe_stream(StreamArn=self.stream_arn, **start)
            shards += description["StreamDescription"]["Shards"]
            last = description["StreamDescription"].get("LastEvaluatedShardId")
            if not last:
                break
            start = {"ExclusiveStartShardId": last}
        self.shards = {shard["ShardId"]: shard for shard in shards}
        self._described = time.monotonic()

    def _ready_shards(self) -> list[str]:
        ready = []
        for shard_id, shard in self.shards.items():
            parent = shard.get("ParentShardId")
            if shard_id in self.finished:
                continue
            if parent and parent in self.shards and parent not in self.finished:
                continue
            ready.append(shard_id)
        return ready

    def _iterator(self, shard_id: str) -> str | None:
        if shard_id not in self.iterators:
            checkpoint = (None if self.ignore_checkpoints and shard_id not in self.checkpointed
                          else self.runtime.checkpoints.get(self.name, shard_id))
            args: dict[str, Any] = {"StreamArn": self.stream_arn, "ShardId": shard_id}
            if checkpoint:
                args.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER",
                            SequenceNumber=checkpoint)
            else:  # a new event source mapping starts where it was told to
                args.update(ShardIteratorType=self.starting_position)
            self.iterators[shard_id] = self.runtime.streams_client.get_shard_iterator(
                **args)["ShardIterator"]
        return self.iterators[shard_id]

    def skip_to_latest(self, save: bool = False) -> None:
        """Start every shard after its newest record, whatever the checkpoints say (with
        `save`, also checkpoint there, so another runtime starts there too); a shard
        that is empty now (or appears later) starts at its beginning. (Reads to the end rather
        than asking for LATEST: an iterator DynamoDB Local hands out for an empty shard fails
        with TrimmedDataAccess once records arrive.)"""
        self._refresh_shards()
        self.buffers.clear()
        self.iterators.clear()
        self.starting_position = "TRIM_HORIZON"
        self.ignore_checkpoints = True  # older than the skip; until this runtime writes its own
        client = self.runtime.streams_client
        for shard_id in self.shards:
            iterator = client.get_shard_iterator(
                StreamArn=self.stream_arn, ShardId=shard_id,
                ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
            last = None
            while iterator:
                page = client.get_records(ShardIterator=iterator, Limit=1000)
                if not page["Records"]:
                    break
                last = page["Records"][-1]["dynamodb"]["SequenceNumber"]
                iterator = page.get("NextShardIterator")
            if last is not None and save:
                self.runtime.checkpoints.put(self.name, shard_id, last)
                self.checkpointed.add(shard_id)
            if last is not None:  # position after the newest record, as a checkpoint would
                self.iterators[shard_id] = client.get_shard_iterator(
                    StreamArn=self.stream_arn, ShardId=shard_id,
                    ShardIteratorType="AFTER_SEQUENCE_NUMBER",
                    SequenceNumber=last)["ShardIterator"]

    def _fill(self, shard_id: str) -> list[dict[str, Any]]:
        buffer = self.buffers.setdefault(shard_id, [])
        if len(buffer) >= self.batch_size:
            return buffer
        iterator = self._iterator(shard_id)
        if iterator is None:
            if not buffer:
                self.finished.add(shard_id)
            return buffer
        client = self.runtime.streams_client
        try:
            response = client.get_records(ShardIterator=iterator, Limit=1000)
        except (client.exceptions.ExpiredIteratorException,
                client.exceptions.TrimmedDataAccessException):
            # start again from the checkpoint: records after it come again (at least once)
            self.iterators.pop(shard_id, None)
            self.buffers[shard_id] = []
            return []
        self.iterators[shard_id] = response.get("NextShardIterator")
        buffer += [self._lambda_shape(record) for record in response["Records"]]
        return buffer

    def _lambda_shape(self, record: dict[str, Any]) -> dict[str, Any]:
        stream = dict(record["dynamodb"])
        created = stream.get("ApproximateCreationDateTime")
        if isinstance(created, datetime):
            stream["ApproximateCreationDateTime"] = created.timestamp()
        return {
            "eventID": record["eventID"], "eventName": record["eventName"],
            "eventVersion": record.get("eventVersion", "1.1"), "eventSource": "aws:dynamodb",
            "awsRegion": self.runtime.settings.region, "dynamodb": stream,
            "eventSourceARN": self.stream_arn,
        }

    def pump(self) -> int:
        """Deliver at most one batch per ready shard; the number of records delivered."""
        self._refresh_shards()
        delivered = 0
        for shard_id in self._ready_shards():
            batch = self._fill(shard_id)[: self.limit]
            if batch:
                delivered += self._deliver(shard_id, batch)
        return delivered

    def _deliver(self, shard_id: str, batch: list[dict[str, Any]]) -> int:
        sequence_numbers = [record["dynamodb"]["SequenceNumber"] for record in batch]
        try:
            result = self.handler({"Records": batch}, LambdaContext(self.name))
            failed = failed_identifiers(result, sequence_numbers)
            error = "reported as a batch item failure"
        except Exception as exc:  # noqa: BLE001 - a handler error fails the batch, as in Lambda
            failed, error = None, f"{type(exc).__name__}: {exc}"
        if failed is None:
            failed = set(sequence_numbers)
            self.limit = max(1, len(batch) // 2)  # bisect on function error
        first_failed = next((i for i, s in enumerate(sequence_numbers) if s in failed), None)
        done = len(batch) if first_failed is None else first_failed
        self._advance(shard_id, done)
        self.runtime.record(Delivery(self.name, len(batch), len(failed)))
        if first_failed is None:
            self.limit = self.batch_size
            return len(batch)
        record = batch[first_failed]
        sequence = record["dynamodb"]["SequenceNumber"]
        self.attempts[sequence] = self.attempts.get(sequence, 0) + 1
        if self.attempts[sequence] > self.runtime.max_retries:
            self.runtime.dead_letters.record(self.name, self.stream_arn or "", record, error,
                                             self.attempts.pop(sequence))
            self._advance(shard_id, 1)
        else:
            time.sleep(self.runtime.retry_backoff * self.attempts[sequence])
        return len(batch)

    def _advance(self, shard_id: str, count: int) -> None:
        if count <= 0:
            return
        buffer = self.buffers[shard_id]
        last = buffer[count - 1]["dynamodb"]["SequenceNumber"]
        del buffer[:count]
        self.runtime.checkpoints.put(self.name, shard_id, last)
        self.checkpointed.add(shard_id)


# -- SQS -------------------------------------------------------------------------------------

class QueueConsumer:
    def __init__(self, runtime: EventRuntime, name: str, handler: Handler, queue: str,
                 batch_size: int) -> None:
        self.runtime = runtime
        self.name = name
        self.handler = handler
        self.queue = queue
        self.batch_size = min(batch_size, 10)
        self._url: str | None = None
        self._arn: str | None = None

    def _queue(self) -> tuple[str, str]:
        if self._url is None:
            self._url, self._arn = self.runtime.ensure_queue(self.queue)
        assert self._arn is not None
        return self._url, self._arn

    def pump(self) -> int:
        url, arn = self._queue()
        messages = self.runtime.sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=self.batch_size, WaitTimeSeconds=0,
            AttributeNames=["All"], MessageAttributeNames=["All"]).get("Messages", [])
        if not messages:
            return 0
        records = [{
            "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
            "attributes": m.get("Attributes", {}), "messageAttributes": m.get(
                "MessageAttributes", {}), "md5OfBody": m.get("MD5OfBody"),
            "eventSource": "aws:sqs", "eventSourceARN": arn,
            "awsRegion": self.runtime.settings.region} for m in messages]
        ids = [record["messageId"] for record in records]
        try:
            failed = failed_identifiers(
                self.handler({"Records": records}, LambdaContext(self.name)), ids)
        except Exception:  # noqa: BLE001
            failed = None
        failed = set(ids) if failed is None else failed
        for record in records:
            if record["messageId"] in failed:
                self.runtime.sqs.change_message_visibility(
                    QueueUrl=url, ReceiptHandle=record["receiptHandle"],
                    VisibilityTimeout=max(1, int(self.runtime.retry_backoff * 10)))
            else:
                self.runtime.sqs.delete_message(QueueUrl=url,
                                                ReceiptHandle=record["receiptHandle"])
        self.runtime.record(Delivery(self.name, len(records), len(failed)))
        return len(records)


# -- schedules -------------------------------------------------------------------------------

_RATE = re.compile(r"^rate\((\d+)\s+(minute|minutes|hour|hours|day|days)\)$")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


def schedule_period(expression: Any) -> float:
    """Seconds between runs of a `rate(...)` expression (a `cron(...)` runs hourly locally)."""
    text = expression if isinstance(expression, str) else expression.to_string()
    match = _RATE.match(text.strip())
    if not match:
        return 3600.0
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2).rstrip("s")]


class ScheduledJob:
    def __init__(self, runtime: EventRuntime, name: str, handler: Handler, period: float,
                 start: float) -> None:
        self.runtime = runtime
        self.name = name
        self.handler = handler
        self.period = period
        self.next_due = start + period

    def fire_if_due(self, now: float) -> int:
        if now < self.next_due:
            return 0
        self.next_due = now + self.period
        event = {
            "version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event",
            "source": "aws.events", "account": "000000000000", "time": _now_iso(),
            "region": self.runtime.settings.region, "detail": {},
            "resources": [f"arn:aws:events:local:000000000000:rule/{self.name}"],
        }
        try:
            self.handler(event, LambdaContext(self.name))
            failed = 0
        except Exception:  # noqa: BLE001 - a failed run is logged; the next one comes on time
            failed = 1
        self.runtime.record(Delivery(self.name, 1, failed))
        return 1


# -- the runtime -----------------------------------------------------------------------------

class Checkpoints:
    def get(self, consumer: str, shard_id: str) -> str | None:
        from pynamodb.exceptions import DoesNotExist

        from chalicelib.persistence.models import CheckpointItem

        try:
            return CheckpointItem.get("RUNTIME#checkpoint", f"{consumer}#{shard_id}",
                                      consistent_read=True).sequence_number
        except DoesNotExist:
            return None

    def put(self, consumer: str, shard_id: str, sequence_number: str) -> None:
        from chalicelib.persistence.models import CheckpointItem

        CheckpointItem("RUNTIME#checkpoint", f"{consumer}#{shard_id}",
                       sequence_number=sequence_number, updated_at=_now_iso()).save()


def stream_table(stream_arn: str) -> str:
    match = re.search(r":table/([^/]+)/stream/", stream_arn)
    if not match:
        raise ValueError(f"not a DynamoDB stream ARN: {stream_arn}")
    return match.group(1)


class EventRuntime:
    def __init__(self, app: Chalice, settings: Settings | None = None, *, max_retries: int = 3,
                 retry_backoff: float = 0.05, poll_interval: float = 0.05,
                 schedule_seconds: float | None = None) -> None:
        import boto3

        from chalicelib.persistence import tables

        self.app = app
        self.settings = tables.bind(settings or get_settings())
        self.max_retries = max_retries
        self.retry_backoff = retry_backoff
        self.poll_interval = poll_interval
        self.streams_client = boto3.client("dynamodbstreams", region_name=self.settings.region,
                                           endpoint_url=self.settings.dynamodb_endpoint)
        self.tables_client = tables.dynamodb_client(self.settings)
        self._sqs: Any = None
        self.checkpoints = Checkpoints()
        self.dead_letters = deps.dead_letters(app.handler_map)
        self.deliveries: list[Delivery] = []
        self._lock = threading.Lock()
        self.streams: list[StreamConsumer] = []
        self.queues: list[QueueConsumer] = []
        self.schedules: list[ScheduledJob] = []
        start = time.monotonic()
        for source in app.event_sources:
            handler = app.handler_map[source.name]
            if isinstance(source, DynamoDBEventConfig):
                self.streams.append(StreamConsumer(self, source.name, handler,
                                                   stream_table(source.stream_arn),
                                                   source.batch_size, source.starting_position))
            elif isinstance(source, SQSEventConfig):
                queue = source.queue or (source.queue_arn or "").rsplit(":", 1)[-1]
                self.queues.append(QueueConsumer(self, source.name, handler, queue,
                                                 source.batch_size))
            elif isinstance(source, ScheduledEventConfig):
                period = schedule_seconds or schedule_period(source.schedule_expression)
                self.schedules.append(ScheduledJob(self, source.name, handler, period, start))

    @property
    def sqs(self) -> Any:
        if self._sqs is None:
            import boto3

            self._sqs = boto3.client("sqs", region_name=self.settings.region,
                                     endpoint_url=self.settings.sqs_endpoint)
        return self._sqs

    def ensure_queue(self, name: str) -> tuple[str, str]:
        from chalicelib.local.bootstrap import ensure_queue

        return ensure_queue(self.sqs, name, max_receive_count=self.max_retries + 1)

    def skip_to_latest(self, save: bool = False) -> None:
        """Tests: ignore what other tests left in the streams; deliver only what comes next."""
        for consumer in self.streams:
            consumer.skip_to_latest(save)

    def record(self, delivery: Delivery) -> None:
        with self._lock:
            self.deliveries.append(delivery)
            del self.deliveries[:-10_000]

    def pump_once(self, now: float | None = None) -> int:
        """One round over every source; the number of records/messages/events delivered."""
        delivered = 0
        for consumer in self.streams:
            delivered += consumer.pump()
        for queue in self.queues:
            delivered += queue.pump()
        moment = time.monotonic() if now is None else now
        for job in self.schedules:
            delivered += job.fire_if_due(moment)
        return delivered

    def drain(self, timeout: float = 30.0, quiet_rounds: int = 2) -> None:
        """Pump until `quiet_rounds` rounds in a row deliver nothing (tests)."""
        deadline = time.monotonic() + timeout
        quiet = 0
        while quiet < quiet_rounds:
            if time.monotonic() > deadline:
                raise TimeoutError("the event runtime did not go quiet")
            quiet = quiet + 1 if self.pump_once() == 0 else 0

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                if self.pump_once() == 0:
                    stop.wait(self.poll_interval)
            except Exception as exc:  # noqa: BLE001 - keep serving; say what went wrong
                print(f"event runtime: {type(exc).__name__}: {exc}", flush=True)
                stop.wait(1.0)


def main() -> None:
    """`python -m chalicelib.local.events`: run the app's event sources until SIGTERM."""
    import importlib
    import sys

    sys.path.insert(0, os.getcwd())
    app = importlib.import_module(os.environ.get("SEGMENTS_APP_MODULE", "app")).app
    schedule_seconds = os.environ.get("SEGMENTS_SCHEDULE_SECONDS")
    runtime = EventRuntime(app, max_retries=int(os.environ.get("SEGMENTS_MAX_RETRIES", "3")),
                           schedule_seconds=float(schedule_seconds) if schedule_seconds else None)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    consumers: list[StreamConsumer | QueueConsumer | ScheduledJob] = [
        *runtime.streams, *runtime.queues, *runtime.schedules]
    names = [consumer.name for consumer in consumers]
    print(f"event runtime: delivering to {', '.join(names) or 'nothing'}", flush=True)
    runtime.run(stop)


if __name__ == "__main__":
    main()
