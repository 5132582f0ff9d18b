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


def apply_change(change: RecordChange, store: RecordStore) -> None:
    """Keep derived data current. Safe to run twice for one change only with the
    idempotency guard the stream adapter puts around it (the counters are additive)."""
    counter = _COUNTERS.get(change.record_type)
    if counter and change.kind in ("insert", "remove"):
        store.add_counts(change.workspace_id, {counter: 1 if change.kind == "insert" else -1})
    if change.record_type == "activity" and change.kind == "insert" and change.new:
        store.advance_last_active(change.workspace_id, str(change.new["contact_id"]),
                                  str(change.new["occurred_at"]))
    if change.record_type == "organization" and change.kind == "remove" and change.old:
        org_id = str(change.old["id"])
        for contact_id in store.contact_ids_of_organization(change.workspace_id, org_id):
            store.detach_from_organization(change.workspace_id, contact_id, org_id)
