"""DynamoDB implementations of the services' stores (the only users of the models)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict
from typing import Any, TypeVar

from pynamodb.exceptions import DoesNotExist, PutError, UpdateError

from chalicelib.domain.activity_stats import ActivityStats
from chalicelib.domain.errors import Conflict, InvalidInput
from chalicelib.domain.identity import ApiKey, Role, Workspace
from chalicelib.domain.ids import shard_of
from chalicelib.domain.pages import Page, decode_cursor, encode_cursor
from chalicelib.domain.records import Activity, Contact, Organization, email_key
from chalicelib.persistence.models import (
    MEMBERSHIP_SHARDS,
    RECORD_SHARDS,
    ActivityItem,
    ActivityStatsItem,
    ApiKeyItem,
    ContactItem,
    MemberItem,
    MembershipItem,
    OrganizationItem,
    RecordItem,
    UniqueClaimItem,
    WorkspaceItem,
)
from chalicelib.persistence.raw import query_items
from chalicelib.persistence.tables import Transaction
from chalicelib.services.ports import StaleVersion

_V = TypeVar("_V", ContactItem, OrganizationItem)
WORKSPACE_SK = "#workspace"
KEY_SK = "#key"
CLAIM_SK = "#"


# -- keys ------------------------------------------------------------------------------------

def contact_pk(workspace_id: str, contact_id: str) -> str:
    return f"W#{workspace_id}#C#{shard_of(contact_id, RECORD_SHARDS):02d}"


def organization_pk(workspace_id: str, org_id: str) -> str:
    return f"W#{workspace_id}#O#{shard_of(org_id, RECORD_SHARDS):02d}"


def activity_pk(workspace_id: str, contact_id: str) -> str:
    return f"W#{workspace_id}#A#{contact_id}"


def activity_ws_key(workspace_id: str, activity_id: str) -> str:
    return f"W#{workspace_id}#ACT#{shard_of(activity_id, RECORD_SHARDS):02d}"


def stats_pk(workspace_id: str, contact_id: str) -> str:
    return f"W#{workspace_id}#AS#{shard_of(contact_id, RECORD_SHARDS):02d}"


def workspace_partitions(workspace_id: str, what: str) -> list[str]:
    """The RECORD_SHARDS partitions holding one kind of a workspace's items."""
    return [f"W#{workspace_id}#{what}#{shard:02d}" for shard in range(RECORD_SHARDS)]


def org_key(workspace_id: str, org_id: str | None) -> str | None:
    return f"W#{workspace_id}#ORG#{org_id}" if org_id else None


def claim_pk(workspace_id: str, what: str, value: str) -> str:
    return f"W#{workspace_id}#{what}#{value}"


def workspace_pk(workspace_id: str) -> str:
    return f"W#{workspace_id}"


# -- conversions -----------------------------------------------------------------------------

def _versioned(item: _V, version: int) -> _V:
    """A stored record's version makes the write conditional on it; a new record has none."""
    if version:
        item.version = version
    return item


def contact_from_item(item: ContactItem) -> Contact:
    return Contact(
        workspace_id=item.workspace_id, id=item.id, email=item.email, name=item.name,
        title=item.title, tags=[str(tag) for tag in item.tags or []], country=item.country,
        city=item.city,
        org_id=item.org_id, attributes=dict(item.attributes or {}), created_at=item.created_at,
        updated_at=item.updated_at, last_active_at=item.last_active_at,
        version=int(item.version or 0),
    )


def contact_item(contact: Contact) -> ContactItem:
    return _versioned(ContactItem(
        contact_pk(contact.workspace_id, contact.id), contact.id,
        workspace_id=contact.workspace_id, id=contact.id, email=contact.email, name=contact.name,
        title=contact.title, tags=list(contact.tags), country=contact.country, city=contact.city,
        org_id=contact.org_id, org_key=org_key(contact.workspace_id, contact.org_id),
        attributes=dict(contact.attributes), created_at=contact.created_at,
        updated_at=contact.updated_at, last_active_at=contact.last_active_at,
    ), contact.version)


