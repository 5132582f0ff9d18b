"""Dead letters in the control table: one partition, sorted by their time-ordered ids."""

from __future__ import annotations

from typing import Any

from pynamodb.exceptions import DoesNotExist

from chalicelib.domain.pages import Page, decode_cursor, encode_cursor
from chalicelib.persistence.models import DeadLetterItem

PK = "DLQ"


def _plain(item: DeadLetterItem) -> dict[str, Any]:
    return {"id": item.sk, "consumer": item.consumer, "source": item.source,
            "error": item.error, "attempts": int(item.attempts),
            "redrives": int(item.redrives or 0), "failed_at": item.failed_at,
            "payload": item.payload}


class DynamoDeadLetters:
    def put(self, letter: dict[str, Any]) -> None:
        DeadLetterItem(PK, letter["id"], consumer=letter["consumer"], source=letter["source"],
                       payload=letter["payload"], error=letter["error"],
                       attempts=letter["attempts"], failed_at=letter["failed_at"],
                       redrives=letter.get("redrives", 0)).save()

    def page(self, limit: int, cursor: str | None) -> Page[dict[str, Any]]:
        after = (decode_cursor(cursor) or {}).get("after")
        condition = DeadLetterItem.sk > str(after) if after else None
        items = list(DeadLetterItem.query(PK, condition, consistent_read=True, limit=limit + 1))
        page = [_plain(item) for item in items[:limit]]
        more = len(items) > limit
        return Page(page, encode_cursor({"after": page[-1]["id"]}) if more else None)

    def get(self, letter_id: str) -> dict[str, Any] | None:
        try:
            return _plain(DeadLetterItem.get(PK, letter_id, consistent_read=True))
        except DoesNotExist:
            return None

    def record_attempt(self, letter_id: str, error: str) -> None:
        DeadLetterItem(PK, letter_id).update(condition=DeadLetterItem.sk.exists(), actions=[
            DeadLetterItem.error.set(error), DeadLetterItem.redrives.add(1)])

    def delete(self, letter_id: str) -> None:
        DeadLetterItem(PK, letter_id).delete()
