"""PynamoDB models. Key design: docs/data-model.md.

Four tables, so that only one of them carries a stream that consumers read:
- records (stream: NEW_AND_OLD_IMAGES): contacts, organizations, activities, uniqueness claims
- memberships: segment members, sharded per segment; a GSI answers "segments of a record"
- control: workspaces, API keys, runtime checkpoints and dead letters
- idempotency: powertools' idempotency records (created in tables.py)

Table names and endpoints are bound from settings by `tables.bind()`, never at import time.
"""

from __future__ import annotations

from pynamodb.attributes import (
    DiscriminatorAttribute,
    JSONAttribute,
    ListAttribute,
    NumberAttribute,
    UnicodeAttribute,
    VersionAttribute,
)
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model

from chalicelib.domain.membership import SHARDS

# Shards per workspace for contacts and organizations, and per segment for memberships:
# spreads one workspace's writes over this many partitions (~1,000 writes/s each). The same
# number for both, so a backfill of record shard s writes member shard s.
RECORD_SHARDS = MEMBERSHIP_SHARDS = SHARDS


class _Meta:
    host: str | None = None
    region = "us-east-1"
    billing_mode = "PAY_PER_REQUEST"


# -- records (streamed) ----------------------------------------------------------------------

class ByOrganizationIndex(GlobalSecondaryIndex["RecordItem"]):
    """Contacts of an organization: org_key = W#<ws>#O#<org_id>, sorted by contact id."""

    class Meta:
        index_name = "by_org"
        projection = AllProjection()

    org_key = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)


class ByWorkspaceIndex(GlobalSecondaryIndex["RecordItem"]):
    """Activities of a workspace: ws_key = W#<ws>#ACT#<shard>, sorted by occurred_at#id."""

    class Meta:
        index_name = "by_workspace"
        projection = AllProjection()

    ws_key = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)


class RecordItem(Model):
    class Meta(_Meta):
        table_name = "segments-records"
        stream_view_type = "NEW_AND_OLD_IMAGES"

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    kind = DiscriminatorAttribute()
    workspace_id = UnicodeAttribute()
    org_key = UnicodeAttribute(null=True)
    ws_key = UnicodeAttribute(null=True)
    by_org = ByOrganizationIndex()
    by_workspace = ByWorkspaceIndex()


class ContactItem(RecordItem, discriminator="contact"):
    id = UnicodeAttribute()
    email = UnicodeAttribute(null=True)
    name = UnicodeAttribute(null=True)
    title = UnicodeAttribute(null=True)
    tags = ListAttribute(of=UnicodeAttribute, default=list)  # type: ignore[arg-type]
    country = UnicodeAttribute(null=True)
    city = UnicodeAttribute(null=True)
    org_id = UnicodeAttribute(null=True)
    attributes = JSONAttribute(default=dict)
    created_at = UnicodeAttribute()
    updated_at = UnicodeAttribute()
    last_active_at = UnicodeAttribute(null=True)
    version = VersionAttribute()


class OrganizationItem(RecordItem, discriminator="organization"):
    id = UnicodeAttribute()
    name = UnicodeAttribute()
    domain = UnicodeAttribute(null=True)
    tags = ListAttribute(of=UnicodeAttribute, default=list)  # type: ignore[arg-type]
    attributes = JSONAttribute(default=dict)
    created_at = UnicodeAttribute()
    updated_at = UnicodeAttribute()
    version = VersionAttribute()


class ActivityItem(RecordItem, discriminator="activity"):
    id = UnicodeAttribute()
    contact_id = UnicodeAttribute()
    type = UnicodeAttribute()
    source = UnicodeAttribute(null=True)
    occurred_at = UnicodeAttribute()
    created_at = UnicodeAttribute()
    properties = JSONAttribute(default=dict)


class ActivityStatsItem(RecordItem, discriminator="activity_stats"):
    """pk = W#<ws>#AS#<shard>, sk = contact id: counts by day and type/source (bounded)."""

    contact_id = UnicodeAttribute()
    days = JSONAttribute(default=dict)
    totals = JSONAttribute(default=dict)
    version = VersionAttribute()


class UniqueClaimItem(RecordItem, discriminator="claim"):
    """Holds a unique value (an email, a domain) for one record of one workspace."""

    record_id = UnicodeAttribute()


# -- memberships -----------------------------------------------------------------------------

class MembershipItem(Model):
    """Everything about a segment's members, keyed under the segment (docs/data-model.md)."""

    class Meta(_Meta):
        table_name = "segments-memberships"

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    kind = DiscriminatorAttribute()
    workspace_id = UnicodeAttribute()
    segment_id = UnicodeAttribute()


class MemberItem(MembershipItem, discriminator="member"):
    """pk = W#<ws>#S#<segment>#<shard>, sk = record id. No secondary index: membership writes
    are the hot path; a profile finds its segments with one batch-get per 100 segments."""

    source = UnicodeAttribute()
    added_at = UnicodeAttribute()
    org_id = UnicodeAttribute(null=True)