def organization_from_item(item: OrganizationItem) -> Organization:
    return Organization(
        workspace_id=item.workspace_id, id=item.id, name=item.name, domain=item.domain,
        tags=[str(tag) for tag in item.tags or []], attributes=dict(item.attributes or {}),
        created_at=item.created_at, updated_at=item.updated_at, version=int(item.version or 0),
    )


def organization_item(org: Organization) -> OrganizationItem:
    return _versioned(OrganizationItem(
        organization_pk(org.workspace_id, org.id), org.id, workspace_id=org.workspace_id,
        id=org.id, name=org.name, domain=org.domain, tags=list(org.tags),
        attributes=dict(org.attributes), created_at=org.created_at, updated_at=org.updated_at,
    ), org.version)


def activity_from_item(item: ActivityItem) -> Activity:
    return Activity(
        workspace_id=item.workspace_id, id=item.id, contact_id=item.contact_id, type=item.type,
        source=item.source, occurred_at=item.occurred_at, created_at=item.created_at,
        properties=dict(item.properties or {}),
    )


# -- unique values ---------------------------------------------------------------------------

class _Unique:
    """A unique value of a record (a contact's email, an organization's domain)."""

    def __init__(self, what: str, code: str, path: str) -> None:
        self.what, self.code, self.path = what, code, path

    def claim(self, workspace_id: str, value: str, record_id: str) -> UniqueClaimItem:
        return UniqueClaimItem(claim_pk(workspace_id, self.what, email_key(value)), CLAIM_SK,
                               workspace_id=workspace_id, record_id=record_id)

    def conflict(self, workspace_id: str, value: str) -> Conflict:
        try:
            owner = UniqueClaimItem.get(claim_pk(workspace_id, self.what, email_key(value)),
                                        CLAIM_SK).record_id
        except DoesNotExist:
            owner = None
        return Conflict(f"{self.path.removeprefix('$.')} '{value}' is already in use",
                        code=self.code, details={"path": self.path, "existing_id": owner})


EMAIL = _Unique("EMAIL", "email_taken", "$.email")
DOMAIN = _Unique("DOMAIN", "domain_taken", "$.domain")


def _write_with_unique(*, workspace_id: str, record_id: str, item: RecordItem,
                       unique: _Unique, old_value: str | None, new_value: str | None,
                       creating: bool) -> None:
    """Write `item` and move its unique claim from `old_value` to `new_value`, atomically."""
    changed = (email_key(old_value) if old_value else None) != (
        email_key(new_value) if new_value else None)
    transaction = Transaction()
    transaction.put("record", item,
                    condition=RecordItem.pk.does_not_exist() if creating else None)
    if changed and old_value:
        transaction.delete("old claim", unique.claim(workspace_id, old_value, record_id),
                           condition=UniqueClaimItem.record_id == record_id)
    if changed and new_value:
        transaction.put("new claim", unique.claim(workspace_id, new_value, record_id),
                        condition=UniqueClaimItem.pk.does_not_exist())
    failed = transaction.commit()
    if "new claim" in failed:
        raise unique.conflict(workspace_id, new_value or "")
    if failed:
        raise StaleVersion()


# -- stores ----------------------------------------------------------------------------------

