"""The dead-letter service with an in-memory store: who may act, what a re-drive leaves."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from chalicelib.domain.errors import Forbidden, NotFound
from chalicelib.domain.identity import OPERATOR, Principal, Role
from chalicelib.domain.pages import Page, decode_cursor, encode_cursor
from chalicelib.services.dead_letters import DeadLetterService


class MemoryLetters:
    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}

    def put(self, letter: dict[str, Any]) -> None:
        self.items[letter["id"]] = dict(letter)

    def page(self, limit: int, cursor: str | None) -> Page[dict[str, Any]]:
        after = (decode_cursor(cursor) or {}).get("after", "")
        rest = [self.items[k] for k in sorted(self.items) if k > after]
        more = len(rest) > limit
        return Page(rest[:limit], encode_cursor({"after": rest[limit - 1]["id"]})
                    if more else None)

    def get(self, letter_id: str) -> dict[str, Any] | None:
        return self.items.get(letter_id)

    def record_attempt(self, letter_id: str, error: str) -> None:
        self.items[letter_id].update(error=error, redrives=self.items[letter_id]["redrives"] + 1)

    def delete(self, letter_id: str) -> None:
        del self.items[letter_id]


def service(failing: set[str]) -> tuple[DeadLetterService, MemoryLetters, list[str]]:
    store, delivered, ids = MemoryLetters(), [], itertools.count()

    def deliver(consumer: str, record: dict[str, Any]) -> str | None:
        delivered.append(record["n"])
        return "still broken" if record["n"] in failing else None

    return (DeadLetterService(store, deliver, lambda: f"dl_{next(ids):03d}",
                              lambda: "2026-12-04T00:00:00Z"), store, delivered)


def test_a_redrive_deletes_what_was_handled_and_counts_what_still_fails():
    letters, store, delivered = service(failing={"b"})
    for n in "abc":
        letters.record("records_stream", "arn", {"n": n}, "boom " * 1000, 4)
    assert store.items["dl_000"]["error"] == ("boom " * 1000)[:2000]
    results = letters.redrive_all(OPERATOR)
    assert [(r.id, r.handled, r.error) for r in results] == [
        ("dl_000", True, None), ("dl_001", False, "still broken"), ("dl_002", True, None)]
    assert delivered == ["a", "b", "c"]
    assert list(store.items) == ["dl_001"]
    assert store.items["dl_001"]["redrives"] == 1 and store.items["dl_001"]["error"] == \
        "still broken"


def test_pages_walk_every_letter_once():
    letters, _, _ = service(failing=set())
    for n in range(5):
        letters.record("records_stream", "arn", {"n": n}, "x", 1)
    seen, cursor = [], None
    while True:
        page = letters.page(OPERATOR, 2, cursor)
        seen += [item["id"] for item in page.items]
        if (cursor := page.next_cursor) is None:
            break
    assert seen == [f"dl_{n:03d}" for n in range(5)]


def test_only_the_operator_acts_and_unknown_ids_are_not_found():
    letters, store, _ = service(failing=set())
    letter_id = letters.record("records_stream", "arn", {"n": 1}, "x", 1)
    admin = Principal(workspace_id="w_1", user_id="a", role=Role.ADMIN)
    for act in (lambda: letters.page(admin, 10, None), lambda: letters.redrive(admin, letter_id),
                lambda: letters.redrive_all(admin), lambda: letters.discard(admin, letter_id)):
        with pytest.raises(Forbidden):
            act()
    assert letter_id in store.items
    with pytest.raises(NotFound):
        letters.redrive(OPERATOR, "dl_unknown")
    letters.discard(OPERATOR, letter_id)
    with pytest.raises(NotFound):
        letters.discard(OPERATOR, letter_id)
