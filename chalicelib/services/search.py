"""Explorers and previews: one filter grammar over a workspace's records, sorted and paged
with keyset cursors (a page starts strictly after the last record of the previous one, so
writes between pages never make a record that existed before appear twice or not at all)."""

from __future__ import annotations

import hashlib
import heapq
import json
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cmp_to_key
from typing import Any, Protocol

from chalicelib.domain.activity_stats import ActivityStats
from chalicelib.domain.errors import InvalidInput
from chalicelib.domain.filters import (
    ACTIVITY_READ,
    FieldType,
    Moment,
    Node,
    RecordView,
    compile_filter,
    field_type,
    parse,
    reads,
    segment_references,
)
from chalicelib.domain.pages import Page, decode_cursor, encode_cursor

MAX_SORT_KEYS = 3
MATCH_ALL: dict[str, Any] = {"all": []}


class WorkspaceRecords(Protocol):
    """Bulk reads of one workspace (persistence.repositories.DynamoRecordStore)."""

    def contacts_of_workspace(self, workspace_id: str,
                              shard: int | None = None) -> Iterable[dict[str, Any]]: ...
    def organizations_of_workspace(self, workspace_id: str,
                                   shard: int | None = None) -> Iterable[dict[str, Any]]: ...
    def activities_of_workspace(self, workspace_id: str) -> Iterable[dict[str, Any]]: ...
    def activity_stats_of_workspace(self, workspace_id: str,
                                    shard: int | None = None) -> dict[str, ActivityStats]: ...
    def record(self, workspace_id: str, kind: str, record_id: str) -> dict[str, Any] | None: ...
    def activity_stats(self, workspace_id: str, contact_id: str) -> ActivityStats: ...
    def contact_ids_of_organization(self, workspace_id: str, org_id: str) -> list[str]: ...


class SegmentMembers(Protocol):
    def members_of(self, workspace_id: str, segment_id: str) -> set[str]: ...


@dataclass(frozen=True)
class SortKey:
    field: str
    descending: bool


@dataclass(frozen=True)
class Preview:
    count: int
    sample: list[dict[str, Any]]


class OrganizationActivity:
    """Activity counts of an organization: the sum over its contacts."""

    def __init__(self, members: list[ActivityStats]) -> None:
        self._members = members

    def count(self, type: str | None, source: str | None, within_days: int | None,
              today: str) -> int:
        return sum(stats.count(type, source, within_days, today) for stats in self._members)


# -- sorting ---------------------------------------------------------------------------------

def sort_value(value: Any) -> list[Any] | None:
    """A total order over JSON values: numbers, then strings (case-folded), then booleans;
    missing values sort last whatever the direction."""
    if value is None or value == []:
        return None
    if isinstance(value, bool):
        return [2, value]
    if isinstance(value, (int, float)):
        return [0, float(value)]
    if isinstance(value, str):
        return [1, value.casefold(), value]
    return [3, json.dumps(value, sort_keys=True)]


def _comparator(directions: list[bool]) -> Callable[[list[Any], list[Any]], int]:
    def compare(a: list[Any], b: list[Any]) -> int:
        for x, y, descending in zip(a, b, directions, strict=True):
            if x == y:
                continue
            if x is None:
                return 1
            if y is None:
                return -1
            result = -1 if x < y else 1
            return -result if descending else result
        return 0

    return compare


def parse_sort(sort: list[Mapping[str, Any]] | None, kind: str) -> list[SortKey]:
    keys = []
    for index, item in enumerate(sort or []):
        path = f"$.sort[{index}]"
        name, direction = str(item.get("field")), item.get("dir", "asc")
        ftype = field_type(name, kind)
        if ftype is None or name.startswith("org."):
            raise InvalidInput(f"unknown sort field '{name}' for {kind} records",
                               code="invalid_sort", details={"path": f"{path}.field"})
        if ftype is FieldType.STRINGS:
            raise InvalidInput(f"'{name}' is a list; sort by a single-valued field",
                               code="invalid_sort", details={"path": f"{path}.field"})
        if direction not in ("asc", "desc"):
            raise InvalidInput("dir is 'asc' or 'desc'", code="invalid_sort",
                               details={"path": f"{path}.dir"})
        keys.append(SortKey(name, direction == "desc"))
    if len(keys) > MAX_SORT_KEYS:
        raise InvalidInput(f"at most {MAX_SORT_KEYS} sort keys", code="invalid_sort",
                           details={"path": "$.sort"})
    return keys


# -- the service -----------------------------------------------------------------------------

