"""Live segments: a record changed -> which segments to re-check -> membership changes.

Order-safe and idempotent by construction: a change never applies what its stream image
says; it re-reads the record as it is now and asks each affected segment's rules about it,
then the membership writer applies only real changes (a replayed or late record finds the
membership already right and changes nothing, so no history event either)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from chalicelib.domain.filters import (
    ACTIVITY_READ,
    AnyOf,
    FieldIndex,
    Moment,
    Node,
    segment_references,
)
from chalicelib.domain.membership import Action, Evaluator, MembershipChange, Segment
from chalicelib.domain.records import format_timestamp
from chalicelib.services.search import SearchService

MAX_ORG_FANOUT = 10_000  # contacts re-checked for one organization change


class LiveStore(Protocol):
    def list_segments(self, workspace_id: str, with_count: bool = True) -> list[Segment]: ...
    def segments_version(self, workspace_id: str) -> int: ...
    def segment_memberships(self, workspace_id: str, record_id: str) -> list[str]: ...
    def member(self, workspace_id: str, segment_id: str,
               record_id: str) -> dict[str, Any] | None: ...
    def is_excluded(self, workspace_id: str, segment_id: str, record_id: str) -> bool: ...
    def apply(self, segment: Segment, change: MembershipChange, at: str, actor: str) -> bool: ...
    def move_member_org(self, workspace_id: str, segment_id: str, record_id: str,
                        org_id: str | None) -> None: ...


class LiveRecords(Protocol):
    def contact_ids_of_organization(self, workspace_id: str, org_id: str) -> list[str]: ...
    def record(self, workspace_id: str, kind: str, record_id: str) -> dict[str, Any] | None: ...


@dataclass(frozen=True)
class _Rules:
    segment: Segment
    evaluator: Evaluator
    reads: Node


class _Workspace:
    """The live segments of a workspace: their compiled rules and field indexes by kind."""

    def __init__(self, workspace_id: str, version: int, segments: list[Segment]) -> None:
        self.id = workspace_id
        self.version = version
        self.all = {s.id: s for s in segments}
        live = [s for s in segments if s.rules.is_auto and s.status != "backfilling"]
        self.rules = {s.id: _Rules(s, Evaluator(s.rules), _reads(s)) for s in live}
        self.index = {kind: FieldIndex({s.id: r.reads for s_id, r in self.rules.items()
                                        if (s := r.segment).kind == kind})
                      for kind in ("contact", "organization")}
        self.dependents: dict[str, set[str]] = {}
        for segment_id, rules in self.rules.items():
            for referenced in segment_references(rules.reads):
                self.dependents.setdefault(referenced, set()).add(segment_id)


def _reads(segment: Segment) -> Node:
    return AnyOf(tuple(n for n in (segment.rules.add, segment.rules.remove) if n is not None))


class LiveEvaluation:
    def __init__(self, store: LiveStore, records: LiveRecords, search: SearchService,
                 clock: Callable[[], datetime]) -> None:
        self._store = store
        self._records = records
        self._search = search
        self._clock = clock
        self._cache: dict[str, _Workspace] = {}

    def _workspace(self, workspace_id: str) -> _Workspace:
        """The compiled segments of a workspace, reloaded whenever any segment was written
        (one small read per change instead of every segment definition)."""
        version = self._store.segments_version(workspace_id)
        cached = self._cache.get(workspace_id)
        if cached is not None and cached.version == version:
            return cached
        workspace = _Workspace(workspace_id, version,
                               self._store.list_segments(workspace_id, with_count=False))
        self._cache[workspace_id] = workspace
        return workspace

    def record_changed(self, workspace_id: str, kind: str, record_id: str,
                       changed: set[str], old_org: str | None = None,
                       new_org: str | None = None) -> int:
        """Re-check one contact or organization after a change to `changed` field paths
        ("*" for created or deleted); answers how many memberships changed."""
        workspace = self._workspace(workspace_id)
        changes = 0
        if kind == "contact" and ("*" in changed or "org_id" in changed):
            # the organizations it left and joined count its activities no more / now
            for org_id in {old_org, new_org} - {None}:
                changes += self._recheck(workspace, "organization", str(org_id),
                                         workspace.index["organization"].affected(
                                             {ACTIVITY_READ}))
        if "*" in changed and self._records.record(workspace_id, kind, record_id) is None:
            return changes + self._deleted(workspace, kind, record_id)
        changes += self._recheck(workspace, kind, record_id, workspace.index[kind].affected(
            changed))
        if kind == "contact" and "org_id" in changed and old_org != new_org:
            self._move_org(workspace, record_id, new_org)
        if kind == "organization" and changed:
            org_paths = {"org.*"} if "*" in changed else {f"org.{p}" for p in changed}
            affected = workspace.index["contact"].affected(org_paths)
            if affected:
                for contact_id in self._records.contact_ids_of_organization(
                        workspace_id, record_id)[:MAX_ORG_FANOUT]:
                    changes += self._recheck(workspace, "contact", contact_id, affected)
        return changes

    def activity_added(self, workspace_id: str, contact_id: str) -> int:
        """A new activity changes the contact's counts, and its organization's."""
        workspace = self._workspace(workspace_id)
        changes = self._recheck(workspace, "contact", contact_id,
                                workspace.index["contact"].affected({ACTIVITY_READ}))
        contact = self._records.record(workspace_id, "contact", contact_id)
        if contact and contact.get("org_id"):
            changes += self._recheck(workspace, "organization", str(contact["org_id"]),
                                     workspace.index["organization"].affected({ACTIVITY_READ}))
        return changes

    def membership_changed(self, workspace_id: str, segment_id: str, kind: str,
                           record_id: str) -> int:
        """A membership changed outside the stream (by hand): segments whose rules use that
        segment re-check the record."""
        workspace = self._workspace(workspace_id)
        return self._recheck(workspace, kind, record_id,
                             workspace.dependents.get(segment_id, ()), 1)

    def _recheck(self, workspace: _Workspace, kind: str, record_id: str,
                 segment_ids: Iterable[str], depth: int = 0) -> int:
        segment_ids = [s for s in segment_ids if s in workspace.rules]
        if not segment_ids or depth > 10:
            return 0
        ws = workspace.id
        at = Moment(self._clock())
        now = format_timestamp(at.now)
        view = self._search.view_of(ws, kind, record_id, AnyOf(tuple(
            workspace.rules[s].reads for s in segment_ids)))
        changes = 0
        for segment_id in sorted(segment_ids):
            rules = workspace.rules[segment_id]
            member = self._store.member(ws, segment_id, record_id)
            if view is None:  # deleted
                action = Action.REMOVE if member else Action.KEEP
                reason = "record_deleted"
            else:
                excluded = self._store.is_excluded(ws, segment_id, record_id)
                action = rules.evaluator.decide(view, at, member=member is not None,
                                                excluded=excluded)
                reason = "exclusion" if excluded else "rule"
            if action is Action.KEEP:
                continue
            change = MembershipChange(record_id, action, "rule", reason,
                                      org_id=view.record.get("org_id") if view else None)
            if self._store.apply(rules.segment, change, now, "system"):
                changes += 1
                changes += self._recheck(workspace, kind, record_id,
                                         workspace.dependents.get(segment_id, ()), depth + 1)
        return changes

    def _deleted(self, workspace: _Workspace, kind: str, record_id: str) -> int:
        """A deleted record leaves every segment it was in, manual ones too."""
        now = format_timestamp(self._clock())
        changes = 0
        for segment_id in self._store.segment_memberships(workspace.id, record_id):
            segment = workspace.all.get(segment_id)
            if segment is not None and self._store.apply(segment, MembershipChange(
                    record_id, Action.REMOVE, "rule", "record_deleted"), now, "system"):
                changes += 1
                changes += self._recheck(workspace, kind, record_id,
                                         workspace.dependents.get(segment.id, ()), 1)
        return changes

    def _move_org(self, workspace: _Workspace, record_id: str, org_id: str | None) -> None:
        """A contact moved: its organization counts follow in every segment it is in."""
        for segment_id in self._store.segment_memberships(workspace.id, record_id):
            self._store.move_member_org(workspace.id, segment_id, record_id, org_id)
