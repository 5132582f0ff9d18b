"""One fresh DynamoDB Local (in memory) and one S3/SQS endpoint for the whole test run.
Tests isolate themselves by workspace, never by dropping tables."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from chalicelib.local.processes import free_port, start_dynamodb_local, start_moto_server, stop


@pytest.fixture(scope="session")
def local_aws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    logs = tmp_path_factory.mktemp("logs")
    dynamodb = start_dynamodb_local(free_port(), log=logs / "dynamodb.log")
    moto = start_moto_server(free_port(), log=logs / "moto.log")
    dynamodb_port = dynamodb.args[dynamodb.args.index("-port") + 1]
    endpoints = {
        "SEGMENTS_DYNAMODB_ENDPOINT": f"http://127.0.0.1:{dynamodb_port}",
        "SEGMENTS_S3_ENDPOINT": f"http://127.0.0.1:{moto.args[-1]}",
        "SEGMENTS_SQS_ENDPOINT": f"http://127.0.0.1:{moto.args[-1]}",
    }
    yield endpoints
    stop(moto)
    stop(dynamodb)


OPERATOR_KEY = "op_test_operator_key_0123456789"


@pytest.fixture(scope="session")
def settings(local_aws: dict[str, str]) -> Any:
    os.environ.update(local_aws)
    os.environ.update({
        "SEGMENTS_STAGE": "local", "SEGMENTS_OPERATOR_KEY": OPERATOR_KEY,
        "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_DEFAULT_REGION": "us-east-1", "POWERTOOLS_TRACE_DISABLED": "true",
    })
    from chalicelib.local.bootstrap import bootstrap
    from chalicelib.settings import get_settings, reset_settings

    reset_settings()
    bootstrap(get_settings())
    return get_settings()


@dataclass
class Answer:
    status: int
    body: Any
    headers: dict[str, str]


class Http:
    """The app's routes through chalice.test.Client: the handler functions Lambda runs."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def __call__(self, method: str, path: str, key: str | None = None, body: Any = None,
                 raw: bytes | str | None = None, headers: dict[str, str] | None = None) -> Answer:
        sent = dict(headers or {})
        if key is not None:
            sent["Authorization"] = f"Bearer {key}"
        if body is not None:
            raw = json.dumps(body)
        if raw is not None:
            sent.setdefault("Content-Type", "application/json")
        response = self._client.http.request(method, path, headers=sent, body=raw or b"")
        text = response.body.decode() if isinstance(response.body, bytes) else response.body
        return Answer(response.status_code, json.loads(text) if text else None,
                      dict(response.headers))


@pytest.fixture(scope="session")
def http(settings: Any) -> Iterator[Http]:
    from chalice.test import Client

    from app import app

    with Client(app, stage_name="local") as client:
        yield Http(client)


@dataclass
class TestWorkspace:
    id: str
    admin_key: str
    member_key: str


@pytest.fixture
def make_workspace(http: Http):  # type: ignore[no-untyped-def]
    def make(name: str = "Test workspace") -> TestWorkspace:
        made = http("POST", "/workspaces", OPERATOR_KEY, {"name": name})
        assert made.status == 201, made.body
        member = http("POST", "/api-keys", made.body["admin_key"],
                      {"user_id": "member@example.com", "role": "member"})
        assert member.status == 201, member.body
        return TestWorkspace(made.body["workspace_id"], made.body["admin_key"],
                             member.body["key"])

    return make


@pytest.fixture
def workspace(make_workspace) -> TestWorkspace:  # type: ignore[no-untyped-def]
    return make_workspace()


@pytest.fixture
def runtime(settings: Any) -> Any:
    """The local event runtime over the real app, pumped by the test (`runtime.drain()`),
    delivering only what the test writes (not what earlier tests left in the stream)."""
    from app import app
    from chalicelib.local.events import EventRuntime

    events = EventRuntime(app, settings)
    events.skip_to_latest()
    return events