class SearchService:
    def __init__(self, records: WorkspaceRecords, members: SegmentMembers,
                 now: Callable[[], datetime]) -> None:
        self._records = records
        self._members = members
        self._now = now

    @staticmethod
    def parse(kind: str, document: Any) -> Node:
        """The filter document (None matches everything), or InvalidFilter."""
        return parse(MATCH_ALL if document is None else document, kind)

    def matching(self, workspace_id: str, kind: str, node: Node) -> Iterator[dict[str, Any]]:
        """Every record of the workspace that satisfies the filter, in storage order."""
        predicate = compile_filter(node)
        at = Moment(self._now())
        for view in self.views(workspace_id, kind, node):
            if predicate(view, at):
                yield dict(view.record)

    def views(self, workspace_id: str, kind: str, node: Node,
              shard: int | None = None) -> Iterator[RecordView]:
        """Records as filters see them (all, or one storage shard), loading only what the
        filter reads."""
        read = reads(node)
        segments = {segment_id: self._members.members_of(workspace_id, segment_id)
                    for segment_id in segment_references(node)}

        def memberships(record_id: str) -> frozenset[str]:
            return frozenset(s for s, ids in segments.items() if record_id in ids)

        if kind == "activity":
            for activity in self._records.activities_of_workspace(workspace_id):
                yield RecordView(activity)
            return
        needs_activity = ACTIVITY_READ in read
        contact_shard = shard if kind == "contact" else None
        stats = (self._records.activity_stats_of_workspace(workspace_id, contact_shard)
                 if needs_activity else {})
        if kind == "organization":
            by_org: dict[str, list[ActivityStats]] = {}
            if needs_activity:
                for contact in self._records.contacts_of_workspace(workspace_id):
                    if contact.get("org_id") and contact["id"] in stats:
                        by_org.setdefault(contact["org_id"], []).append(stats[contact["id"]])
            for org in self._records.organizations_of_workspace(workspace_id, shard):
                yield RecordView(org, activity=OrganizationActivity(by_org.get(org["id"], [])),
                                 segments=memberships(org["id"]))
            return
        orgs = ({org["id"]: org for org in self._records.organizations_of_workspace(workspace_id)}
                if any(path.startswith("org.") for path in read) else {})
        for contact in self._records.contacts_of_workspace(workspace_id, shard):
            org_id = contact.get("org_id")
            yield RecordView(contact, org=orgs.get(org_id) if org_id else None,
                             activity=stats.get(contact["id"]), segments=memberships(contact["id"]))

    def view_of(self, workspace_id: str, kind: str, record_id: str,
                node: Node) -> RecordView | None:
        """One record as filters see it (explain, manual adds, live changes)."""
        record = self._records.record(workspace_id, kind, record_id)
        if record is None:
            return None
        read = reads(node)
        org = None
        if kind == "contact" and record.get("org_id") and any(p.startswith("org.") for p in read):
            org = self._records.record(workspace_id, "organization", str(record["org_id"]))
        activity: Any = None
        if ACTIVITY_READ in read and kind == "contact":
            activity = self._records.activity_stats(workspace_id, record_id)
        elif ACTIVITY_READ in read and kind == "organization":
            activity = OrganizationActivity([
                self._records.activity_stats(workspace_id, contact_id) for contact_id in
                self._records.contact_ids_of_organization(workspace_id, record_id)])
        segments = frozenset(segment_id for segment_id in segment_references(node)
                             if record_id in self._members.members_of(workspace_id, segment_id))
        return RecordView(record, org=org, activity=activity, segments=segments)

    def preview(self, workspace_id: str, kind: str, document: Any, limit: int) -> Preview:
        """How many records match, and the first `limit` of them (oldest first)."""
        node = self.parse(kind, document)
        count = 0

        def counted() -> Iterator[dict[str, Any]]:
            nonlocal count
            for record in self.matching(workspace_id, kind, node):
                count += 1
                yield record

        sample = heapq.nsmallest(limit, counted(), key=lambda record: record["id"])
        return Preview(count=count, sample=sample)

    def search(self, workspace_id: str, kind: str, document: Any,
               sort: list[Mapping[str, Any]] | None, limit: int,
               cursor: str | None) -> Page[dict[str, Any]]:
        node = self.parse(kind, document)
        keys = parse_sort(sort, kind)
        fingerprint = hashlib.sha256(json.dumps(
            [kind, document, sort or []], sort_keys=True, default=str).encode()).hexdigest()[:16]
        position = decode_cursor(cursor)
        if position is not None and position.get("q") != fingerprint:
            raise InvalidInput("this cursor belongs to another search (filter, sort or kind "
                               "changed)", code="invalid_cursor", details={"path": "$.cursor"})
        after = position["after"] if position else None
        directions = [key.descending for key in keys] + [False]
        compare = _comparator(directions)
        getters = [_sort_getter(key.field) for key in keys]

        def key_of(record: dict[str, Any]) -> list[Any]:
            return [sort_value(get(record)) for get in getters] + [[1, record["id"],
                                                                    record["id"]]]

        matches = self.matching(workspace_id, kind, node)
        if not keys:  # id order: no full sort needed
            last_id = after[-1][1] if after else None
            candidates = (r for r in matches if last_id is None or r["id"] > last_id)
            page = heapq.nsmallest(limit + 1, candidates, key=lambda r: r["id"])
        else:
            by_key = cmp_to_key(compare)
            keyed = sorted(((key_of(r), r) for r in matches),
                           key=lambda pair: by_key(pair[0]))
            start = 0
            if after is not None:
                start = bisect_right([by_key(k) for k, _ in keyed], by_key(after))
            page = [record for _, record in keyed[start:start + limit + 1]]
        items = page[:limit]
        next_cursor = encode_cursor({"q": fingerprint, "after": key_of(items[-1])}) \
            if len(page) > limit else None
        return Page(items=items, next_cursor=next_cursor)


def _sort_getter(path: str) -> Callable[[Mapping[str, Any]], Any]:
    if "." in path:
        container, key = path.split(".", 1)
        return lambda record: (record.get(container) or {}).get(key)
    return lambda record: record.get(path)
