"""Small helpers shared by the tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_for(condition: Callable[[], Any], timeout: float = 20.0, what: str = "condition",
             every: float = 0.1) -> Any:
    """Poll until `condition()` is truthy and answer it; fail saying what never happened."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


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
