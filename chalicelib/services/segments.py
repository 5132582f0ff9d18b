"""Segments: create and edit, manual membership and exclusions, backfills, history, explain."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol

from chalicelib.domain.errors import Conflict, Forbidden, InvalidInput, NotFound
from chalicelib.domain.filters import AnyOf, Moment, RecordView, explain, segment_references
from chalicelib.domain.identity import Principal, Role
from chalicelib.domain.ids import new_id
from chalicelib.domain.membership import (
    SHARDS,
    Action,
    Evaluator,
    MembershipChange,
    Rules,
    Segment,
    can_edit,
    can_see,
    parse_rules,
)
from chalicelib.domain.pages import Page
from chalicelib.domain.records import format_timestamp
from chalicelib.services.ports import StaleVersion
from chalicelib.services.search import SearchService

MAX_IDS_PER_CALL = 1000
SAMPLE = 10


class SegmentStore(Protocol):
    def add_segment(self, segment: Segment) -> None: ...
    def replace_segment(self, old: Segment, new: Segment) -> None: ...
    def get_segment(self, workspace_id: str, segment_id: str,
                    with_count: bool = True) -> Segment | None: ...
    def list_segments(self, workspace_id: str, with_count: bool = True) -> list[Segment]: ...
    def delete_segment(self, segment: Segment) -> None: ...
    def member(self, workspace_id: str, segment_id: str,
               record_id: str) -> dict[str, Any] | None: ...
    def shard_members(self, workspace_id: str, segment_id: str,
                      shard: int) -> dict[str, dict[str, Any]]: ...
    def members_page(self, workspace_id: str, segment_id: str, limit: int,
                     cursor: str | None) -> Page[dict[str, Any]]: ...
    def apply(self, segment: Segment, change: MembershipChange, at: str, actor: str) -> bool: ...
    def shard_plan(self, segment: Segment, shard: int, run: str,
                   at: str) -> list[MembershipChange] | None: ...
    def write_plan(self, segment: Segment, shard: int, run: str, at: str, actor: str,
                   changes: list[MembershipChange]) -> None: ...
    def apply_shard(self, segment: Segment, shard: int, changes: list[MembershipChange],
                    moved: list[tuple[dict[str, Any], str | None]], final_count: int,
                    at: str) -> None: ...
    def set_shard_organizations(self, segment: Segment, shard: int,
                                counts: dict[str, int]) -> None: ...
    def organizations(self, workspace_id: str, segment_id: str) -> dict[str, int]: ...
    def exclusions(self, workspace_id: str, segment_id: str) -> set[str]: ...
    def exclude(self, segment: Segment, record_id: str, at: str, actor: str) -> None: ...
    def lift_exclusion(self, segment: Segment, record_id: str) -> bool: ...
    def history(self, workspace_id: str, segment_id: str, limit: int,
                cursor: str | None) -> Page[dict[str, Any]]: ...


class RecordLookup(Protocol):
    def record(self, workspace_id: str, kind: str, record_id: str) -> dict[str, Any] | None: ...


class BackfillQueue(Protocol):
    def enqueue(self, workspace_id: str, segment_id: str, run: str, shards: list[int]) -> None:
        ...


@dataclass(frozen=True)
class MembersResult:
    added: list[str]
    already: list[str]
    rejected: list[dict[str, str]]


@dataclass(frozen=True)
class RemoveResult:
    removed: list[str]
    excluded: list[str]
    not_member: list[str]


@dataclass(frozen=True)
class RulesDiff:
    would_add: int
    would_remove: int
    sample_add: list[str]
    sample_remove: list[str]


class SegmentsService:
    def __init__(self, store: SegmentStore, records: RecordLookup, search: SearchService,
                 queue: BackfillQueue, clock: Callable[[], datetime],
                 membership_changed: Callable[[str, str, str, str], Any] | None = None,
                 shard_done: Callable[[str, str, int], Any] | None = None) -> None:
        self._store = store
        self._records = records
        self._search = search
        self._queue = queue
        self._clock = clock
        # (workspace, segment, kind, record): lets segments that use this one follow
        self._membership_changed = membership_changed or (lambda *_: None)
        # (workspace, segment, shard): live changes that waited for the shard are re-checked
        self._shard_done = shard_done or (lambda *_: None)

    def _now(self) -> str:
        return format_timestamp(self._clock())

    # -- definitions ---------------------------------------------------------------------------

    def create(self, caller: Principal, fields: Mapping[str, Any]) -> tuple[Segment,
                                                                            MembersResult]:
        """A new segment; with rules it starts backfilling, with `members` it starts filled."""
        workspace_id = caller.require_workspace()
        kind, visibility = fields["kind"], fields.get("visibility", "team")
        if visibility == "team" and caller.role is not Role.ADMIN:
            raise Forbidden("only admins create team segments; make it personal")
        rules = self._rules(caller, fields.get("rules"), kind, None)
        now = self._now()
        segment = Segment(workspace_id=workspace_id, id=new_id("s"), kind=kind,
                          name=fields["name"].strip(), description=fields.get("description"),
                          visibility=visibility, owner=caller.user_id, rules=rules,
                          created_at=now, updated_at=now)
        self._store.add_segment(segment)
        members = list(fields.get("members") or [])
        result = (self._add_members(segment, members, caller.user_id) if members
                  else MembersResult([], [], []))
        if rules.is_auto:
            segment = self._start_backfill(segment, "rule")
        return self.get(caller, segment.id), result

    def visible(self, caller: Principal) -> list[Segment]:
        workspace_id = caller.require_workspace()
        return [s for s in self._store.list_segments(workspace_id)
                if can_see(s, caller.user_id)]

    def get(self, caller: Principal, segment_id: str) -> Segment:
        segment = self._store.get_segment(caller.require_workspace(), segment_id)
        if segment is None or not can_see(segment, caller.user_id):
            raise NotFound(f"no segment '{segment_id}'", details={"path": "id"})
        return segment

    def _editable(self, caller: Principal, segment_id: str) -> Segment:
        segment = self.get(caller, segment_id)
        if not can_edit(segment, caller.user_id, caller.role is Role.ADMIN):
            raise Forbidden("only admins edit team segments")
        return segment

    def update(self, caller: Principal, segment_id: str, patch: Mapping[str, Any],
               dry_run: bool = False) -> Segment | RulesDiff:
        """Edit name, description, rules. With dry_run, what a rules edit would add and remove."""
        segment = self._editable(caller, segment_id)
        rules = (self._rules(caller, patch["rules"], segment.kind, segment.id)
                 if "rules" in patch else segment.rules)
        if dry_run:
            return self.diff(segment, rules)
        changed = replace(segment, name=(patch.get("name") or segment.name).strip(),
                          description=patch.get("description", segment.description),
                          rules=rules, updated_at=self._now())
        self._save(segment, changed)
        if "rules" in patch and (rules.is_auto or segment.rules.is_auto):
            self._start_backfill(changed, "rule_change")
        return self.get(caller, segment_id)

    def delete(self, caller: Principal, segment_id: str) -> None:
        segment = self._editable(caller, segment_id)
        dependents = [s.name for s in self._store.list_segments(segment.workspace_id)
                      if segment.id in _references(s.rules)]
        if dependents:
            raise Conflict(f"segments {', '.join(dependents)} use this one in their rules",
                           code="segment_in_use", details={"dependents": dependents})
        self._store.delete_segment(segment)

    def _rules(self, caller: Principal, document: Any, kind: str,
               segment_id: str | None) -> Rules:
        """Valid rules whose segment conditions name segments the caller can see, of the same
        kind, without a cycle back to this segment."""
        workspace_id = caller.require_workspace()
        rules = parse_rules(document, kind)
        for referenced in sorted(_references(rules)):
            other = self._store.get_segment(workspace_id, referenced, with_count=False)
            if other is None or other.kind != kind or not can_see(other, caller.user_id):
                raise InvalidInput(f"no {kind} segment '{referenced}' to refer to",
                                   code="invalid_filter", details={"path": "$.rules"})
            if segment_id is not None and self._reaches(workspace_id, referenced, segment_id):
                raise InvalidInput(f"segment '{referenced}' depends on this one: a cycle",
                                   code="segment_cycle", details={"path": "$.rules"})
        return rules

    def _reaches(self, workspace_id: str, start: str, target: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            current = todo.pop()
            if current == target:
                return True
            if current in seen:
                continue
            seen.add(current)
            segment = self._store.get_segment(workspace_id, current)
            if segment is not None:
                todo.extend(_references(segment.rules))
        return False

    def _save(self, old: Segment, new: Segment) -> None:
        try:
            self._store.replace_segment(old, new)
        except StaleVersion:
            raise Conflict("the segment changed meanwhile; read it again",
                           code="concurrent_update") from None

    @staticmethod
    def _not_backfilling(segment: Segment) -> None:
        if segment.status == "backfilling":
            raise Conflict("the segment is backfilling; try again when it is ready",
                           code="segment_backfilling")

    # -- manual membership ---------------------------------------------------------------------

    def add_members(self, caller: Principal, segment_id: str, ids: list[str]) -> MembersResult:
        segment = self._editable(caller, segment_id)
        self._not_backfilling(segment)
        return self._add_members(segment, ids, caller.user_id)

    def _add_members(self, segment: Segment, ids: list[str], actor: str,
                     source: str = "manual") -> MembersResult:
        _check_ids(ids)
        added, already, rejected = [], [], []
        evaluator = Evaluator(segment.rules)
        at = Moment(self._clock())
        for record_id in dict.fromkeys(ids):
            view = self._view(segment, record_id)
            if view is None:
                other = "organization" if segment.kind == "contact" else "contact"
                reason = ("wrong_kind" if self._records.record(segment.workspace_id, other,
                                                                record_id) else "not_found")
                rejected.append({"id": record_id, "reason": reason})
                continue
            why = evaluator.manual_add_rejection(view, at)
            if why:
                rejected.append({"id": record_id, "reason": why})
                continue
            self._store.lift_exclusion(segment, record_id)
            change = MembershipChange(record_id, Action.ADD, source, source,
                                      org_id=view.record.get("org_id"))
            if self._store.apply(segment, change, self._now(), actor):
                added.append(record_id)
                self._membership_changed(segment.workspace_id, segment.id, segment.kind,
                                         record_id)
            else:
                already.append(record_id)
        return MembersResult(added, already, rejected)

    def remove_members(self, caller: Principal, segment_id: str, ids: list[str]) -> RemoveResult:
        """Manual removal; a record the rules would bring back is excluded until lifted."""
        segment = self._editable(caller, segment_id)
        self._not_backfilling(segment)
        _check_ids(ids)
        evaluator = Evaluator(segment.rules)
        at = Moment(self._clock())
        removed, excluded, not_member = [], [], []
        for record_id in dict.fromkeys(ids):
            view = self._view(segment, record_id)
            if view is not None and evaluator.manual_remove_needs_exclusion(view, at):
                self._store.exclude(segment, record_id, self._now(), caller.user_id)
                excluded.append(record_id)
            change = MembershipChange(record_id, Action.REMOVE, "manual", "manual")
            if self._store.apply(segment, change, self._now(), caller.user_id):
                removed.append(record_id)
                self._membership_changed(segment.workspace_id, segment.id, segment.kind,
                                         record_id)
            elif record_id not in excluded:
                not_member.append(record_id)
        return RemoveResult(removed, excluded, not_member)

    def lift_exclusion(self, caller: Principal, segment_id: str, record_id: str) -> None:
        """The record may come back: it does at once when it satisfies the rules."""
        segment = self._editable(caller, segment_id)
        if not self._store.lift_exclusion(segment, record_id):
            raise NotFound(f"'{record_id}' is not excluded from this segment",
                           details={"path": "record_id"})
        view = self._view(segment, record_id)
        wanted = view is not None and Evaluator(segment.rules).wants(
            view, Moment(self._clock()), excluded=False)
        if wanted and view is not None and self._store.apply(segment, MembershipChange(
                record_id, Action.ADD, "rule", "exclusion_lifted",
                org_id=view.record.get("org_id")), self._now(), caller.user_id):
            self._membership_changed(segment.workspace_id, segment.id, segment.kind,
                                     record_id)

    def _view(self, segment: Segment, record_id: str) -> RecordView | None:
        return self._search.view_of(segment.workspace_id, segment.kind, record_id,
                                    _reads_node(segment.rules))

    # -- reading ---------------------------------------------------------------------------------

    def members(self, caller: Principal, segment_id: str, limit: int,
                cursor: str | None) -> Page[dict[str, Any]]:
        segment = self.get(caller, segment_id)
        page = self._store.members_page(segment.workspace_id, segment.id, limit, cursor)
        items = []
        for member in page.items:
            record = self._records.record(segment.workspace_id, segment.kind, member["sk"])
            if record is not None:
                items.append({**record, "source": member["source"],
                              "added_at": member["added_at"]})
        return Page(items=items, next_cursor=page.next_cursor)

    def organizations(self, caller: Principal, segment_id: str) -> list[dict[str, Any]]:
        segment = self.get(caller, segment_id)
        if segment.kind != "contact":
            raise InvalidInput("only contact segments track organizations",
                               code="not_a_contact_segment", details={"path": "id"})
        counts = self._store.organizations(segment.workspace_id, segment.id)
        result = []
        for org_id, count in sorted(counts.items(), key=lambda pair: (-pair[1], pair[0])):
            org = self._records.record(segment.workspace_id, "organization", org_id)
            if org is not None:
                result.append({**org, "member_count": count})
        return result

    def history(self, caller: Principal, segment_id: str, limit: int,
                cursor: str | None) -> Page[dict[str, Any]]:
        segment = self.get(caller, segment_id)
        return self._store.history(segment.workspace_id, segment.id, limit, cursor)

    def explain(self, caller: Principal, segment_id: str, record_id: str) -> dict[str, Any]:
        """Whether the record is in, how it got there, and every condition's result for it."""
        segment = self.get(caller, segment_id)
        view = self._view(segment, record_id)
        if view is None:
            raise NotFound(f"no {segment.kind} '{record_id}'", details={"path": "record_id"})
        at = Moment(self._clock())
        evaluator = Evaluator(segment.rules)
        member = self._store.member(segment.workspace_id, segment.id, record_id)
        excluded = record_id in self._store.exclusions(segment.workspace_id, segment.id)
        rules = segment.rules
        return {
            "record_id": record_id, "member": member is not None,
            "source": member["source"] if member else None,
            "added_at": member["added_at"] if member else None,
            "excluded": excluded,
            "matches_add": evaluator.matches_add(view, at),
            "auto_removes": evaluator.auto_removes(view, at),
            "remove_mode": rules.remove_mode,
            "why": _why(member, excluded, evaluator, view, at),
            "add": explain(rules.add, view, at) if rules.add is not None else None,
            "remove": explain(rules.remove, view, at) if rules.remove is not None else None,
        }

    # -- backfills -----------------------------------------------------------------------------

    def reevaluate(self, caller: Principal, segment_id: str) -> Segment:
        segment = self._editable(caller, segment_id)
        if not segment.rules.is_auto:
            raise InvalidInput("this segment has no rules to evaluate", code="no_rules",
                               details={"path": "id"})
        return self._start_backfill(segment, "rule")

    def _start_backfill(self, segment: Segment, reason: str) -> Segment:
        run = uuid.uuid4().hex[:12]
        started = replace(segment, status="backfilling", backfill={
            "run": run, "reason": reason, "started_at": self._now(), "done": [],
            "processed": 0})
        for _ in range(5):
            try:
                self._store.replace_segment(segment, started)
                break
            except StaleVersion:
                current = self._store.get_segment(segment.workspace_id, segment.id)
                if current is None:
                    return segment
                segment = current
                started = replace(current, status="backfilling", backfill=started.backfill)
        self._queue.enqueue(segment.workspace_id, segment.id, run, list(range(SHARDS)))
        return started

    def backfill_shard(self, workspace_id: str, segment_id: str, run: str, shard: int) -> None:
        """One unit of a backfill: the records of one storage shard against the rules.
        Idempotent: a re-delivered or resumed shard finds nothing left to change."""
        segment = self._store.get_segment(workspace_id, segment_id, with_count=False)
        if segment is None or not segment.backfill or segment.backfill.get("run") != run:
            return  # deleted, or superseded by a newer run
        if shard in segment.backfill.get("done", []):  # done, perhaps not its pending records
            self._shard_done(workspace_id, segment_id, shard)
            return
        evaluator = Evaluator(segment.rules)
        at = Moment(self._clock())
        reason = str(segment.backfill.get("reason", "rule"))
        started_at = str(segment.backfill["started_at"])
        members = self._store.shard_members(workspace_id, segment_id, shard)
        excluded = self._store.exclusions(workspace_id, segment_id)
        decided: list[MembershipChange] = []
        orgs: dict[str, str | None] = {}
        for view in self._search.views(workspace_id, segment.kind, _reads_node(segment.rules),
                                       shard=shard):
            record_id = str(view.record["id"])
            orgs[record_id] = view.record.get("org_id")
            action = evaluator.decide(view, at, member=record_id in members,
                                      excluded=record_id in excluded)
            if action is Action.ADD:
                decided.append(MembershipChange(record_id, Action.ADD, "rule", reason))
            elif action is Action.REMOVE:
                why = "exclusion" if record_id in excluded else reason
                decided.append(MembershipChange(record_id, Action.REMOVE, "rule", why))
        decided += [MembershipChange(record_id, Action.REMOVE, "rule", "record_deleted")
                    for record_id in set(members) - set(orgs)]
        # The plan is written (as history) before anything changes; a redone shard applies
        # the plan it finds, so history and membership agree whatever happened in between.
        planned = self._store.shard_plan(segment, shard, run, started_at)
        if planned is None:
            self._store.write_plan(segment, shard, run, started_at, "system", decided)
            planned = decided
        changes = [replace(change, org_id=orgs.get(change.record_id)) for change in planned]
        final = (set(members) | {c.record_id for c in changes if c.action is Action.ADD}) - {
            c.record_id for c in changes if c.action is Action.REMOVE}
        moved = [(member, orgs[record_id]) for record_id, member in members.items()
                 if record_id in final and record_id in orgs
                 and member.get("org_id") != orgs[record_id]]
        self._store.apply_shard(segment, shard, changes, moved, len(final), started_at)
        if segment.kind == "contact":
            self._store.set_shard_organizations(segment, shard, _org_counts(final, orgs))
        self._finish_shard(workspace_id, segment_id, run, shard, len(orgs))
        self._shard_done(workspace_id, segment_id, shard)

    def _finish_shard(self, workspace_id: str, segment_id: str, run: str, shard: int,
                      processed: int) -> None:
        for _ in range(20):
            segment = self._store.get_segment(workspace_id, segment_id, with_count=False)
            if segment is None or not segment.backfill or segment.backfill.get("run") != run:
                return
            done = sorted(set(segment.backfill.get("done", [])) | {shard})
            backfill = {**segment.backfill, "done": done,
                        "processed": int(segment.backfill.get("processed", 0)) + processed}
            finished = len(done) == SHARDS
            updated = replace(segment, backfill=backfill,
                              status="ready" if finished else "backfilling",
                              last_evaluated_at=self._now() if finished
                              else segment.last_evaluated_at)
            try:
                self._store.replace_segment(segment, updated)
            except StaleVersion:
                continue
            if finished:  # segments whose rules use this one evaluate again
                for dependent in self._store.list_segments(workspace_id, with_count=False):
                    if segment_id in _references(dependent.rules):
                        self._start_backfill(dependent, "rule")
            return
        raise StaleVersion()

    def diff(self, segment: Segment, rules: Rules) -> RulesDiff:
        """What a rules edit would do now: records it would add and remove (nothing saved)."""
        evaluator = Evaluator(rules)
        at = Moment(self._clock())
        excluded = self._store.exclusions(segment.workspace_id, segment.id)
        adds, removes = [], []
        for shard in range(SHARDS):
            members = self._store.shard_members(segment.workspace_id, segment.id, shard)
            for view in self._search.views(segment.workspace_id, segment.kind,
                                           _reads_node(rules), shard=shard):
                record_id = str(view.record["id"])
                action = evaluator.decide(view, at, member=record_id in members,
                                          excluded=record_id in excluded)
                if action is Action.ADD:
                    adds.append(record_id)
                elif action is Action.REMOVE:
                    removes.append(record_id)
        return RulesDiff(len(adds), len(removes), sorted(adds)[:SAMPLE],
                         sorted(removes)[:SAMPLE])


