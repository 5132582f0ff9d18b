"""Small helpers shared by the tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chalicelib.local.processes import wait_for  # noqa: F401 - the tests' name for it


def every_page(read: Callable[[str | None], Any]) -> list[Any]:
    """All items of a paged list: `read(cursor)` answers a Page."""
    items: list[Any] = []
    cursor = None
    while True:
        page = read(cursor)
        items += page.items
        cursor = page.next_cursor
        if cursor is None:
            return items


def tapped_runtime(settings: Any, handlers: dict[str, Callable[[dict[str, Any], Any], Any]],
                   **options: Any) -> Any:
    """An event runtime over only the app's event sources named in `handlers`, delivering to
    those functions (which may replay, record, hold or fail events around the real handler);
    streams from their end."""
    from app import app
    from chalicelib.local.events import EventRuntime

    class Tapped:
        event_sources = [s for s in app.event_sources if s.name in handlers]
        handler_map = handlers

    runtime = EventRuntime(Tapped(), settings, **options)  # type: ignore[arg-type]
    runtime.skip_to_latest()
    return runtime


def make_segment(http: Any, key: str, runtime: Any, name: str, rules: Any,
                 kind: str = "contact") -> str:
    """A segment with rules, its backfill delivered by `runtime`: answers its id, ready."""
    made = http("POST", "/segments", key, {"kind": kind, "name": name, "rules": rules})
    assert made.status == 201, made.body
    runtime.drain()
    assert http("GET", f"/segments/{made.body['id']}", key).body["status"] == "ready"
    return str(made.body["id"])


def member_ids(http: Any, key: str, segment_id: str) -> set[str]:
    return {m["id"] for m in every_page(lambda cursor: _Page(http(
        "GET", f"/segments/{segment_id}/members?limit=200"
        + (f"&cursor={cursor}" if cursor else ""), key).body))}


class _Page:
    def __init__(self, body: dict[str, Any]) -> None:
        self.items, self.next_cursor = body["items"], body["next_cursor"]
