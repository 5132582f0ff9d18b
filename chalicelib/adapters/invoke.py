"""Invoking a function the app registered the way Lambda does: a Lambda-shaped context, and
the reading of a partial batch response. The local event runtime and the dead-letter re-drive
both deliver through here."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

Handler = Callable[[dict[str, Any], Any], Any]


@dataclass
class LambdaContext:
    function_name: str
    memory_limit_in_mb: int = 512
    timeout_seconds: float = 900.0
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    started: float = field(default_factory=time.monotonic)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:local:000000000000:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return "local"

    @property
    def function_version(self) -> str:
        return "$LATEST"

    def get_remaining_time_in_millis(self) -> int:
        return int(max(0.0, self.timeout_seconds - (time.monotonic() - self.started)) * 1000)


def failed_identifiers(result: Any, identifiers: list[str]) -> set[str] | None:
    """The failed items a handler reported; None means the whole batch failed."""
    if not isinstance(result, dict) or not result.get("batchItemFailures"):
        return set()
    failed = set()
    for failure in result["batchItemFailures"]:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not identifier or identifier not in identifiers:
            return None  # Lambda treats a malformed response as a failure of the whole batch
        failed.add(identifier)
    return failed


def deliver_one(handlers: Mapping[str, Handler], consumer: str,
                record: dict[str, Any]) -> str | None:
    """Deliver one stream record again to `consumer`, as a batch of one. Answers None when
    it was handled, else why it failed."""
    handler = handlers.get(consumer)
    if handler is None:
        return f"no function named {consumer!r} in this app"
    sequence = str(record.get("dynamodb", {}).get("SequenceNumber", ""))
    try:
        result = handler({"Records": [record]}, LambdaContext(consumer))
    except Exception as exc:  # noqa: BLE001 - a handler error is a failed delivery
        return f"{type(exc).__name__}: {exc}"
    if failed_identifiers(result, [sequence]):
        return "reported as a batch item failure"
    return None
