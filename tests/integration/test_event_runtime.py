"""The local event runtime delivers streams, S3 events (via SQS) and schedules to the handlers
an app registered, with Lambda's semantics. The consumers here are defined by the tests."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from urllib.parse import unquote_plus

from chalice import Chalice, Rate

from chalicelib.adapters.streams import LOCAL_RECORDS_STREAM
from chalicelib.domain.identity import OPERATOR
from chalicelib.local.bootstrap import ensure_bucket, route_bucket_to_queue
from chalicelib.local.events import EventRuntime
from tests.helpers import every_page


@dataclass
class Probe:
    workspace_id: str
    poison: set[str] = field(default_factory=set)    # always reported as failed
    flaky: set[str] = field(default_factory=set)     # reported failed on first delivery only
    bombs: set[str] = field(default_factory=set)     # the handler raises on these
    attempts: dict[str, int] = field(default_factory=dict)
    done: list[str] = field(default_factory=list)
    messages: list[dict] = field(default_factory=list)
    scheduled: list[dict] = field(default_factory=list)


def probe_app(probe: Probe) -> Chalice:
    app = Chalice(app_name="probe")
    suffix = uuid.uuid4().hex[:8]

    @app.on_dynamodb_record(stream_arn=LOCAL_RECORDS_STREAM, batch_size=10,
                            name=f"probe_stream_{suffix}")
    def on_records(event):
        failures = []
        for record in event.to_dict()["Records"]:
            image = record["dynamodb"].get("NewImage") or {}
            if image.get("workspace_id", {}).get("S") != probe.workspace_id or \
                    record["eventName"] != "INSERT" or image["kind"]["S"] != "contact":
                continue
            name = image["name"]["S"]
            probe.attempts[name] = probe.attempts.get(name, 0) + 1
            if name in probe.bombs:
                raise RuntimeError(f"cannot handle {name}")
            if name in probe.poison or (name in probe.flaky and probe.attempts[name] == 1):
                failures.append({"itemIdentifier": record["dynamodb"]["SequenceNumber"]})
                continue
            probe.done.append(name)
        return {"batchItemFailures": failures}

    @app.on_sqs_message(queue=f"probe-drops-{suffix}", batch_size=5, name=f"probe_sqs_{suffix}")
    def on_message(event):
        for record in event.to_dict()["Records"]:
            probe.messages.append(json.loads(record["body"]))

    @app.schedule(Rate(15, unit=Rate.MINUTES), name=f"probe_schedule_{suffix}")
    def on_schedule(event):
        probe.scheduled.append(event.to_dict())

    return app


def test_failed_items_are_retried_then_dead_lettered_while_the_batch_goes_on(
        http, workspace, settings):
    # Given a consumer that always fails "poison", fails "flaky" once and raises on "bomb"
    probe = Probe(workspace.id, poison={"poison"}, flaky={"flaky"}, bombs={"bomb"})
    runtime = EventRuntime(probe_app(probe), settings, max_retries=2, retry_backoff=0.0)
    runtime.skip_to_latest()
    names = ["a", "flaky", "b", "poison", "c", "bomb", "d", "e"]
    for name in names:
        assert http("POST", "/contacts", workspace.member_key, {"name": name}).status == 201

    # When the runtime delivers the stream
    runtime.drain()

    # Then every good record was handled, the flaky one on its retry
    assert set(probe.done) == {"a", "flaky", "b", "c", "d", "e"}
    assert probe.attempts["flaky"] == 2
    # and the poison records failed as the first of their batch 1 + max_retries times (a
    # retry re-sends the records after a failed one too, so the handler saw them more often)
    assert probe.attempts["poison"] >= 3 and probe.attempts["bomb"] >= 3
    letters = [letter for letter in every_page(
        lambda cursor: runtime.dead_letters.page(OPERATOR, 200, cursor))
        if letter["consumer"] == runtime.streams[0].name]
    dead = sorted(letter["payload"]["dynamodb"]["NewImage"]["name"]["S"] for letter in letters)
    assert dead == ["bomb", "poison"]
    assert all(letter["attempts"] == 3 for letter in letters)
    bomb = next(item for item in letters if "bomb" in json.dumps(item["payload"]))
    assert "RuntimeError: cannot handle bomb" in bomb["error"]
    # When the operator fixes the cause and re-drives them, they are handled and gone
    probe.poison.clear()
    probe.bombs.clear()
    redriven = [runtime.dead_letters.redrive(OPERATOR, letter["id"]) for letter in letters]
    assert [(result.handled, result.error) for result in redriven] == [(True, None)] * 2
    assert {"poison", "bomb"} <= set(probe.done)
    assert not [item for item in every_page(
        lambda cursor: runtime.dead_letters.page(OPERATOR, 200, cursor))
        if item["consumer"] == runtime.streams[0].name]
    # and records after the poison ones were processed in order, after it
    assert probe.done.index("d") > probe.done.index("c")


def test_a_restarted_runtime_resumes_from_its_checkpoint(http, workspace, settings):
    probe = Probe(workspace.id)
    app = probe_app(probe)
    first = EventRuntime(app, settings)
    first.skip_to_latest()
    http("POST", "/contacts", workspace.member_key, {"name": "before"})
    first.drain()
    assert probe.done == ["before"]
    # When a new runtime (a restart) starts for the same consumer
    http("POST", "/contacts", workspace.member_key, {"name": "after"})
    EventRuntime(app, settings).drain()
    # Then it delivers only what came after the checkpoint
    assert probe.done == ["before", "after"]


def test_s3_object_created_reaches_the_sqs_consumer(settings, workspace):
    import boto3

    probe = Probe(workspace.id)
    runtime = EventRuntime(probe_app(probe), settings)
    queue_url, queue_arn = runtime.ensure_queue(runtime.queues[0].queue)
    s3 = boto3.client("s3", region_name=settings.region, endpoint_url=settings.s3_endpoint)
    bucket = f"probe-{uuid.uuid4().hex[:8]}"
    ensure_bucket(s3, bucket)
    route_bucket_to_queue(s3, bucket, queue_arn, prefix="drops/")
    # When a CSV is dropped in the bucket (and another file outside the prefix)
    s3.put_object(Bucket=bucket, Key="drops/ws/seg/people.csv", Body=b"email\na@x.io\n")
    s3.put_object(Bucket=bucket, Key="elsewhere/readme.txt", Body=b"hi")
    runtime.drain()
    # Then the consumer got exactly the S3 event for the dropped object (S3 URL-encodes keys
    # in events; consumers unquote them, as in AWS)
    keys = [unquote_plus(r["s3"]["object"]["key"])
            for m in probe.messages for r in m.get("Records", [])]
    assert keys == ["drops/ws/seg/people.csv"]
    events = [m for m in probe.messages if "Records" in m]  # S3 also sends an s3:TestEvent
    assert events[0]["Records"][0]["eventName"].startswith("ObjectCreated")
    # and the message was deleted once handled
    left = runtime.sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=0)
    assert "Messages" not in left


def test_schedules_fire_on_their_period(settings, workspace):
    probe = Probe(workspace.id)
    runtime = EventRuntime(probe_app(probe), settings)
    job = runtime.schedules[0]
    assert job.period == 15 * 60
    runtime.pump_once(now=job.next_due - 1)
    assert probe.scheduled == []
    runtime.pump_once(now=job.next_due + 1)
    assert len(probe.scheduled) == 1
    assert probe.scheduled[0]["detail-type"] == "Scheduled Event"
    runtime.pump_once(now=job.next_due - 1)
    assert len(probe.scheduled) == 1
