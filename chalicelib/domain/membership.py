"""Segment rules and the membership decisions they make (pure).

rules = {"add": FILTER | null, "remove": {"mode": "inverse" | "custom" | "none", "filter": FILTER}}

- inverse (default): members who do not satisfy `add` are removed (manual members too). With
  no `add` filter there is nothing to invert: nobody is auto-removed.
- custom: members who satisfy `remove.filter` are removed. none: nobody is auto-removed.
- Remove wins over add when a record satisfies both.
- An exclusion (a manual remove of a record that still satisfies `add`) keeps a record out
  until it is lifted.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from .errors import InvalidInput
from .filters import InvalidFilter, Moment, Node, RecordView, compile_filter
from .filters import parse as parse_filter
from .filters import to_json as filter_json

REMOVE_MODES = ("inverse", "custom", "none")
# records and members are stored in SHARDS shards by record id (the same shard for both);
# a backfill walks them one at a time
SHARDS = 16


class Action(StrEnum):
    ADD = "add"
    REMOVE = "remove"
    KEEP = "keep"


@dataclass(frozen=True)
class Rules:
    add: Node | None
    remove_mode: str = "inverse"
    remove: Node | None = None

    @property
    def is_auto(self) -> bool:
        return self.add is not None

    def to_json(self) -> dict[str, Any]:
        remove: dict[str, Any] = {"mode": self.remove_mode}
        if self.remove is not None:
            remove["filter"] = filter_json(self.remove)
        return {"add": filter_json(self.add) if self.add is not None else None,
                "remove": remove}


def parse_rules(document: Any, kind: str) -> Rules:
    """Validate a rules document; errors name the path from the segment body (`$.rules...`)."""
    if document is None:
        return Rules(add=None, remove_mode="none")
    if not isinstance(document, dict):
        raise InvalidInput("rules must be an object {add, remove}", code="invalid_rules",
                           details={"path": "$.rules"})
    unknown = sorted(set(document) - {"add", "remove"})
    if unknown:
        raise InvalidInput(f"unknown key '{unknown[0]}' in rules", code="invalid_rules",
                           details={"path": f"$.rules.{unknown[0]}"})
    add = _filter(document.get("add"), kind, "$.rules.add")
    remove_doc = document.get("remove") or {"mode": "inverse"}
    if not isinstance(remove_doc, dict):
        raise InvalidInput("remove must be an object {mode, filter}", code="invalid_rules",
                           details={"path": "$.rules.remove"})
    mode = remove_doc.get("mode", "inverse")
    if mode not in REMOVE_MODES:
        raise InvalidInput(f"remove mode is one of {', '.join(REMOVE_MODES)}",
                           code="invalid_rules", details={"path": "$.rules.remove.mode"})
    remove = None
    if mode == "custom":
        if remove_doc.get("filter") is None:
            raise InvalidInput("the custom remove mode needs a filter", code="invalid_rules",
                               details={"path": "$.rules.remove.filter"})
        remove = _filter(remove_doc["filter"], kind, "$.rules.remove.filter")
    elif remove_doc.get("filter") is not None:
        raise InvalidInput(f"a remove filter only goes with mode 'custom', not '{mode}'",
                           code="invalid_rules", details={"path": "$.rules.remove.filter"})
    unknown = sorted(set(remove_doc) - {"mode", "filter"})
    if unknown:
        raise InvalidInput(f"unknown key '{unknown[0]}' in remove", code="invalid_rules",
                           details={"path": f"$.rules.remove.{unknown[0]}"})
    return Rules(add=add, remove_mode=mode, remove=remove)


def _filter(document: Any, kind: str, prefix: str) -> Node | None:
    if document is None:
        return None
    try:
        return parse_filter(document, kind)
    except InvalidFilter as error:
        path = str(error.details["path"])
        raise InvalidFilter(error.message, prefix + path[1:]) from None


class Evaluator:
    """A segment's compiled rules: what they say about one record."""

    def __init__(self, rules: Rules) -> None:
        self.rules = rules
        self._add = compile_filter(rules.add) if rules.add is not None else None
        self._remove = compile_filter(rules.remove) if rules.remove is not None else None

    def matches_add(self, view: RecordView, at: Moment) -> bool:
        return self._add is not None and self._add(view, at)

    def auto_removes(self, view: RecordView, at: Moment) -> bool:
        """Would the rules remove this record if it were a member?"""
        if self.rules.remove_mode == "custom":
            return self._remove is not None and self._remove(view, at)
        if self.rules.remove_mode == "inverse":
            return self._add is not None and not self._add(view, at)
        return False

    def wants(self, view: RecordView, at: Moment, *, excluded: bool) -> bool:
        """Should the rules bring this (non-member) record in?"""
        return not excluded and self.matches_add(view, at) and not self.auto_removes(view, at)

    def decide(self, view: RecordView, at: Moment, *, member: bool, excluded: bool) -> Action:
        """The automatic decision for one record, given whether it is in now."""
        if member:
            return Action.REMOVE if (self.auto_removes(view, at) or excluded) else Action.KEEP
        return Action.ADD if self.wants(view, at, excluded=excluded) else Action.KEEP

    def manual_add_rejection(self, view: RecordView, at: Moment) -> str | None:
        """Why a manual add would not stick, or None: the rules would remove it at once."""
        return "would_be_auto_removed" if self.auto_removes(view, at) else None

    def manual_remove_needs_exclusion(self, view: RecordView, at: Moment) -> bool:
        """A record the rules would bring back must be excluded to stay out."""
        return self.matches_add(view, at) and not self.auto_removes(view, at)


# -- segments and who may do what ------------------------------------------------------------

@dataclass(frozen=True)
class Segment:
    workspace_id: str
    id: str
    kind: str
    name: str
    visibility: str
    owner: str
    rules: Rules
    created_at: str
    updated_at: str
    description: str | None = None
    status: str = "ready"
    backfill: dict[str, Any] | None = None
    last_evaluated_at: str | None = None
    member_count: int = 0
    version: int = 0


def can_see(segment: Segment, user_id: str) -> bool:
    return segment.visibility == "team" or segment.owner == user_id


def can_edit(segment: Segment, user_id: str, is_admin: bool) -> bool:
    return is_admin if segment.visibility == "team" else segment.owner == user_id


@dataclass(frozen=True)
class MembershipChange:
    """One record entering or leaving a segment, as the membership writer records it."""

    record_id: str
    action: Action           # ADD or REMOVE
    source: str              # rule | manual | csv ... (for adds)
    reason: str              # rule | manual | csv | exclusion | rule_change | record_deleted
    org_id: str | None = None
