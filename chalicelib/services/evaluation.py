"""Live segments: a record changed -> which segments to re-check -> membership changes.

Order-safe and idempotent by construction: a change never applies what its stream image
says; it re-reads the record as it is now and asks each affected segment's rules about it,
then the membership writer applies only real changes (a replayed or late record finds the
membership already right and changes nothing, so no history event either).

Rules and backfills: every write carries the segment version it was decided with, so a rules
edit in between makes it fail (StaleVersion) and the change is evaluated again with the new
rules. While a segment backfills, a record whose shard the backfill has done is evaluated
here as usual; one whose shard is still to do gets a pending marker first, then the segment
is read again: if the shard is still not done, the backfill re-checks the marked records
when it finishes the shard (`drain_pending`), so a change is never lost between the two."""

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
from chalicelib.domain.ids import shard_of
from chalicelib.domain.membership import (
    SHARDS,
    Action,
    Evaluator,
    MembershipChange,
    Segment,
)
from chalicelib.domain.records import format_timestamp
from chalicelib.services.ports import StaleVersion
from chalicelib.services.search import SearchService

FANOUT_CHUNK = 500  # contacts of a changed organization re-checked in one unit of work
ATTEMPTS = 5  # evaluations of one change when segments keep changing under it


class LiveStore(Protocol):
    def list_segments(self, workspace_id: str, with_count: bool = True) -> list[Segment]: ...
    def get_segment(self, workspace_id: str, segment_id: str,
                    with_count: bool = True) -> Segment | None: ...
    def segments_version(self, workspace_id: str) -> int: ...
    def segment_memberships(self, workspace_id: str, record_id: str) -> list[str]: ...
    def member(self, workspace_id: str, segment_id: str,
               record_id: str) -> dict[str, Any] | None: ...
    def is_excluded(self, workspace_id: str, segment_id: str, record_id: str) -> bool: ...
    def apply(self, segment: Segment, change: MembershipChange, at: str, actor: str,
              expect_version: int | None = None) -> bool: ...
    def move_member_org(self, workspace_id: str, segment_id: str, record_id: str,
                        org_id: str | None) -> None: ...
    def mark_pending(self, segment: Segment, shard: int, record_id: str) -> None: ...
    def pending(self, workspace_id: str, segment_id: str,
                shard: int) -> list[tuple[str, str]]: ...
    def clear_pending(self, workspace_id: str, segment_id: str, shard: int, record_id: str,
                      token: str) -> None: ...


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
        live = [s for s in segments if s.rules.is_auto]
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


# (workspace, segment ids, contact ids): re-check them later, in another invocation
Later = Callable[[str, list[str], list[str]], Any]


