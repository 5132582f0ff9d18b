"""Segments and their memberships in DynamoDB; the one membership writer lives here."""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from typing import Any

from pynamodb.exceptions import DoesNotExist

from chalicelib.domain.errors import Conflict
from chalicelib.domain.ids import new_id, shard_of
from chalicelib.domain.membership import Action, MembershipChange, Segment, parse_rules
from chalicelib.domain.pages import Page, decode_cursor, encode_cursor
from chalicelib.persistence.models import (
    MEMBERSHIP_SHARDS,
    ExclusionItem,
    HistoryItem,
    MemberItem,
    MembershipItem,
    OrgCountItem,
    PendingItem,
    SegmentItem,
    SegmentNameItem,
    ShardCountItem,
    WorkspaceItem,
)
from chalicelib.persistence.raw import batch_write, query_items
from chalicelib.persistence.repositories import WORKSPACE_SK, workspace_pk
from chalicelib.persistence.tables import Transaction
from chalicelib.services.ports import StaleVersion

COUNT_SK = "#count"


def member_pk(workspace_id: str, segment_id: str, shard: int) -> str:
    return f"W#{workspace_id}#S#{segment_id}#{shard:02d}"


def history_pk(workspace_id: str, segment_id: str, shard: int) -> str:
    return f"W#{workspace_id}#H#{segment_id}#{shard:02d}"


def exclusion_pk(workspace_id: str, segment_id: str) -> str:
    return f"W#{workspace_id}#X#{segment_id}"


def org_count_pk(workspace_id: str, segment_id: str) -> str:
    return f"W#{workspace_id}#SO#{segment_id}"


def pending_pk(workspace_id: str, segment_id: str, shard: int) -> str:
    return f"W#{workspace_id}#P#{segment_id}#{shard:02d}"


def segments_pk(workspace_id: str) -> str:
    return f"W#{workspace_id}#SEG"


def name_pk(workspace_id: str, name: str) -> str:
    return f"W#{workspace_id}#SEGNAME#{name.strip().casefold()}"


def _shard(record_id: str) -> int:
    return shard_of(record_id, MEMBERSHIP_SHARDS)


def _segment(item: SegmentItem, member_count: int = 0) -> Segment:
    return Segment(
        workspace_id=item.workspace_id, id=item.id, kind=item.record_kind, name=item.name,
        description=item.description, visibility=item.visibility, owner=item.owner,
        rules=parse_rules(item.rules, item.record_kind), status=item.status,
        backfill=dict(item.backfill) if item.backfill else None,
        last_evaluated_at=item.last_evaluated_at, created_at=item.created_at,
        updated_at=item.updated_at, member_count=member_count, version=int(item.version or 0))


def _segment_item(segment: Segment) -> SegmentItem:
    item = SegmentItem(
        segments_pk(segment.workspace_id), segment.id, workspace_id=segment.workspace_id,
        id=segment.id, record_kind=segment.kind, name=segment.name,
        description=segment.description, visibility=segment.visibility, owner=segment.owner,
        rules=segment.rules.to_json(), status=segment.status, backfill=segment.backfill,
        last_evaluated_at=segment.last_evaluated_at, created_at=segment.created_at,
        updated_at=segment.updated_at)
    if segment.version:
        item.version = segment.version
    return item


def _workspace_item(workspace_id: str) -> WorkspaceItem:
    return WorkspaceItem(workspace_pk(workspace_id), WORKSPACE_SK)


def _member(ws: str, sid: str, pk: str, record_id: str, source: str, added_at: str,
            org_id: str | None) -> dict[str, Any]:
    """A member item as plain attributes (the bulk writer's form of MemberItem)."""
    return {"pk": pk, "sk": record_id, "kind": "member", "workspace_id": ws, "segment_id": sid,
            "source": source, "added_at": added_at, "org_id": org_id}