class ShardCountItem(MembershipItem, discriminator="shard_count"):
    """pk = W#<ws>#S#<segment>#<shard>, sk = #count: members in that shard."""

    members = NumberAttribute(default=0)


class ExclusionItem(MembershipItem, discriminator="exclusion"):
    """pk = W#<ws>#X#<segment>, sk = record id: kept out until lifted."""

    excluded_at = UnicodeAttribute()
    actor = UnicodeAttribute()


class OrgCountItem(MembershipItem, discriminator="org_count"):
    """pk = W#<ws>#SO#<segment>, sk = <org id>#<shard>: members of a contact segment working
    there, per member shard (a backfill shard sets its own exactly; the sum is the count)."""

    member_count = NumberAttribute(default=0)


class HistoryItem(MembershipItem, discriminator="history"):
    """pk = W#<ws>#H#<segment>#<shard>, sk = <at>#<event id>#<record id>: one change made by
    the membership writer. A backfill's changes are stored as plan chunks instead
    (kind history_batch, sk = <at>#~<run>#<shard>#<chunk>, record_ids: up to 100), written
    by DynamoSegmentStore.write_plan; the history listing expands them."""

    record_id = UnicodeAttribute()
    action = UnicodeAttribute()
    reason = UnicodeAttribute()
    at = UnicodeAttribute()
    actor = UnicodeAttribute()


class PendingItem(MembershipItem, discriminator="pending"):
    """pk = W#<ws>#P#<segment>#<shard>, sk = <record id>: a record that changed while its
    shard was waiting for a backfill; the backfill re-checks it when the shard is done.
    `token` is new on every write, so clearing a marker never loses a newer one."""

    token = UnicodeAttribute()


# -- control ---------------------------------------------------------------------------------

class ControlItem(Model):
    class Meta(_Meta):
        table_name = "segments-control"

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    kind = DiscriminatorAttribute()


class WorkspaceItem(ControlItem, discriminator="workspace"):
    """pk = W#<ws>, sk = #workspace. Counts are kept by the records stream consumer."""

    id = UnicodeAttribute()
    name = UnicodeAttribute()
    created_at = UnicodeAttribute()
    contacts_count = NumberAttribute(default=0)
    organizations_count = NumberAttribute(default=0)
    activities_count = NumberAttribute(default=0)
    segments_version = NumberAttribute(default=0)  # bumped by every segment write


class ApiKeyItem(ControlItem, discriminator="api_key"):
    """pk = KEY#<prefix>, sk = #key. Only the SHA-256 of the key is stored."""

    workspace_id = UnicodeAttribute()
    prefix = UnicodeAttribute()
    key_hash = UnicodeAttribute()
    user_id = UnicodeAttribute()
    role = UnicodeAttribute()
    created_at = UnicodeAttribute()


class SegmentItem(ControlItem, discriminator="segment"):
    """pk = W#<ws>#SEG, sk = <segment id>: definition, rules and status of a segment.
    Members live in the memberships table; the count is the sum of its shard counts."""

    id = UnicodeAttribute()
    workspace_id = UnicodeAttribute()
    record_kind = UnicodeAttribute()  # contact | organization
    name = UnicodeAttribute()
    description = UnicodeAttribute(null=True)
    visibility = UnicodeAttribute()
    owner = UnicodeAttribute()
    rules = JSONAttribute(default=dict)
    status = UnicodeAttribute(default="ready")
    backfill = JSONAttribute(null=True)
    last_evaluated_at = UnicodeAttribute(null=True)
    created_at = UnicodeAttribute()
    updated_at = UnicodeAttribute()
    version = VersionAttribute()


class SegmentNameItem(ControlItem, discriminator="segment_name"):
    """pk = W#<ws>#SEGNAME#<case-folded name>, sk = #: names are unique per workspace."""

    segment_id = UnicodeAttribute()


class CheckpointItem(ControlItem, discriminator="checkpoint"):
    """pk = RUNTIME#checkpoint, sk = <consumer>#<shard id>: the last sequence number done."""

    sequence_number = UnicodeAttribute()
    updated_at = UnicodeAttribute()


class DeadLetterItem(ControlItem, discriminator="dead_letter"):
    """pk = DLQ, sk = <id> (time-ordered): a stream record that failed past the retry bound;
    `error` is the latest failure, `redrives` how often an operator delivered it again."""

    consumer = UnicodeAttribute()
    source = UnicodeAttribute()
    payload = JSONAttribute()
    error = UnicodeAttribute()
    attempts = NumberAttribute()
    failed_at = UnicodeAttribute()
    redrives = NumberAttribute(default=0)


TABLE_MODELS: tuple[type[Model], ...] = (RecordItem, MembershipItem, ControlItem)
ALL_MODELS: tuple[type[Model], ...] = (
    RecordItem, ContactItem, OrganizationItem, ActivityItem, ActivityStatsItem, UniqueClaimItem,
    MembershipItem, MemberItem, ShardCountItem, ExclusionItem, OrgCountItem, HistoryItem,
    PendingItem,
    ControlItem, WorkspaceItem, ApiKeyItem, SegmentItem, SegmentNameItem, CheckpointItem,
    DeadLetterItem,
)