class DynamoRecordStore:
    def add_contact(self, contact: Contact) -> None:
        _write_with_unique(workspace_id=contact.workspace_id, record_id=contact.id,
                           item=contact_item(contact), unique=EMAIL, old_value=None,
                           new_value=contact.email, creating=True)

    def get_contact(self, workspace_id: str, contact_id: str) -> Contact | None:
        try:
            item = ContactItem.get(contact_pk(workspace_id, contact_id), contact_id)
        except DoesNotExist:
            return None
        if not isinstance(item, ContactItem) or item.workspace_id != workspace_id:
            return None
        return contact_from_item(item)

    def replace_contact(self, old: Contact, new: Contact) -> None:
        _write_with_unique(workspace_id=new.workspace_id, record_id=new.id,
                           item=contact_item(new), unique=EMAIL, old_value=old.email,
                           new_value=new.email, creating=False)

    def delete_contact(self, contact: Contact) -> None:
        transaction = Transaction()
        transaction.delete("record", contact_item(contact), add_version_condition=False)
        if contact.email:
            transaction.delete("claim", EMAIL.claim(contact.workspace_id, contact.email,
                                                    contact.id),
                               condition=UniqueClaimItem.record_id == contact.id)
        transaction.commit()

    def add_organization(self, org: Organization) -> None:
        _write_with_unique(workspace_id=org.workspace_id, record_id=org.id,
                           item=organization_item(org), unique=DOMAIN, old_value=None,
                           new_value=org.domain, creating=True)

    def get_organization(self, workspace_id: str, org_id: str) -> Organization | None:
        try:
            item = OrganizationItem.get(organization_pk(workspace_id, org_id), org_id)
        except DoesNotExist:
            return None
        if not isinstance(item, OrganizationItem) or item.workspace_id != workspace_id:
            return None
        return organization_from_item(item)

    def replace_organization(self, old: Organization, new: Organization) -> None:
        _write_with_unique(workspace_id=new.workspace_id, record_id=new.id,
                           item=organization_item(new), unique=DOMAIN, old_value=old.domain,
                           new_value=new.domain, creating=False)

    def delete_organization(self, org: Organization) -> None:
        transaction = Transaction()
        transaction.delete("record", organization_item(org), add_version_condition=False)
        if org.domain:
            transaction.delete("claim", DOMAIN.claim(org.workspace_id, org.domain, org.id),
                               condition=UniqueClaimItem.record_id == org.id)
        transaction.commit()

    def add_activities(self, activities: list[Activity]) -> None:
        with ActivityItem.batch_write() as batch:
            for activity in activities:
                batch.save(ActivityItem(
                    activity_pk(activity.workspace_id, activity.contact_id),
                    f"{activity.occurred_at}#{activity.id}",
                    workspace_id=activity.workspace_id, id=activity.id,
                    ws_key=activity_ws_key(activity.workspace_id, activity.id),
                    contact_id=activity.contact_id, type=activity.type, source=activity.source,
                    occurred_at=activity.occurred_at, created_at=activity.created_at,
                    properties=dict(activity.properties),
                ))

    def list_activities(self, workspace_id: str, contact_id: str, limit: int,
                        cursor: str | None) -> Page[Activity]:
        pk = activity_pk(workspace_id, contact_id)
        start = decode_cursor(cursor)
        if start is not None and start.get("pk") != pk:
            raise InvalidInput("the cursor belongs to another list", code="invalid_cursor",
                               details={"path": "cursor"})
        exclusive_start = ({"pk": {"S": start["pk"]}, "sk": {"S": str(start["sk"])}}
                           if start else None)
        result = ActivityItem.query(pk, scan_index_forward=False, limit=limit,
                                    last_evaluated_key=exclusive_start)
        items = [activity_from_item(item) for item in result]
        last = result.last_evaluated_key
        next_cursor = encode_cursor({"pk": last["pk"]["S"], "sk": last["sk"]["S"]}
                                    if last and len(items) == limit else None)
        return Page(items=items, next_cursor=next_cursor)

    def contact_ids_of_organization(self, workspace_id: str, org_id: str) -> list[str]:
        key = org_key(workspace_id, org_id)
        return [item.sk for item in RecordItem.by_org.query(key)]

    def _update_contact(self, workspace_id: str, contact_id: str, actions: list[Any],
                        condition: Any) -> None:
        item = ContactItem(contact_pk(workspace_id, contact_id), contact_id)
        item.version = 0  # any value: makes PynamoDB add `version + 1` to the actions
        try:
            item.update(actions=actions, condition=ContactItem.pk.exists() & condition,
                        add_version_condition=False)
        except UpdateError as error:
            if error.cause_response_code != "ConditionalCheckFailedException":
                raise

    def advance_last_active(self, workspace_id: str, contact_id: str, at: str) -> None:
        self._update_contact(
            workspace_id, contact_id, [ContactItem.last_active_at.set(at)],
            ContactItem.last_active_at.does_not_exist() | (ContactItem.last_active_at < at))

    def detach_from_organization(self, workspace_id: str, contact_id: str, org_id: str) -> None:
        self._update_contact(
            workspace_id, contact_id,
            [ContactItem.org_id.remove(), ContactItem.org_key.remove()],
            ContactItem.org_id == org_id)

    def record_activity(self, workspace_id: str, contact_id: str, type_: str,
                        source: str | None, occurred_at: str, today: str) -> None:
        for _ in range(10):
            item = self._stats_item(workspace_id, contact_id)
            stats = ActivityStats(days=dict(item.days or {}), totals=dict(item.totals or {}))
            stats.add(type_, source, occurred_at, today)
            item.days, item.totals = stats.days, stats.totals
            transaction = Transaction()
            transaction.put("stats", item)
            transaction.update("workspace", WorkspaceItem(workspace_pk(workspace_id),
                                                          WORKSPACE_SK),
                               actions=[WorkspaceItem.activities_count.add(1)],
                               condition=WorkspaceItem.pk.exists())
            failed = transaction.commit()
            if not failed or "workspace" in failed:  # done, or the workspace is gone
                return
        raise StaleVersion()

    def _stats_item(self, workspace_id: str, contact_id: str) -> ActivityStatsItem:
        try:
            return ActivityStatsItem.get(stats_pk(workspace_id, contact_id), contact_id,
                                         consistent_read=True)
        except DoesNotExist:
            return ActivityStatsItem(stats_pk(workspace_id, contact_id), contact_id,
                                     workspace_id=workspace_id, contact_id=contact_id)

    def record(self, workspace_id: str, kind: str, record_id: str) -> dict[str, Any] | None:
        """A contact or an organization as a plain dict (the shape bulk reads give)."""
        found: Contact | Organization | None = (
            self.get_contact(workspace_id, record_id) if kind == "contact"
            else self.get_organization(workspace_id, record_id) if kind == "organization"
            else None)
        return asdict(found) if found is not None else None

    def activity_stats(self, workspace_id: str, contact_id: str) -> ActivityStats:
        item = self._stats_item(workspace_id, contact_id)
        return ActivityStats(days=dict(item.days or {}), totals=dict(item.totals or {}))

    # bulk reads of a whole workspace, as plain dicts (see raw.py)

    def contacts_of_workspace(self, workspace_id: str,
                              shard: int | None = None) -> Iterator[dict[str, Any]]:
        return self._partitions(workspace_id, "C", shard)

    def organizations_of_workspace(self, workspace_id: str,
                                   shard: int | None = None) -> Iterator[dict[str, Any]]:
        return self._partitions(workspace_id, "O", shard)

    def activity_stats_of_workspace(self, workspace_id: str,
                                    shard: int | None = None) -> dict[str, ActivityStats]:
        return {item["contact_id"]: ActivityStats(days=item.get("days") or {},
                                                  totals=item.get("totals") or {})
                for item in self._partitions(workspace_id, "AS", shard)}

    def activities_of_workspace(self, workspace_id: str) -> Iterator[dict[str, Any]]:
        for key in workspace_partitions(workspace_id, "ACT"):
            yield from query_items(RecordItem.Meta.table_name, "ws_key", key,
                                   index="by_workspace")

    def _partitions(self, workspace_id: str, what: str,
                    shard: int | None = None) -> Iterator[dict[str, Any]]:
        """One shard (backfills work shard by shard) or all of them."""
        keys = workspace_partitions(workspace_id, what)
        for key in keys if shard is None else [keys[shard]]:
            yield from query_items(RecordItem.Meta.table_name, "pk", key)

    def add_counts(self, workspace_id: str, deltas: dict[str, int]) -> None:
        item = WorkspaceItem(workspace_pk(workspace_id), WORKSPACE_SK)
        actions = [getattr(WorkspaceItem, name).add(delta) for name, delta in deltas.items()]
        try:
            item.update(actions=actions, condition=WorkspaceItem.pk.exists())
        except UpdateError as error:
            if error.cause_response_code != "ConditionalCheckFailedException":
                raise