class DynamoSegmentStore:
    # -- segments ------------------------------------------------------------------------------

    def add_segment(self, segment: Segment) -> None:
        self._write_segment(None, segment)

    def replace_segment(self, old: Segment, new: Segment) -> None:
        self._write_segment(old, new)

    def _write_segment(self, old: Segment | None, new: Segment) -> None:
        renamed = old is None or old.name.strip().casefold() != new.name.strip().casefold()
        transaction = Transaction()
        transaction.put("segment", _segment_item(new),
                        condition=SegmentItem.pk.does_not_exist() if old is None else None)
        transaction.update("version", _workspace_item(new.workspace_id),
                           actions=[WorkspaceItem.segments_version.add(1)])
        if renamed:
            transaction.put("name", SegmentNameItem(name_pk(new.workspace_id, new.name), "#",
                                                    segment_id=new.id),
                            condition=SegmentNameItem.pk.does_not_exist())
            if old is not None:
                transaction.delete("old name", SegmentNameItem(
                    name_pk(old.workspace_id, old.name), "#"))
        failed = transaction.commit()
        if "name" in failed:
            raise Conflict(f"a segment named '{new.name}' exists already",
                           code="segment_name_taken", details={"path": "$.name"})
        if failed:
            raise StaleVersion()

    def get_segment(self, workspace_id: str, segment_id: str,
                    with_count: bool = True) -> Segment | None:
        """The segment; with its member count (the sum of the shard counts) unless a caller
        that only needs the definition says so."""
        try:
            item = SegmentItem.get(segments_pk(workspace_id), segment_id, consistent_read=True)
        except DoesNotExist:
            return None
        if not isinstance(item, SegmentItem):
            return None
        return _segment(item, self.member_count(workspace_id, segment_id) if with_count else 0)

    def list_segments(self, workspace_id: str, with_count: bool = True) -> list[Segment]:
        return [_segment(item, self.member_count(workspace_id, item.id) if with_count else 0)
                for item in SegmentItem.query(segments_pk(workspace_id), consistent_read=True)
                if isinstance(item, SegmentItem)]

    def segments_version(self, workspace_id: str) -> int:
        """Changes whenever any segment of the workspace is written: caches key on it."""
        try:
            item = WorkspaceItem.get(workspace_pk(workspace_id), WORKSPACE_SK,
                                     consistent_read=True,
                                     attributes_to_get=["segments_version"])
        except DoesNotExist:
            return 0
        return int(item.segments_version or 0)

    def segment_memberships(self, workspace_id: str, record_id: str) -> list[str]:
        """Ids of the segments a record is in (one batch-get of its member keys)."""
        shard = _shard(record_id)
        keys = [(member_pk(workspace_id, item.sk, shard), record_id)
                for item in SegmentItem.query(segments_pk(workspace_id), consistent_read=True)
                if isinstance(item, SegmentItem)]
        return [item.segment_id for item in MemberItem.batch_get(keys, consistent_read=True)
                if isinstance(item, MemberItem)]

    def delete_segment(self, segment: Segment) -> None:
        """The segment, its name, and every member, count, exclusion and history event."""
        ws, sid = segment.workspace_id, segment.id
        partitions = ([member_pk(ws, sid, s) for s in range(MEMBERSHIP_SHARDS)]
                      + [history_pk(ws, sid, s) for s in range(MEMBERSHIP_SHARDS)]
                      + [pending_pk(ws, sid, s) for s in range(MEMBERSHIP_SHARDS)]
                      + [exclusion_pk(ws, sid), org_count_pk(ws, sid)])
        transaction = Transaction()
        transaction.delete("segment", _segment_item(segment), add_version_condition=False)
        transaction.delete("name", SegmentNameItem(name_pk(ws, segment.name), "#"))
        transaction.update("version", _workspace_item(ws),
                           actions=[WorkspaceItem.segments_version.add(1)])
        transaction.commit()
        with MembershipItem.batch_write() as batch:
            for pk in partitions:
                for item in query_items(MembershipItem.Meta.table_name, "pk", pk):
                    batch.delete(MembershipItem(item["pk"], item["sk"]))

    # -- members -------------------------------------------------------------------------------

    def member_count(self, workspace_id: str, segment_id: str) -> int:
        keys = [(member_pk(workspace_id, segment_id, s), COUNT_SK)
                for s in range(MEMBERSHIP_SHARDS)]
        return sum(int(item.members or 0) for item in ShardCountItem.batch_get(keys))

    def member(self, workspace_id: str, segment_id: str, record_id: str) -> dict[str, Any] | None:
        try:
            item = MemberItem.get(member_pk(workspace_id, segment_id, _shard(record_id)),
                                  record_id, consistent_read=True)
        except DoesNotExist:
            return None
        return {"record_id": item.sk, "source": item.source, "added_at": item.added_at,
                "org_id": item.org_id}

    def shard_members(self, workspace_id: str, segment_id: str,
                      shard: int) -> dict[str, dict[str, Any]]:
        return {item["sk"]: item for item in query_items(
            MembershipItem.Meta.table_name, "pk", member_pk(workspace_id, segment_id, shard),
            consistent=True) if not item["sk"].startswith("#")}

    def members_page(self, workspace_id: str, segment_id: str, limit: int,
                     cursor: str | None) -> Page[dict[str, Any]]:
        """Members in record-id order, merged across the shards."""
        after = (decode_cursor(cursor) or {}).get("after")
        streams = [self._shard_after(workspace_id, segment_id, shard, after)
                   for shard in range(MEMBERSHIP_SHARDS)]
        items = []
        for item in heapq.merge(*streams, key=lambda member: member["sk"]):
            items.append(item)
            if len(items) > limit:
                break
        page = items[:limit]
        more = len(items) > limit
        return Page(items=page, next_cursor=encode_cursor({"after": page[-1]["sk"]})
                    if more else None)

    def _shard_after(self, workspace_id: str, segment_id: str, shard: int,
                     after: str | None) -> Iterator[dict[str, Any]]:
        for item in query_items(MembershipItem.Meta.table_name, "pk",
                                member_pk(workspace_id, segment_id, shard), sort_above=after,
                                page_size=201):
            if not item["sk"].startswith("#"):
                yield item

    def apply(self, segment: Segment, change: MembershipChange, at: str, actor: str,
              expect_version: int | None = None) -> bool:
        """The membership writer for one record: the member item, the shard count, the
        organization count and one history event change together or not at all. Answers
        whether anything changed (an add of a member or a remove of a non-member is a no-op).
        With `expect_version`, only while the segment is still that version (the rules the
        decision was made with): else StaleVersion, and nothing changes."""
        ws, sid, rid = segment.workspace_id, segment.id, change.record_id
        shard = _shard(rid)
        org_id = change.org_id
        if change.action is Action.REMOVE:
            current = self.member(ws, sid, rid)
            if current is None:
                return False
            org_id = current.get("org_id")
        delta = 1 if change.action is Action.ADD else -1
        transaction = Transaction()
        member = MemberItem(member_pk(ws, sid, shard), rid, workspace_id=ws, segment_id=sid,
                            source=change.source, added_at=at, org_id=org_id)
        if change.action is Action.ADD:
            transaction.put("member", member, condition=MemberItem.pk.does_not_exist())
        else:
            transaction.delete("member", member, condition=MemberItem.pk.exists())
        transaction.update("count", ShardCountItem(member_pk(ws, sid, shard), COUNT_SK),
                           actions=[ShardCountItem.members.add(delta),
                                    ShardCountItem.workspace_id.set(ws),
                                    ShardCountItem.segment_id.set(sid)])
        if org_id and segment.kind == "contact":
            transaction.update("org count", OrgCountItem(org_count_pk(ws, sid),
                                                         f"{org_id}#{shard:02d}"),
                               actions=[OrgCountItem.member_count.add(delta),
                                        OrgCountItem.workspace_id.set(ws),
                                        OrgCountItem.segment_id.set(sid)])
        # a time-ordered event id: events of the same second keep their order
        event = self._event(segment, change, at, actor, new_id("e"))
        del event["kind"]
        transaction.put("event", HistoryItem(event.pop("pk"), event.pop("sk"), **event))
        if expect_version is not None:
            transaction.check("segment", SegmentItem, segments_pk(ws), sid,
                              SegmentItem.version == expect_version)
        failed = transaction.commit()
        if "segment" in failed:
            raise StaleVersion()
        return not failed  # a failed condition: it was (not) a member already

    # -- records that changed while their shard waited for a backfill ----------------------

    def mark_pending(self, segment: Segment, shard: int, record_id: str) -> None:
        ws, sid = segment.workspace_id, segment.id
        PendingItem(pending_pk(ws, sid, shard), record_id, workspace_id=ws, segment_id=sid,
                    token=new_id("p")).save()

    def pending(self, workspace_id: str, segment_id: str,
                shard: int) -> list[tuple[str, str]]:
        """(record id, token) of the records waiting for the shard."""
        return [(item["sk"], item["token"]) for item in query_items(
            MembershipItem.Meta.table_name, "pk", pending_pk(workspace_id, segment_id, shard),
            consistent=True)]

    def clear_pending(self, workspace_id: str, segment_id: str, shard: int, record_id: str,
                      token: str) -> None:
        """Remove a marker, unless it was written again since it was read."""
        from pynamodb.exceptions import DeleteError

        try:
            PendingItem(pending_pk(workspace_id, segment_id, shard), record_id).delete(
                condition=PendingItem.token == token)
        except DeleteError as error:
            if error.cause_response_code != "ConditionalCheckFailedException":
                raise

    # -- backfills: a plan per shard and run, written once; it is also the history --------

    def shard_plan(self, segment: Segment, shard: int, run: str,
                   at: str) -> list[MembershipChange] | None:
        """The changes a backfill run decided for a shard, if it got as far as writing them."""
        pk = history_pk(segment.workspace_id, segment.id, shard)
        if not list(query_items(MembershipItem.Meta.table_name, "pk", pk,
                                sort_prefix=f"#plan#{run}", consistent=True)):
            return None
        changes = []
        for item in query_items(MembershipItem.Meta.table_name, "pk", pk,
                                sort_prefix=_plan_prefix(at, run, shard), consistent=True):
            action = Action.ADD if item["action"] == "added" else Action.REMOVE
            changes += [MembershipChange(record_id, action, "rule", item["reason"])
                        for record_id in item["record_ids"]]
        return changes

    def write_plan(self, segment: Segment, shard: int, run: str, at: str, actor: str,
                   changes: list[MembershipChange]) -> None:
        """Record the shard's changes as history (chunks of PLAN_CHUNK record ids), then mark
        the plan complete. A crash before the mark leaves a partial plan that the next attempt
        replaces, so each change is recorded exactly once."""
        ws, sid = segment.workspace_id, segment.id
        pk = history_pk(ws, sid, shard)
        prefix = _plan_prefix(at, run, shard)
        stale = [{"pk": pk, "sk": item["sk"]} for item in query_items(
            MembershipItem.Meta.table_name, "pk", pk, sort_prefix=prefix, consistent=True)]
        groups: dict[tuple[str, str], list[str]] = {}
        for change in changes:
            action = "added" if change.action is Action.ADD else "removed"
            groups.setdefault((action, change.reason), []).append(change.record_id)
        chunks: list[dict[str, Any]] = []
        for (action, reason), ids in sorted(groups.items()):
            for start in range(0, len(ids), PLAN_CHUNK):
                chunks.append({"pk": pk, "sk": f"{prefix}{len(chunks):04d}",
                               "kind": "history_batch", "workspace_id": ws, "segment_id": sid,
                               "action": action, "reason": reason, "at": at, "actor": actor,
                               "record_ids": sorted(ids[start:start + PLAN_CHUNK],
                                                    reverse=True)})
        written = {chunk["sk"] for chunk in chunks}
        batch_write(MembershipItem.Meta.table_name, chunks,
                    [key for key in stale if key["sk"] not in written])
        batch_write(MembershipItem.Meta.table_name, [{
            "pk": pk, "sk": f"#plan#{run}", "kind": "plan", "workspace_id": ws,
            "segment_id": sid, "chunks": len(chunks)}], [])

    def apply_shard(self, segment: Segment, shard: int, changes: list[MembershipChange],
                    moved: list[tuple[dict[str, Any], str | None]], final_count: int,
                    at: str) -> None:
        """Apply a shard's planned changes in bulk (a backfill is the only writer of its
        segment while it runs): puts and deletes are idempotent, so a redone shard converges;
        then the shard's exact count."""
        ws, sid = segment.workspace_id, segment.id
        pk = member_pk(ws, sid, shard)
        puts: list[dict[str, Any]] = []
        deletes = []
        for change in changes:
            if change.action is Action.ADD:
                puts.append(_member(ws, sid, pk, change.record_id, change.source, at,
                                    change.org_id))
            else:
                deletes.append({"pk": pk, "sk": change.record_id})
        for member, org_id in moved:  # members whose contact changed organization
            puts.append(_member(ws, sid, pk, member["sk"], member["source"],
                                member["added_at"], org_id))
        batch_write(MembershipItem.Meta.table_name, puts, deletes)
        ShardCountItem(member_pk(ws, sid, shard), COUNT_SK, workspace_id=ws, segment_id=sid,
                       members=final_count).save()

    def _event(self, segment: Segment, change: MembershipChange, at: str, actor: str,
               event_id: str) -> dict[str, Any]:
        """A history event as plain attributes (HistoryItem's fields)."""
        ws, sid, rid = segment.workspace_id, segment.id, change.record_id
        return {"pk": history_pk(ws, sid, _shard(rid)), "sk": f"{at}#{event_id}#{rid}",
                "kind": "history", "workspace_id": ws, "segment_id": sid, "record_id": rid,
                "action": "added" if change.action is Action.ADD else "removed",
                "reason": change.reason, "at": at, "actor": actor}

    def set_shard_organizations(self, segment: Segment, shard: int,
                                counts: dict[str, int]) -> None:
        """The organization counts of one member shard, exactly (backfills)."""
        ws, sid = segment.workspace_id, segment.id
        suffix = f"#{shard:02d}"
        stale = [item["sk"] for item in query_items(
            MembershipItem.Meta.table_name, "pk", org_count_pk(ws, sid), consistent=True)
            if item["sk"].endswith(suffix) and item["sk"][:-len(suffix)] not in counts]
        batch_write(MembershipItem.Meta.table_name, [
            {"pk": org_count_pk(ws, sid), "sk": f"{org_id}{suffix}", "kind": "org_count",
             "workspace_id": ws, "segment_id": sid, "member_count": count}
            for org_id, count in counts.items()],
            [{"pk": org_count_pk(ws, sid), "sk": sk} for sk in stale])

    def organizations(self, workspace_id: str, segment_id: str) -> dict[str, int]:
        counts: dict[str, int] = {}
        for item in query_items(MembershipItem.Meta.table_name, "pk",
                                org_count_pk(workspace_id, segment_id), consistent=True):
            org_id = item["sk"].rsplit("#", 1)[0]
            counts[org_id] = counts.get(org_id, 0) + int(item.get("member_count", 0))
        return {org_id: count for org_id, count in counts.items() if count > 0}

    def move_member_org(self, workspace_id: str, segment_id: str, record_id: str,
                        org_id: str | None) -> None:
        """A member contact moved organization: its member item and both organization counts
        change together (nothing when it is not a member or did not move)."""
        current = self.member(workspace_id, segment_id, record_id)
        if current is None or current.get("org_id") == org_id:
            return
        ws, sid, shard = workspace_id, segment_id, _shard(record_id)
        old = current.get("org_id")
        transaction = Transaction()
        condition = (MemberItem.org_id == old) if old else MemberItem.org_id.does_not_exist()
        actions: list[Any] = ([MemberItem.org_id.set(org_id)] if org_id
                              else [MemberItem.org_id.remove()])
        transaction.update("member", MemberItem(member_pk(ws, sid, shard), record_id),
                           actions=actions, condition=MemberItem.pk.exists() & condition)
        for org, delta in ((old, -1), (org_id, 1)):
            if org:
                transaction.update(f"org {delta}", OrgCountItem(org_count_pk(ws, sid),
                                                                f"{org}#{shard:02d}"),
                                   actions=[OrgCountItem.member_count.add(delta),
                                            OrgCountItem.workspace_id.set(ws),
                                            OrgCountItem.segment_id.set(sid)])
        transaction.commit()  # a failed condition: it changed meanwhile; that change moves it

    # -- exclusions ----------------------------------------------------------------------------

    def is_excluded(self, workspace_id: str, segment_id: str, record_id: str) -> bool:
        try:
            ExclusionItem.get(exclusion_pk(workspace_id, segment_id), record_id,
                              consistent_read=True)
        except DoesNotExist:
            return False
        return True

    def exclusions(self, workspace_id: str, segment_id: str) -> set[str]:
        return {item["sk"] for item in query_items(
            MembershipItem.Meta.table_name, "pk", exclusion_pk(workspace_id, segment_id),
            consistent=True)}

    def exclude(self, segment: Segment, record_id: str, at: str, actor: str) -> None:
        ExclusionItem(exclusion_pk(segment.workspace_id, segment.id), record_id,
                      workspace_id=segment.workspace_id, segment_id=segment.id,
                      excluded_at=at, actor=actor).save()

    def lift_exclusion(self, segment: Segment, record_id: str) -> bool:
        try:
            ExclusionItem(exclusion_pk(segment.workspace_id, segment.id), record_id).delete(
                condition=ExclusionItem.pk.exists())
        except Exception as error:  # noqa: BLE001 - only "was not excluded" is expected
            if "ConditionalCheckFailed" in str(error):
                return False
            raise
        return True

    # -- history -------------------------------------------------------------------------------

    def history(self, workspace_id: str, segment_id: str, limit: int,
                cursor: str | None) -> Page[dict[str, Any]]:
        """Membership events, newest first, merged across the shards; a backfill's plan
        chunks expand into one event per record."""
        position = decode_cursor(cursor) or {}
        last_sk, last_index = position.get("sk"), int(position.get("i", -1))
        streams = [query_items(MembershipItem.Meta.table_name, "pk",
                               history_pk(workspace_id, segment_id, shard), descending=True,
                               sort_at_most=last_sk, page_size=limit + 1)
                   for shard in range(MEMBERSHIP_SHARDS)]
        events: list[tuple[str, int, dict[str, Any]]] = []
        for item in heapq.merge(*streams, key=lambda e: e["sk"], reverse=True):
            if item["sk"].startswith("#"):
                continue  # plan marks
            for index, event in enumerate(_expand(item)):
                if item["sk"] == last_sk and index <= last_index:
                    continue
                events.append((item["sk"], index, event))
                if len(events) > limit:
                    break
            if len(events) > limit:
                break
        page = events[:limit]
        more = len(events) > limit
        return Page(items=[event for _, _, event in page],
                    next_cursor=encode_cursor({"sk": page[-1][0], "i": page[-1][1]})
                    if more else None)


PLAN_CHUNK = 100


def _plan_prefix(at: str, run: str, shard: int) -> str:
    # sorts with the events of the same moment; '~' after any record id
    return f"{at}#~{run}#{shard:02d}#"


def _expand(item: dict[str, Any]) -> list[dict[str, Any]]:
    fields = {key: item[key] for key in ("action", "reason", "at", "actor")}
    if item.get("kind") == "history_batch":
        return [{"record_id": record_id, **fields} for record_id in item["record_ids"]]
    return [{"record_id": item["record_id"], **fields}]