class LiveEvaluation:
    def __init__(self, store: LiveStore, records: LiveRecords, search: SearchService,
                 clock: Callable[[], datetime], later: Later | None = None) -> None:
        self._store = store
        self._records = records
        self._search = search
        self._clock = clock
        self._later = later or self.recheck_contacts  # without a queue: now, in turn
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

    def _retrying(self, workspace_id: str, evaluate: Callable[[_Workspace], int]) -> int:
        """Evaluate against the workspace's segments as they are now; when a segment changed
        under a decision (StaleVersion), evaluate again with the fresh definitions."""
        for _ in range(ATTEMPTS - 1):
            try:
                return evaluate(self._workspace(workspace_id))
            except StaleVersion:
                self._cache.pop(workspace_id, None)
        return evaluate(self._workspace(workspace_id))

    def record_changed(self, workspace_id: str, kind: str, record_id: str,
                       changed: set[str], old_org: str | None = None,
                       new_org: str | None = None) -> int:
        """Re-check one contact or organization after a change to `changed` field paths
        ("*" for created or deleted); answers how many memberships changed."""
        return self._retrying(workspace_id, lambda workspace: self._record_changed(
            workspace, kind, record_id, changed, old_org, new_org))

    def _record_changed(self, workspace: _Workspace, kind: str, record_id: str,
                        changed: set[str], old_org: str | None, new_org: str | None) -> int:
        changes = 0
        if kind == "contact" and ("*" in changed or "org_id" in changed):
            # the organizations it left and joined count its activities no more / now
            for org_id in {old_org, new_org} - {None}:
                changes += self._recheck(workspace, "organization", str(org_id),
                                         workspace.index["organization"].affected(
                                             {ACTIVITY_READ}))
        if "*" in changed and self._records.record(workspace.id, kind, record_id) is None:
            return changes + self._deleted(workspace, kind, record_id)
        changes += self._recheck(workspace, kind, record_id, workspace.index[kind].affected(
            changed))
        if kind == "contact" and "org_id" in changed and old_org != new_org:
            self._move_org(workspace, record_id, new_org)
        if kind == "organization" and changed:
            org_paths = {"org.*"} if "*" in changed else {f"org.{p}" for p in changed}
            affected = sorted(workspace.index["contact"].affected(org_paths))
            if affected:
                changes += self._fan_out(workspace, record_id, affected)
        return changes

    def _fan_out(self, workspace: _Workspace, org_id: str, segment_ids: list[str]) -> int:
        """An organization changed: its contacts, the first chunk now, the others as units
        of work for later invocations (one Lambda call stays short whatever the size)."""
        contact_ids = self._records.contact_ids_of_organization(workspace.id, org_id)
        changes = sum(self._recheck(workspace, "contact", contact_id, segment_ids)
                      for contact_id in contact_ids[:FANOUT_CHUNK])
        for start in range(FANOUT_CHUNK, len(contact_ids), FANOUT_CHUNK):
            self._later(workspace.id, segment_ids, contact_ids[start:start + FANOUT_CHUNK])
        return changes

    def recheck_contacts(self, workspace_id: str, segment_ids: list[str],
                         contact_ids: list[str]) -> int:
        """A unit of an organization's fan-out: re-check these contacts in these segments."""
        return self._retrying(workspace_id, lambda workspace: sum(
            self._recheck(workspace, "contact", contact_id, segment_ids)
            for contact_id in contact_ids))

    def activity_added(self, workspace_id: str, contact_id: str) -> int:
        """A new activity changes the contact's counts, and its organization's."""
        def evaluate(workspace: _Workspace) -> int:
            changes = self._recheck(workspace, "contact", contact_id,
                                    workspace.index["contact"].affected({ACTIVITY_READ}))
            contact = self._records.record(workspace_id, "contact", contact_id)
            if contact and contact.get("org_id"):
                changes += self._recheck(
                    workspace, "organization", str(contact["org_id"]),
                    workspace.index["organization"].affected({ACTIVITY_READ}))
            return changes

        return self._retrying(workspace_id, evaluate)

    def membership_changed(self, workspace_id: str, segment_id: str, kind: str,
                           record_id: str) -> int:
        """A membership changed outside the stream (by hand): segments whose rules use that
        segment re-check the record."""
        return self._retrying(workspace_id, lambda workspace: self._recheck(
            workspace, kind, record_id, workspace.dependents.get(segment_id, ()), 1))

    def drain_pending(self, workspace_id: str, segment_id: str, shard: int) -> int:
        """A backfill finished a shard: re-check the records that changed while it waited."""
        changes = 0
        for record_id, token in self._store.pending(workspace_id, segment_id, shard):
            def evaluate(workspace: _Workspace, record_id: str = record_id) -> int:
                segment = workspace.all.get(segment_id)
                if segment is None:
                    return 0
                return self._recheck(workspace, segment.kind, record_id, [segment_id])

            changes += self._retrying(workspace_id, evaluate)
            self._store.clear_pending(workspace_id, segment_id, shard, record_id, token)
        return changes

    def _writable(self, segment: Segment, record_id: str) -> bool:
        """May live evaluation write this record's membership now? Yes, unless the segment
        is backfilling and has not done the record's shard yet: then the record is marked
        for the backfill, and the segment read again to be sure the backfill will see the
        mark (if the segment changed meanwhile, StaleVersion: evaluate again)."""
        if segment.status != "backfilling" or not segment.backfill:
            return True
        shard = shard_of(record_id, SHARDS)
        if shard in segment.backfill.get("done", []):
            return True
        self._store.mark_pending(segment, shard, record_id)
        current = self._store.get_segment(segment.workspace_id, segment.id, with_count=False)
        if current is None or current.version != segment.version:
            raise StaleVersion()
        return False

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
            if not self._writable(rules.segment, record_id):
                continue  # the backfill re-checks it
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
                if member and view and kind == "contact" and \
                        member.get("org_id") != view.record.get("org_id"):
                    self._store.move_member_org(ws, segment_id, record_id,
                                                view.record.get("org_id"))
                continue
            change = MembershipChange(record_id, action, "rule", reason,
                                      org_id=view.record.get("org_id") if view else None)
            if self._store.apply(rules.segment, change, now, "system",
                                 rules.segment.version):
                changes += 1
                changes += self._recheck(workspace, kind, record_id,
                                         workspace.dependents.get(segment_id, ()), depth + 1)
        return changes

    def _deleted(self, workspace: _Workspace, kind: str, record_id: str) -> int:
        """A deleted record leaves every segment it was in, manual ones too (and a backfill
        that read it before it went must not bring it back)."""
        now = format_timestamp(self._clock())
        changes = 0
        candidates = set(self._store.segment_memberships(workspace.id, record_id)) | {
            s.id for s in workspace.all.values() if s.kind == kind and s.status == "backfilling"}
        for segment_id in sorted(candidates):
            segment = workspace.all.get(segment_id)
            if segment is None or not self._writable(segment, record_id):
                continue
            if self._store.apply(segment, MembershipChange(
                    record_id, Action.REMOVE, "rule", "record_deleted"), now, "system",
                    segment.version):
                changes += 1
                changes += self._recheck(workspace, kind, record_id,
                                         workspace.dependents.get(segment.id, ()), 1)
        return changes

    def _move_org(self, workspace: _Workspace, record_id: str, org_id: str | None) -> None:
        """A contact moved: its organization counts follow in every segment it is in."""
        for segment_id in self._store.segment_memberships(workspace.id, record_id):
            segment = workspace.all.get(segment_id)
            if segment is not None and self._writable(segment, record_id):
                self._store.move_member_org(workspace.id, segment_id, record_id, org_id)