class DynamoMembershipReader:
    def members_of(self, workspace_id: str, segment_id: str) -> set[str]:
        return {item["sk"] for shard in range(MEMBERSHIP_SHARDS)
                for item in query_items(MembershipItem.Meta.table_name, "pk",
                                        f"W#{workspace_id}#S#{segment_id}#{shard:02d}")
                if not item["sk"].startswith("#")}

    def segments_of(self, workspace_id: str, record_id: str) -> list[dict[str, str]]:
        """The segments a record is in: a batch-get of its member key in every segment of the
        workspace (memberships carry no secondary index; see docs/data-model.md)."""
        from chalicelib.persistence.models import SegmentItem

        shard = shard_of(record_id, MEMBERSHIP_SHARDS)
        names = {item.sk: item.name for item in SegmentItem.query(f"W#{workspace_id}#SEG")
                 if isinstance(item, SegmentItem)}
        keys = [(f"W#{workspace_id}#S#{segment_id}#{shard:02d}", record_id)
                for segment_id in names]
        found = [item for item in MemberItem.batch_get(keys) if isinstance(item, MemberItem)]
        return sorted(({"segment_id": item.segment_id, "name": names[item.segment_id],
                        "source": item.source, "added_at": item.added_at} for item in found),
                      key=lambda s: s["segment_id"])


