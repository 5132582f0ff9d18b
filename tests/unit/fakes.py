"""In-memory stores implementing the services' Protocols (services/ports.py)."""

from __future__ import annotations

from dataclasses import replace

from chalicelib.domain.activity_stats import ActivityStats
from chalicelib.domain.errors import Conflict
from chalicelib.domain.identity import ApiKey, Workspace
from chalicelib.domain.pages import Page, decode_cursor, encode_cursor
from chalicelib.domain.records import Activity, Contact, Organization, email_key
from chalicelib.services.ports import StaleVersion


class FakeIdentityStore:
    def __init__(self) -> None:
        self.workspaces: dict[str, Workspace] = {}
        self.keys: dict[str, ApiKey] = {}

    def add_workspace(self, workspace: Workspace) -> None:
        self.workspaces[workspace.id] = workspace

    def get_workspace(self, workspace_id: str) -> Workspace | None:
        return self.workspaces.get(workspace_id)

    def workspace_counts(self, workspace_id: str) -> dict[str, int]:
        return {"contacts": 0, "organizations": 0, "activities": 0}

    def add_key(self, key: ApiKey) -> None:
        self.keys[key.prefix] = key

    def get_key(self, prefix: str) -> ApiKey | None:
        return self.keys.get(prefix)

    def delete_key(self, prefix: str) -> None:
        self.keys.pop(prefix, None)


class FakeRecordStore:
    def __init__(self) -> None:
        self.contacts: dict[tuple[str, str], Contact] = {}
        self.orgs: dict[tuple[str, str], Organization] = {}
        self.activities: list[Activity] = []
        self.counts: dict[str, dict[str, int]] = {}
        self.stats: dict[str, ActivityStats] = {}
        self.concurrent_writes = 0  # simulate another writer winning this many times

    def _email_owner(self, workspace_id: str, email: str | None) -> str | None:
        if not email:
            return None
        return next((c.id for (ws, _), c in self.contacts.items()
                     if ws == workspace_id and c.email and email_key(c.email) == email_key(email)),
                    None)

    def add_contact(self, contact: Contact) -> None:
        owner = self._email_owner(contact.workspace_id, contact.email)
        if owner:
            raise Conflict("taken", code="email_taken", details={"existing_id": owner})
        self.contacts[(contact.workspace_id, contact.id)] = replace(contact, version=1)

    def get_contact(self, workspace_id: str, contact_id: str) -> Contact | None:
        return self.contacts.get((workspace_id, contact_id))

    def replace_contact(self, old: Contact, new: Contact) -> None:
        if self.concurrent_writes:
            self.concurrent_writes -= 1
            stored = self.contacts[(old.workspace_id, old.id)]
            self.contacts[(old.workspace_id, old.id)] = replace(stored, version=stored.version + 1)
        if self.contacts[(old.workspace_id, old.id)].version != old.version:
            raise StaleVersion()
        owner = self._email_owner(new.workspace_id, new.email)
        if owner and owner != new.id:
            raise Conflict("taken", code="email_taken", details={"existing_id": owner})
        self.contacts[(new.workspace_id, new.id)] = replace(new, version=old.version + 1)

    def delete_contact(self, contact: Contact) -> None:
        del self.contacts[(contact.workspace_id, contact.id)]

    def add_organization(self, org: Organization) -> None:
        self.orgs[(org.workspace_id, org.id)] = replace(org, version=1)

    def get_organization(self, workspace_id: str, org_id: str) -> Organization | None:
        return self.orgs.get((workspace_id, org_id))

    def replace_organization(self, old: Organization, new: Organization) -> None:
        self.orgs[(new.workspace_id, new.id)] = replace(new, version=old.version + 1)

    def delete_organization(self, org: Organization) -> None:
        del self.orgs[(org.workspace_id, org.id)]

    def add_activities(self, activities: list[Activity]) -> None:
        self.activities += activities

    def list_activities(self, workspace_id: str, contact_id: str, limit: int,
                        cursor: str | None) -> Page[Activity]:
        mine = sorted((a for a in self.activities
                       if a.workspace_id == workspace_id and a.contact_id == contact_id),
                      key=lambda a: (a.occurred_at, a.id), reverse=True)
        start = int((decode_cursor(cursor) or {}).get("offset", 0))
        items = mine[start:start + limit]
        more = start + limit < len(mine)
        return Page(items, encode_cursor({"offset": start + limit}) if more else None)

    def contact_ids_of_organization(self, workspace_id: str, org_id: str) -> list[str]:
        return [c.id for (ws, _), c in self.contacts.items()
                if ws == workspace_id and c.org_id == org_id]

    def advance_last_active(self, workspace_id: str, contact_id: str, at: str) -> None:
        contact = self.contacts.get((workspace_id, contact_id))
        if contact and (contact.last_active_at is None or contact.last_active_at < at):
            self.contacts[(workspace_id, contact_id)] = replace(contact, last_active_at=at)

    def detach_from_organization(self, workspace_id: str, contact_id: str, org_id: str) -> None:
        contact = self.contacts.get((workspace_id, contact_id))
        if contact and contact.org_id == org_id:
            self.contacts[(workspace_id, contact_id)] = replace(contact, org_id=None)

    def record_activity(self, workspace_id: str, contact_id: str, type_: str,
                        source: str | None, occurred_at: str, today: str) -> None:
        self.stats.setdefault(contact_id, ActivityStats()).add(type_, source, occurred_at, today)
        self.add_counts(workspace_id, {"activities_count": 1})

    def add_counts(self, workspace_id: str, deltas: dict[str, int]) -> None:
        counts = self.counts.setdefault(workspace_id, {})
        for name, delta in deltas.items():
            counts[name] = counts.get(name, 0) + delta


class FakeMemberships:
    def segments_of(self, workspace_id: str, record_id: str) -> list[dict[str, str]]:
        return []