def _org_counts(members: set[str], orgs: dict[str, str | None]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for record_id in members:
        org_id = orgs.get(record_id)
        if org_id:
            counts[org_id] = counts.get(org_id, 0) + 1
    return counts


def _references(rules: Rules) -> frozenset[str]:
    found: frozenset[str] = frozenset()
    for node in (rules.add, rules.remove):
        if node is not None:
            found |= segment_references(node)
    return found


def _reads_node(rules: Rules) -> AnyOf:
    """A node that reads what the rules read (to load only what is needed)."""
    return AnyOf(tuple(node for node in (rules.add, rules.remove) if node is not None))


def _check_ids(ids: list[str]) -> None:
    if not ids:
        raise InvalidInput("send at least one id", code="empty", details={"path": "$.ids"})
    if len(ids) > MAX_IDS_PER_CALL:
        raise InvalidInput(f"at most {MAX_IDS_PER_CALL} ids per call", code="too_many_items",
                           details={"path": "$.ids"})


def _why(member: dict[str, Any] | None, excluded: bool, evaluator: Evaluator,
         view: RecordView, at: Moment) -> str:
    if member is not None:
        source = member["source"]
        return (f"in: added by {'its rules' if source == 'rule' else source}"
                + ("" if source != "rule" else "; it satisfies the add filter"))
    if excluded:
        return "out: excluded by hand (lift the exclusion to let the rules bring it back)"
    if evaluator.auto_removes(view, at):
        return "out: it satisfies the remove rules"
    if evaluator.matches_add(view, at):
        return "out: it satisfies the add filter; it comes in with the next evaluation"
    return "out: it does not satisfy the add filter" if evaluator.rules.is_auto \
        else "out: never added by hand"
