"""Dead letters: stream records a consumer failed past the retry bound. The operator lists
them, delivers them again (a handled one goes away) or discards them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from chalicelib.domain.errors import NotFound
from chalicelib.domain.identity import Principal
from chalicelib.domain.pages import Page


class DeadLetterStore(Protocol):
    def put(self, letter: dict[str, Any]) -> None: ...
    def page(self, limit: int, cursor: str | None) -> Page[dict[str, Any]]: ...
    def get(self, letter_id: str) -> dict[str, Any] | None: ...
    def record_attempt(self, letter_id: str, error: str) -> None: ...
    def delete(self, letter_id: str) -> None: ...


# (consumer, stream record) -> None when handled, else why it failed
Deliver = Callable[[str, dict[str, Any]], str | None]


@dataclass(frozen=True)
class Redrive:
    id: str
    handled: bool
    error: str | None


class DeadLetterService:
    def __init__(self, store: DeadLetterStore, deliver: Deliver, new_id: Callable[[], str],
                 now: Callable[[], str]) -> None:
        self._store = store
        self._deliver = deliver
        self._new_id = new_id
        self._now = now

    def record(self, consumer: str, source: str, payload: dict[str, Any], error: str,
               attempts: int) -> str:
        """A record that failed `attempts` times becomes a dead letter; answers its id."""
        letter_id = self._new_id()
        self._store.put({"id": letter_id, "consumer": consumer, "source": source,
                         "payload": payload, "error": error[:2000], "attempts": attempts,
                         "failed_at": self._now(), "redrives": 0})
        return letter_id

    def page(self, caller: Principal, limit: int, cursor: str | None) -> Page[dict[str, Any]]:
        caller.require_operator()
        return self._store.page(limit, cursor)

    def redrive(self, caller: Principal, letter_id: str) -> Redrive:
        """Deliver one dead letter again; handled, it is deleted, else it stays with the new
        error and one more re-drive counted."""
        caller.require_operator()
        letter = self._letter(letter_id)
        error = self._deliver(letter["consumer"], letter["payload"])
        if error is None:
            self._store.delete(letter_id)
        else:
            self._store.record_attempt(letter_id, error[:2000])
        return Redrive(letter_id, error is None, error)

    def redrive_all(self, caller: Principal) -> list[Redrive]:
        caller.require_operator()
        results, cursor = [], None
        while True:
            page = self._store.page(200, cursor)
            results += [self.redrive(caller, letter["id"]) for letter in page.items]
            if page.next_cursor is None:
                return results
            cursor = page.next_cursor

    def discard(self, caller: Principal, letter_id: str) -> None:
        caller.require_operator()
        self._letter(letter_id)
        self._store.delete(letter_id)

    def _letter(self, letter_id: str) -> dict[str, Any]:
        letter = self._store.get(letter_id)
        if letter is None:
            raise NotFound("no such dead letter", code="dead_letter_not_found",
                           details={"path": "id"})
        return letter
