"""Contacts, organizations and activities: create, read, change, delete, profile."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from chalicelib.domain.errors import Conflict, InvalidInput, NotFound
from chalicelib.domain.ids import new_id
from chalicelib.domain.pages import Page
from chalicelib.domain.records import (
    Activity,
    Contact,
    Organization,
    new_contact,
    new_organization,
    normalize_timestamp,
    patch_contact,
    patch_organization,
)
from chalicelib.services.ports import MembershipReader, RecordStore, StaleVersion

MAX_ACTIVITIES_PER_CALL = 100
_PATCH_ATTEMPTS = 5
R = TypeVar("R")


@dataclass(frozen=True)
class Profile:
    contact: Contact
    organization: Organization | None
    segments: list[dict[str, str]]


class RecordsService:
    def __init__(self, store: RecordStore, memberships: MembershipReader,
                 now: Callable[[], str]) -> None:
        self._store = store
        self._memberships = memberships
        self._now = now

    # -- contacts ------------------------------------------------------------------------------

    def create_contact(self, workspace_id: str, fields: Mapping[str, Any]) -> Contact:
        """A new contact; 409 `email_taken` (with the existing id) when the email is in use."""
        self._check_org(workspace_id, fields.get("org_id"))
        contact = new_contact(workspace_id, new_id("c"), fields, self._now())
        self._store.add_contact(contact)
        return contact

    def get_contact(self, workspace_id: str, contact_id: str) -> Contact:
        contact = self._store.get_contact(workspace_id, contact_id)
        if contact is None:
            raise NotFound(f"no contact '{contact_id}'", details={"path": "id"})
        return contact

    def profile(self, workspace_id: str, contact_id: str) -> Profile:
        contact = self.get_contact(workspace_id, contact_id)
        org = (self._store.get_organization(workspace_id, contact.org_id)
               if contact.org_id else None)
        return Profile(contact=contact, organization=org,
                       segments=self._memberships.segments_of(workspace_id, contact_id))

    def update_contact(self, workspace_id: str, contact_id: str,
                       patch: Mapping[str, Any]) -> Contact:
        if patch.get("org_id"):
            self._check_org(workspace_id, patch["org_id"])
        return self._update(lambda: self.get_contact(workspace_id, contact_id),
                            lambda current: patch_contact(current, patch, self._now()),
                            self._store.replace_contact)

    def delete_contact(self, workspace_id: str, contact_id: str) -> None:
        self._store.delete_contact(self.get_contact(workspace_id, contact_id))

    # -- organizations -------------------------------------------------------------------------

    def create_organization(self, workspace_id: str, fields: Mapping[str, Any]) -> Organization:
        org = new_organization(workspace_id, new_id("o"), fields, self._now())
        self._store.add_organization(org)
        return org

    def get_organization(self, workspace_id: str, org_id: str) -> Organization:
        org = self._store.get_organization(workspace_id, org_id)
        if org is None:
            raise NotFound(f"no organization '{org_id}'", details={"path": "id"})
        return org

    def update_organization(self, workspace_id: str, org_id: str,
                            patch: Mapping[str, Any]) -> Organization:
        return self._update(lambda: self.get_organization(workspace_id, org_id),
                            lambda current: patch_organization(current, patch, self._now()),
                            self._store.replace_organization)

    def delete_organization(self, workspace_id: str, org_id: str) -> None:
        """Deletes the organization; its contacts are detached by the records stream consumer."""
        self._store.delete_organization(self.get_organization(workspace_id, org_id))

    # -- activities ----------------------------------------------------------------------------

    def add_activities(self, workspace_id: str, items: list[Mapping[str, Any]]) -> list[Activity]:
        """Append activities (all or none): every contact must exist in the workspace."""
        if not items:
            raise InvalidInput("send at least one activity", code="empty", details={"path": "$"})
        if len(items) > MAX_ACTIVITIES_PER_CALL:
            raise InvalidInput(f"at most {MAX_ACTIVITIES_PER_CALL} activities per call",
                               code="too_many_items", details={"path": "$.items"})
        now = self._now()
        activities = []
        for index, item in enumerate(items):
            path = f"$.items[{index}]" if len(items) > 1 else "$"
            contact_id = item["contact_id"]
            if self._store.get_contact(workspace_id, contact_id) is None:
                raise NotFound(f"no contact '{contact_id}'",
                               details={"path": f"{path}.contact_id"})
            occurred_at = (normalize_timestamp(item["occurred_at"], path=f"{path}.occurred_at")
                           if item.get("occurred_at") else now)
            activities.append(Activity(
                workspace_id=workspace_id, id=new_id("a"), contact_id=contact_id,
                type=item["type"], source=item.get("source") or item["type"].split(".", 1)[0],
                occurred_at=occurred_at, created_at=now, properties=item.get("properties") or {},
            ))
        self._store.add_activities(activities)
        return activities

    def list_activities(self, workspace_id: str, contact_id: str, limit: int,
                        cursor: str | None) -> Page[Activity]:
        self.get_contact(workspace_id, contact_id)
        return self._store.list_activities(workspace_id, contact_id, limit, cursor)

    # -- helpers -------------------------------------------------------------------------------

    def _check_org(self, workspace_id: str, org_id: str | None) -> None:
        if org_id and self._store.get_organization(workspace_id, org_id) is None:
            raise NotFound(f"no organization '{org_id}'", details={"path": "$.org_id"})

    @staticmethod
    def _update(read: Callable[[], R], change: Callable[[R], R],
                write: Callable[[R, R], None]) -> R:
        """Read, change, write conditioned on the version read; again if another writer won."""
        for _ in range(_PATCH_ATTEMPTS):
            current = read()
            updated = change(current)
            try:
                write(current, updated)
                return updated
            except StaleVersion:
                continue
        raise Conflict("the record kept changing while it was being updated; try again",
                       code="concurrent_update")
