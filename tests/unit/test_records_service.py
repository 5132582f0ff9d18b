"""RecordsService and the stream's change handling, on in-memory fakes."""

from __future__ import annotations

import pytest

from chalicelib.domain.errors import Conflict, InvalidInput, NotFound
from chalicelib.services.changes import RecordChange, apply_change
from chalicelib.services.records import RecordsService
from tests.unit.fakes import FakeMemberships, FakeRecordStore

NOW = "2026-12-04T10:00:00Z"


@pytest.fixture
def store() -> FakeRecordStore:
    return FakeRecordStore()


@pytest.fixture
def service(store) -> RecordsService:
    return RecordsService(store, FakeMemberships(), lambda: NOW)


def test_duplicate_email_is_a_conflict_naming_the_existing_contact(service):
    first = service.create_contact("ws", {"email": "a@x.io"})
    with pytest.raises(Conflict) as caught:
        service.create_contact("ws", {"email": "A@X.io"})
    assert caught.value.details == {"existing_id": first.id}


def test_update_retries_when_another_writer_wins(service, store):
    contact = service.create_contact("ws", {"name": "a"})
    store.concurrent_writes = 2
    assert service.update_contact("ws", contact.id, {"name": "b"}).name == "b"
    store.concurrent_writes = 10
    with pytest.raises(Conflict) as caught:
        service.update_contact("ws", contact.id, {"name": "c"})
    assert caught.value.code == "concurrent_update"


def test_contact_must_reference_an_organization_of_its_workspace(service):
    org = service.create_organization("other", {"name": "O"})
    with pytest.raises(NotFound) as caught:
        service.create_contact("ws", {"org_id": org.id})
    assert caught.value.details == {"path": "$.org_id"}


def test_activities_are_all_or_nothing(service, store):
    contact = service.create_contact("ws", {"name": "a"})
    with pytest.raises(NotFound):
        service.add_activities("ws", [{"contact_id": contact.id, "type": "x.y"},
                                      {"contact_id": "nobody", "type": "x.y"}])
    with pytest.raises(InvalidInput):
        service.add_activities("ws", [])
    assert store.activities == []
    added = service.add_activities("ws", [{"contact_id": contact.id, "type": "github.star"}])
    assert added[0].source == "github" and added[0].occurred_at == NOW


def test_changes_keep_counts_last_active_and_detach_contacts(service, store):
    org = service.create_organization("ws", {"name": "O"})
    contact = service.create_contact("ws", {"name": "a", "org_id": org.id})
    today = "2026-12-04"
    apply_change(RecordChange("insert", "contact", "ws", {"id": contact.id}, None), store, today)
    for occurred_at in ("2026-12-01T00:00:00Z", "2026-11-01T00:00:00Z"):
        apply_change(RecordChange("insert", "activity", "ws", {
            "contact_id": contact.id, "occurred_at": occurred_at, "type": "github.star",
            "source": "github"}, None), store, today)
    apply_change(RecordChange("modify", "contact", "ws", {"id": contact.id}, {}), store, today)
    apply_change(RecordChange("remove", "organization", "ws", None, {"id": org.id}), store, today)
    assert store.counts["ws"] == {"contacts_count": 1, "activities_count": 2,
                                  "organizations_count": -1}
    assert store.stats[contact.id].count("github.star", None, 7, "2026-12-04") == 1
    stored = store.get_contact("ws", contact.id)
    assert stored.last_active_at == "2026-12-01T00:00:00Z" and stored.org_id is None
