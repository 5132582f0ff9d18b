"""What follows from a change to the records table (delivered by its stream)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from chalicelib.services.ports import RecordStore

ChangeKind = Literal["insert", "modify", "remove"]
_COUNTERS = {"contact": "contacts_count", "organization": "organizations_count",
             "activity": "activities_count"}


@dataclass(frozen=True)
class RecordChange:
    """One item's change: what it was (`old`) and what it is (`new`), as plain dicts."""

    kind: ChangeKind
    record_type: str
    workspace_id: str
    new: Mapping[str, Any] | None
    old: Mapping[str, Any] | None


def apply_change(change: RecordChange, store: RecordStore, today: str) -> None:
    """Keep derived data current. Idempotent steps first; the additive ones (counters, activity
    stats) last, each in one write, under the idempotency guard of the stream adapter."""
    if change.record_type == "activity" and change.kind == "insert" and change.new:
        new = change.new
        store.advance_last_active(change.workspace_id, str(new["contact_id"]),
                                  str(new["occurred_at"]))
        store.record_activity(change.workspace_id, str(new["contact_id"]), str(new["type"]),
                              new.get("source"), str(new["occurred_at"]), today)
        return
    if change.record_type == "organization" and change.kind == "remove" and change.old:
        org_id = str(change.old["id"])
        for contact_id in store.contact_ids_of_organization(change.workspace_id, org_id):
            store.detach_from_organization(change.workspace_id, contact_id, org_id)
    counter = _COUNTERS.get(change.record_type)
    if counter and change.kind in ("insert", "remove"):
        store.add_counts(change.workspace_id, {counter: 1 if change.kind == "insert" else -1})