class DynamoIdentityStore:
    def add_workspace(self, workspace: Workspace) -> None:
        WorkspaceItem(workspace_pk(workspace.id), WORKSPACE_SK, id=workspace.id,
                      name=workspace.name, created_at=workspace.created_at).save(
            condition=WorkspaceItem.pk.does_not_exist())

    def get_workspace(self, workspace_id: str) -> Workspace | None:
        try:
            item = WorkspaceItem.get(workspace_pk(workspace_id), WORKSPACE_SK)
        except DoesNotExist:
            return None
        return Workspace(id=item.id, name=item.name, created_at=item.created_at)

    def workspace_counts(self, workspace_id: str) -> dict[str, int]:
        item = WorkspaceItem.get(workspace_pk(workspace_id), WORKSPACE_SK, consistent_read=True)
        return {"contacts": int(item.contacts_count or 0),
                "organizations": int(item.organizations_count or 0),
                "activities": int(item.activities_count or 0)}

    def add_key(self, key: ApiKey) -> None:
        try:
            ApiKeyItem(f"KEY#{key.prefix}", KEY_SK, workspace_id=key.workspace_id,
                       prefix=key.prefix, key_hash=key.key_hash, user_id=key.user_id,
                       role=key.role.value, created_at=key.created_at).save(
                condition=ApiKeyItem.pk.does_not_exist())
        except PutError as error:  # a prefix collision: 62 bits, but never overwrite a key
            raise Conflict("key prefix collision; try again", code="key_collision") from error

    def get_key(self, prefix: str) -> ApiKey | None:
        try:
            item = ApiKeyItem.get(f"KEY#{prefix}", KEY_SK)
        except DoesNotExist:
            return None
        return ApiKey(workspace_id=item.workspace_id, prefix=item.prefix, key_hash=item.key_hash,
                      user_id=item.user_id, role=Role(item.role), created_at=item.created_at)

    def delete_key(self, prefix: str) -> None:
        ApiKeyItem(f"KEY#{prefix}", KEY_SK).delete()
