"""HTTP routes. Each one: validated input in, one service call, a response model out."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from chalicelib.adapters import deps
from chalicelib.adapters import schemas as s
from chalicelib.adapters.http import Api, Call
from chalicelib.domain.identity import Principal, Role
from chalicelib.domain.membership import Segment
from chalicelib.domain.pages import decode_cursor, encode_cursor
from chalicelib.services.dead_letters import DeadLetterService
from chalicelib.services.segments import RulesDiff


def _authenticate(authorization: str | None) -> Principal:
    return deps.identity().authenticate(authorization)


api = Api(__name__, _authenticate)
bp = api.blueprint


def _fields(model: Any) -> dict[str, Any]:
    """Only what the caller sent: a PATCH changes the fields present, null clears."""
    return dict(model.model_dump(exclude_unset=True))


# -- service ---------------------------------------------------------------------------------

@api.route("/health", "GET", summary="Liveness", auth="public", response=s.Health, tag="service")
def health(call: Call) -> s.Health:
    return s.Health(status="ok", stage=deps.bound_settings().stage)


@api.route("/openapi.json", "GET", summary="This API's OpenAPI document", auth="public",
           tag="service")
def openapi(call: Call) -> dict[str, Any]:
    return api.openapi("Segments", "0.1.0")


# -- identity --------------------------------------------------------------------------------

@api.route("/workspaces", "POST", summary="Create a workspace (operator key)", auth="operator",
           body=s.WorkspaceIn, response=s.WorkspaceCreated, status=201, tag="identity")
def create_workspace(call: Call) -> s.WorkspaceCreated:
    assert call.principal is not None
    made = deps.identity().create_workspace(call.principal, call.body.name)
    return s.WorkspaceCreated(workspace_id=made.workspace.id, name=made.workspace.name,
                              created_at=made.workspace.created_at, admin_key=made.admin_key)


@api.route("/workspace", "GET", summary="The caller's workspace and its record counts",
           response=s.WorkspaceOut, tag="identity")
def get_workspace(call: Call) -> s.WorkspaceOut:
    assert call.principal is not None
    workspace, counts = deps.identity().get_workspace(call.principal)
    return s.WorkspaceOut(workspace_id=workspace.id, name=workspace.name,
                          created_at=workspace.created_at, counts=s.WorkspaceCounts(**counts))


@api.route("/api-keys", "POST", summary="Create an API key (admin)", auth="admin",
           body=s.ApiKeyIn, response=s.ApiKeyCreated, status=201, tag="identity")
def create_api_key(call: Call) -> s.ApiKeyCreated:
    assert call.principal is not None
    secret, key = deps.identity().create_api_key(call.principal, call.body.user_id,
                                                 Role(call.body.role))
    return s.ApiKeyCreated(key=secret, prefix=key.prefix, user_id=key.user_id,
                           role=key.role.value, created_at=key.created_at)


@api.route("/api-keys/{prefix}", "DELETE", summary="Revoke an API key (admin)", auth="admin",
           status=204, tag="identity")
def revoke_api_key(call: Call) -> None:
    assert call.principal is not None
    deps.identity().revoke_api_key(call.principal, call.params["prefix"])


# -- contacts --------------------------------------------------------------------------------

@api.route("/contacts", "POST", summary="Create a contact", body=s.ContactIn,
           response=s.ContactOut, status=201, tag="contacts")
def create_contact(call: Call) -> s.ContactOut:
    contact = deps.records().create_contact(call.workspace_id, _fields(call.body))
    return s.ContactOut.model_validate(contact)


@api.route("/contacts/{id}", "GET",
           summary="A contact's profile: the contact, its organization, its segments",
           response=s.ProfileOut, tag="contacts")
def get_contact(call: Call) -> s.ProfileOut:
    profile = deps.records().profile(call.workspace_id, call.params["id"])
    return s.ProfileOut(
        **s.ContactOut.model_validate(profile.contact).model_dump(),
        organization=(s.OrganizationOut.model_validate(profile.organization)
                      if profile.organization else None),
        segments=[s.SegmentMembershipOut(**segment) for segment in profile.segments])


@api.route("/contacts/{id}", "PATCH", summary="Change a contact's fields", body=s.ContactPatch,
           response=s.ContactOut, tag="contacts")
def update_contact(call: Call) -> s.ContactOut:
    contact = deps.records().update_contact(call.workspace_id, call.params["id"],
                                            _fields(call.body))
    return s.ContactOut.model_validate(contact)


@api.route("/contacts/{id}", "DELETE", summary="Delete a contact", status=204, tag="contacts")
def delete_contact(call: Call) -> None:
    deps.records().delete_contact(call.workspace_id, call.params["id"])


@api.route("/contacts/{id}/activities", "GET", summary="A contact's activities, newest first",
           response=s.ActivityPage, paginated=True, tag="activities")
def list_activities(call: Call) -> s.ActivityPage:
    page = deps.records().list_activities(call.workspace_id, call.params["id"], call.limit,
                                          call.cursor)
    return s.ActivityPage(items=[s.ActivityOut.model_validate(a) for a in page.items],
                          next_cursor=page.next_cursor)


# -- organizations ---------------------------------------------------------------------------

@api.route("/organizations", "POST", summary="Create an organization", body=s.OrganizationIn,
           response=s.OrganizationOut, status=201, tag="organizations")
def create_organization(call: Call) -> s.OrganizationOut:
    org = deps.records().create_organization(call.workspace_id, _fields(call.body))
    return s.OrganizationOut.model_validate(org)


@api.route("/organizations/{id}", "GET", summary="An organization",
           response=s.OrganizationOut, tag="organizations")
def get_organization(call: Call) -> s.OrganizationOut:
    return s.OrganizationOut.model_validate(
        deps.records().get_organization(call.workspace_id, call.params["id"]))


@api.route("/organizations/{id}", "PATCH", summary="Change an organization's fields",
           body=s.OrganizationPatch, response=s.OrganizationOut, tag="organizations")
def update_organization(call: Call) -> s.OrganizationOut:
    org = deps.records().update_organization(call.workspace_id, call.params["id"],
                                             _fields(call.body))
    return s.OrganizationOut.model_validate(org)


@api.route("/organizations/{id}", "DELETE",
           summary="Delete an organization (its contacts are detached)", status=204,
           tag="organizations")
def delete_organization(call: Call) -> None:
    deps.records().delete_organization(call.workspace_id, call.params["id"])


# -- activities ------------------------------------------------------------------------------

@api.route("/activities", "POST", summary="Append one activity or {items: [...]}",
           body=s.ActivitiesBody, response=s.ActivitiesOut, status=201, tag="activities")
def add_activities(call: Call) -> s.ActivitiesOut:
    items = [item.model_dump() for item in call.body.activities()]
    added = deps.records().add_activities(call.workspace_id, items)
    return s.ActivitiesOut(items=[s.ActivityOut.model_validate(a) for a in added])


# -- explorers and previews ------------------------------------------------------------------

_OUT: dict[str, type[BaseModel]] = {"contact": s.ContactOut, "organization": s.OrganizationOut,
                                     "activity": s.ActivityOut}


def _search(call: Call, kind: str) -> tuple[list[Any], str | None]:
    body = call.body
    page = deps.search().search(call.workspace_id, kind, body.filter,
                                [item.model_dump() for item in body.sort], body.limit,
                                body.cursor)
    return [_OUT[kind].model_validate(record) for record in page.items], page.next_cursor


@api.route("/contacts/search", "POST", summary="Contact explorer: filter, sort, page",
           body=s.SearchIn, response=s.ContactPage, tag="explorers")
def search_contacts(call: Call) -> s.ContactPage:
    items, cursor = _search(call, "contact")
    return s.ContactPage(items=items, next_cursor=cursor)


@api.route("/organizations/search", "POST", summary="Organization explorer: filter, sort, page",
           body=s.SearchIn, response=s.OrganizationPage, tag="explorers")
def search_organizations(call: Call) -> s.OrganizationPage:
    items, cursor = _search(call, "organization")
    return s.OrganizationPage(items=items, next_cursor=cursor)


@api.route("/activities/search", "POST", summary="Activity explorer: filter, sort, page",
           body=s.SearchIn, response=s.ActivityPage, tag="explorers")
def search_activities(call: Call) -> s.ActivityPage:
    items, cursor = _search(call, "activity")
    return s.ActivityPage(items=items, next_cursor=cursor)


@api.route("/segments/preview", "POST",
           summary="How many records a filter matches now, and a sample; saves nothing",
           body=s.PreviewIn, response=s.PreviewOut, tag="segments")
def preview_segment(call: Call) -> s.PreviewOut:
    body = call.body
    preview = deps.search().preview(call.workspace_id, body.kind, body.filter, body.limit)
    out = _OUT[body.kind]
    return s.PreviewOut(count=preview.count, sample=[
        out.model_validate(record).model_dump(mode="json") for record in preview.sample])


# -- segments --------------------------------------------------------------------------------

def _segment_out(segment: Segment) -> s.SegmentOut:
    backfill = segment.backfill
    return s.SegmentOut(
        id=segment.id, kind=segment.kind, name=segment.name, description=segment.description,
        visibility=segment.visibility, owner=segment.owner, rules=segment.rules.to_json(),
        status=segment.status, member_count=segment.member_count,
        last_evaluated_at=segment.last_evaluated_at, created_at=segment.created_at,
        updated_at=segment.updated_at,
        backfill=s.BackfillOut(run=backfill["run"], reason=backfill["reason"],
                               started_at=backfill["started_at"],
                               shards_done=len(backfill.get("done", [])), shards_total=16,
                               processed=int(backfill.get("processed", 0)))
        if backfill else None)


def _caller(call: Call) -> Principal:
    assert call.principal is not None
    return call.principal


@api.route("/segments", "POST", summary="Create a segment (rules, members, or both)",
           body=s.SegmentIn, response=s.SegmentCreated, status=201, tag="segments")
def create_segment(call: Call) -> s.SegmentCreated:
    segment, result = deps.segments().create(_caller(call), call.body.model_dump())
    return s.SegmentCreated(**_segment_out(segment).model_dump(), members_result=(
        s.MembersResultOut.model_validate(result) if call.body.members else None))


@api.route("/segments", "GET", summary="The segments the caller may see",
           response=s.SegmentList, paginated=True, tag="segments")
def list_segments(call: Call) -> s.SegmentList:
    segments = sorted(deps.segments().visible(_caller(call)), key=lambda x: x.id)
    items, cursor = _page_by_key(segments, lambda x: x.id, call.limit, call.cursor)
    return s.SegmentList(items=[_segment_out(x) for x in items], next_cursor=cursor)


def _page_by_key(items: list[Any], key: Callable[[Any], str], limit: int,
                 cursor: str | None) -> tuple[list[Any], str | None]:
    """A page of a short list held in memory (segments of a workspace, organizations of a
    segment), continuing after the key in the cursor."""
    after = (decode_cursor(cursor) or {}).get("after")
    rest = [item for item in items if after is None or key(item) > after]
    page = rest[:limit]
    return page, (encode_cursor({"after": key(page[-1])}) if len(rest) > limit else None)


@api.route("/segments/{id}", "GET", summary="A segment with its status and counts",
           response=s.SegmentOut, tag="segments")
def get_segment(call: Call) -> s.SegmentOut:
    return _segment_out(deps.segments().get(_caller(call), call.params["id"]))


@api.route("/segments/{id}", "PATCH",
           summary="Edit name, description, rules (?dry_run=true: what the edit would do)",
           body=s.SegmentPatch, response=s.SegmentOut, tag="segments")
def update_segment(call: Call) -> s.SegmentOut | s.RulesDiffOut:
    dry_run = call.query.get("dry_run", "false").lower() in ("true", "1", "yes")
    outcome = deps.segments().update(_caller(call), call.params["id"], _fields(call.body),
                                     dry_run=dry_run)
    if isinstance(outcome, RulesDiff):
        return s.RulesDiffOut.model_validate(outcome)
    return _segment_out(outcome)


@api.route("/segments/{id}", "DELETE", summary="Delete a segment and its memberships",
           status=204, tag="segments")
def delete_segment(call: Call) -> None:
    deps.segments().delete(_caller(call), call.params["id"])


@api.route("/segments/{id}/members", "GET", summary="Members with source and added_at",
           response=s.MemberPage, paginated=True, tag="segments")
def segment_members(call: Call) -> s.MemberPage:
    page = deps.segments().members(_caller(call), call.params["id"], call.limit, call.cursor)
    return s.MemberPage(items=page.items, next_cursor=page.next_cursor)


@api.route("/segments/{id}/members", "POST", summary="Add records by hand",
           body=s.MembersIn, response=s.MembersResultOut, tag="segments")
def add_segment_members(call: Call) -> s.MembersResultOut:
    result = deps.segments().add_members(_caller(call), call.params["id"], call.body.ids)
    return s.MembersResultOut.model_validate(result)


@api.route("/segments/{id}/members/remove", "POST",
           summary="Remove records by hand (those the rules would re-add are excluded)",
           body=s.MembersIn, response=s.RemoveResultOut, tag="segments")
def remove_segment_members(call: Call) -> s.RemoveResultOut:
    result = deps.segments().remove_members(_caller(call), call.params["id"], call.body.ids)
    return s.RemoveResultOut.model_validate(result)


@api.route("/segments/{id}/exclusions/{record_id}", "DELETE",
           summary="Lift an exclusion (the record comes back if it satisfies the rules)",
           status=204, tag="segments")
def lift_exclusion(call: Call) -> None:
    deps.segments().lift_exclusion(_caller(call), call.params["id"], call.params["record_id"])


@api.route("/segments/{id}/organizations", "GET",
           summary="Organizations the members of a contact segment work for",
           response=s.SegmentOrganizations, paginated=True, tag="segments")
def segment_organizations(call: Call) -> s.SegmentOrganizations:
    orgs = deps.segments().organizations(_caller(call), call.params["id"])  # most members first
    ranked = [{**org, "_key": f"{10**12 - org['member_count']:013d}{org['id']}"} for org in orgs]
    items, cursor = _page_by_key(ranked, lambda org: org["_key"], call.limit, call.cursor)
    return s.SegmentOrganizations(items=[{k: v for k, v in org.items() if k != "_key"}
                                         for org in items], next_cursor=cursor)


@api.route("/segments/{id}/history", "GET", summary="Membership events, newest first",
           response=s.HistoryPage, paginated=True, tag="segments")
def segment_history(call: Call) -> s.HistoryPage:
    page = deps.segments().history(_caller(call), call.params["id"], call.limit, call.cursor)
    return s.HistoryPage(items=[s.HistoryEvent.model_validate(e) for e in page.items],
                         next_cursor=page.next_cursor)


@api.route("/segments/{id}/explain/{record_id}", "GET",
           summary="Is the record in, why, and every condition's result",
           response=s.Explanation, tag="segments")
def explain_membership(call: Call) -> s.Explanation:
    return s.Explanation.model_validate(deps.segments().explain(
        _caller(call), call.params["id"], call.params["record_id"]))


@api.route("/segments/{id}/reevaluate", "POST", summary="Evaluate the rules again (a backfill)",
           response=s.Accepted, status=202, tag="segments")
def reevaluate_segment(call: Call) -> s.Accepted:
    segment = deps.segments().reevaluate(_caller(call), call.params["id"])
    return s.Accepted(status="backfilling", segment=_segment_out(segment))


# -- operations (operator key) ---------------------------------------------------------------

def _dead_letters() -> DeadLetterService:
    return deps.dead_letters(bp.current_app.handler_map)


@api.route("/admin/dead-letters", "GET",
           summary="Stream records a consumer failed past the retry bound, oldest first",
           auth="operator", response=s.DeadLetterPage, paginated=True, tag="operations")
def list_dead_letters(call: Call) -> s.DeadLetterPage:
    page = _dead_letters().page(_caller(call), call.limit, call.cursor)
    return s.DeadLetterPage(items=[s.DeadLetterOut.model_validate(x) for x in page.items],
                            next_cursor=page.next_cursor)


@api.route("/admin/dead-letters/redrive", "POST",
           summary="Deliver every dead letter again; handled ones go away",
           auth="operator", response=s.RedriveAllOut, tag="operations")
def redrive_dead_letters(call: Call) -> s.RedriveAllOut:
    results = _dead_letters().redrive_all(_caller(call))
    handled = sum(1 for result in results if result.handled)
    return s.RedriveAllOut(handled=handled, still_failing=len(results) - handled,
                           items=[s.RedriveOut.model_validate(x) for x in results])


@api.route("/admin/dead-letters/{id}/redrive", "POST",
           summary="Deliver one dead letter again; handled, it goes away",
           auth="operator", response=s.RedriveOut, tag="operations")
def redrive_dead_letter(call: Call) -> s.RedriveOut:
    return s.RedriveOut.model_validate(_dead_letters().redrive(_caller(call),
                                                               call.params["id"]))


@api.route("/admin/dead-letters/{id}", "DELETE", summary="Discard a dead letter",
           auth="operator", status=204, tag="operations")
def discard_dead_letter(call: Call) -> None:
    _dead_letters().discard(_caller(call), call.params["id"])
