"""Request and response bodies of the HTTP API (pydantic, at the edge only)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, RootModel, Tag

Text = Field(default=None, max_length=1000)


class Strict(BaseModel):
    """Unknown fields and wrongly typed values are errors, never silently coerced."""

    model_config = ConfigDict(extra="forbid", strict=True)


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


# -- identity --------------------------------------------------------------------------------

class WorkspaceIn(Strict):
    name: str = Field(min_length=1, max_length=200)


class WorkspaceCreated(Out):
    workspace_id: str
    name: str
    created_at: str
    admin_key: str = Field(description="shown once; store it now")


class WorkspaceCounts(Out):
    contacts: int
    organizations: int
    activities: int


class WorkspaceOut(Out):
    workspace_id: str
    name: str
    created_at: str
    counts: WorkspaceCounts = Field(description="kept by the records stream consumer")


class ApiKeyIn(Strict):
    user_id: str = Field(min_length=1, max_length=200)
    role: Literal["admin", "member"]


class ApiKeyCreated(Out):
    key: str = Field(description="shown once; only its hash is stored")
    prefix: str
    user_id: str
    role: str
    created_at: str


# -- records ---------------------------------------------------------------------------------

class ContactIn(Strict):
    email: str | None = Field(default=None, max_length=320)
    name: str | None = Text
    title: str | None = Text
    tags: list[str] = Field(default_factory=list)
    country: str | None = Field(default=None, max_length=100)
    city: str | None = Field(default=None, max_length=200)
    org_id: str | None = Field(default=None, max_length=100)
    attributes: dict[str, Any] = Field(default_factory=dict)


class ContactPatch(Strict):
    """Only the fields sent change; null clears a field; `attributes` merges (null deletes)."""

    email: str | None = Field(default=None, max_length=320)
    name: str | None = Text
    title: str | None = Text
    tags: list[str] | None = None
    country: str | None = Field(default=None, max_length=100)
    city: str | None = Field(default=None, max_length=200)
    org_id: str | None = Field(default=None, max_length=100)
    attributes: dict[str, Any] | None = None


class ContactOut(Out):
    id: str
    email: str | None = None
    name: str | None = None
    title: str | None = None
    tags: list[str] = Field(default_factory=list)
    country: str | None = None
    city: str | None = None
    org_id: str | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)
    created_at: str
    updated_at: str
    last_active_at: str | None = None


class OrganizationIn(Strict):
    name: str = Field(min_length=1, max_length=1000)
    domain: str | None = Field(default=None, max_length=253)
    tags: list[str] = Field(default_factory=list)
    attributes: dict[str, Any] = Field(default_factory=dict)


class OrganizationPatch(Strict):
    name: str | None = Field(default=None, min_length=1, max_length=1000)
    domain: str | None = Field(default=None, max_length=253)
    tags: list[str] | None = None
    attributes: dict[str, Any] | None = None


class OrganizationOut(Out):
    id: str
    name: str
    domain: str | None = None
    tags: list[str] = Field(default_factory=list)
    attributes: dict[str, Any] = Field(default_factory=dict)
    created_at: str
    updated_at: str


class SegmentMembershipOut(Out):
    segment_id: str
    name: str
    source: str
    added_at: str


class ProfileOut(ContactOut):
    organization: OrganizationOut | None
    segments: list[SegmentMembershipOut]


class ActivityIn(Strict):
    contact_id: str = Field(min_length=1, max_length=100)
    type: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:-]+$")
    source: str | None = Field(default=None, max_length=200)
    occurred_at: str | None = Field(default=None, max_length=64)
    properties: dict[str, Any] = Field(default_factory=dict)


class ActivitiesIn(Strict):
    items: list[ActivityIn] = Field(min_length=1, max_length=100)


class ActivityOut(Out):
    id: str
    contact_id: str
    type: str
    source: str | None = None
    occurred_at: str
    created_at: str
    properties: dict[str, Any] = Field(default_factory=dict)


class ActivitiesOut(Out):
    items: list[ActivityOut]


class ActivityPage(Out):
    items: list[ActivityOut]
    next_cursor: str | None


# -- explorers and previews ------------------------------------------------------------------

class SortIn(Strict):
    field: str = Field(min_length=1, max_length=200)
    dir: Literal["asc", "desc"] = "asc"


class SearchIn(Strict):
    """`filter` is the FILTER grammar (SPEC section 6); errors name paths inside it."""

    filter: dict[str, Any] | None = None
    sort: list[SortIn] = Field(default_factory=list, max_length=3)
    limit: int = Field(default=50, ge=1, le=200)
    cursor: str | None = Field(default=None, max_length=4000)


class ContactPage(Out):
    items: list[ContactOut]
    next_cursor: str | None


class OrganizationPage(Out):
    items: list[OrganizationOut]
    next_cursor: str | None


class PreviewIn(Strict):
    kind: Literal["contact", "organization"]
    filter: dict[str, Any] | None = None
    limit: int = Field(default=10, ge=0, le=200)


class PreviewOut(Out):
    count: int = Field(description="exactly how many records match now")
    sample: list[dict[str, Any]] = Field(description="the first `limit` matches, oldest first")


class Health(Out):
    status: str
    stage: str


def _activities_shape(value: Any) -> str:
    return "batch" if isinstance(value, dict) and "items" in value else "one"


class ActivitiesBody(RootModel[Annotated[
        Annotated[ActivityIn, Tag("one")] | Annotated[ActivitiesIn, Tag("batch")],
        Discriminator(_activities_shape)]]):
    """One activity, or `{"items": [...]}` with up to 100."""

    def activities(self) -> list[ActivityIn]:
        return self.root.items if isinstance(self.root, ActivitiesIn) else [self.root]


# -- segments --------------------------------------------------------------------------------

class SegmentIn(Strict):
    kind: Literal["contact", "organization"]
    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    visibility: Literal["team", "personal"] = "team"
    rules: dict[str, Any] | None = Field(
        default=None, description='{"add": FILTER|null, "remove": {"mode", "filter"}}')
    members: list[str] = Field(default_factory=list, max_length=1000)


class SegmentPatch(Strict):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    rules: dict[str, Any] | None = None


class BackfillOut(Out):
    run: str
    reason: str
    started_at: str
    shards_done: int
    shards_total: int
    processed: int


class SegmentOut(Out):
    id: str
    kind: str
    name: str
    description: str | None
    visibility: str
    owner: str
    rules: dict[str, Any]
    status: str = Field(description="backfilling | ready | error")
    member_count: int
    last_evaluated_at: str | None
    backfill: BackfillOut | None
    created_at: str
    updated_at: str


class MembersIn(Strict):
    ids: list[str] = Field(min_length=1, max_length=1000)


class Rejected(Out):
    id: str
    reason: str


class MembersResultOut(Out):
    added: list[str]
    already: list[str]
    rejected: list[Rejected]


class SegmentCreated(SegmentOut):
    members_result: MembersResultOut | None = None


class RemoveResultOut(Out):
    removed: list[str]
    excluded: list[str] = Field(description="still satisfy the rules: kept out until lifted")
    not_member: list[str]


class SegmentList(Out):
    items: list[SegmentOut]
    next_cursor: str | None = None


class RulesDiffOut(Out):
    dry_run: bool = True
    would_add: int
    would_remove: int
    sample_add: list[str]
    sample_remove: list[str]


class MemberPage(Out):
    items: list[dict[str, Any]] = Field(description="records with source and added_at")
    next_cursor: str | None


class SegmentOrganizations(Out):
    items: list[dict[str, Any]] = Field(description="organizations with member_count")
    next_cursor: str | None = None


class HistoryEvent(Out):
    record_id: str
    action: str
    reason: str
    at: str
    actor: str


class HistoryPage(Out):
    items: list[HistoryEvent]
    next_cursor: str | None


class Explanation(Out):
    record_id: str
    member: bool
    source: str | None
    added_at: str | None
    excluded: bool
    matches_add: bool
    auto_removes: bool
    remove_mode: str
    why: str
    add: dict[str, Any] | None
    remove: dict[str, Any] | None


class Accepted(Out):
    status: str
    segment: SegmentOut


# -- operations ------------------------------------------------------------------------------

class DeadLetterOut(Out):
    id: str
    consumer: str = Field(description="the function that failed the record")
    source: str = Field(description="the stream it came from")
    error: str = Field(description="the latest failure")
    attempts: int = Field(description="deliveries before it became a dead letter")
    redrives: int = Field(description="re-drives that failed since")
    failed_at: str
    payload: dict[str, Any] = Field(description="the stream record, as Lambda received it")


class DeadLetterPage(Out):
    items: list[DeadLetterOut]
    next_cursor: str | None


class RedriveOut(Out):
    id: str
    handled: bool = Field(description="true: delivered and handled, the dead letter is gone")
    error: str | None


class RedriveAllOut(Out):
    handled: int
    still_failing: int
    items: list[RedriveOut]
