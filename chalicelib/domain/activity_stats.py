"""Per-contact activity counts by UTC day and by type/source, so activity conditions never
rescan raw activities. Bounded: days older than the longest window are dropped, and a day keeps
at most MAX_KEYS_PER_DAY type/source pairs (the rest count under an 'other' key)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

from .filters import MAX_WINDOW_DAYS

MAX_KEYS_PER_DAY = 200
OTHER = "|"


def stats_key(type_: str, source: str | None) -> str:
    return f"{(source or '').casefold()}|{type_.casefold()}"


def first_day(today: str, within_days: int) -> str:
    """`within_days: D` counts the D most recent UTC calendar days, today included."""
    return (date.fromisoformat(today) - timedelta(days=within_days - 1)).isoformat()


@dataclass
class ActivityStats:
    days: dict[str, dict[str, int]] = field(default_factory=dict)
    totals: dict[str, int] = field(default_factory=dict)

    def add(self, type_: str, source: str | None, occurred_at: str, today: str) -> None:
        key = stats_key(type_, source)
        self.totals[key] = self.totals.get(key, 0) + 1
        day = occurred_at[:10]
        oldest = first_day(today, MAX_WINDOW_DAYS + 1)
        if day >= oldest:
            bucket = self.days.setdefault(day, {})
            if key not in bucket and len(bucket) >= MAX_KEYS_PER_DAY:
                key = OTHER
            bucket[key] = bucket.get(key, 0) + 1
        for stale in [d for d in self.days if d < oldest]:
            del self.days[stale]

    def count(self, type: str | None, source: str | None, within_days: int | None,
              today: str) -> int:
        wanted_type = type.casefold() if type else None
        wanted_source = source.casefold() if source else None

        def matches(key: str) -> bool:
            key_source, _, key_type = key.partition("|")
            return ((wanted_type is None or key_type == wanted_type)
                    and (wanted_source is None or key_source == wanted_source))

        if within_days is None:
            return sum(n for key, n in self.totals.items() if matches(key))
        start = first_day(today, within_days)
        return sum(n for day, bucket in self.days.items() if start <= day <= today
                   for key, n in bucket.items() if matches(key))
