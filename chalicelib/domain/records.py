"""Contacts, organizations and activities: value objects and the rules that shape them."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

from .errors import InvalidInput

MAX_TAGS = 100
MAX_ATTRIBUTES = 200
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


# -- time ------------------------------------------------------------------------------------

def format_timestamp(moment: datetime) -> str:
    """ISO 8601 UTC with second precision: one fixed width, so strings sort as times do."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_timestamp(text: str, *, path: str = "$") -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except (ValueError, AttributeError):
        raise InvalidInput(f"'{text}' is not an ISO 8601 timestamp", code="invalid_timestamp",
                           details={"path": path}) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def normalize_timestamp(text: str, *, path: str = "$") -> str:
    return format_timestamp(parse_timestamp(text, path=path))


# -- normalisation ---------------------------------------------------------------------------

def email_key(email: str) -> str:
    return email.strip().casefold()


def normalize_email(email: str, *, path: str = "$.email") -> str:
    email = email.strip()
    if not _EMAIL.match(email) or len(email) > 320:
        raise InvalidInput(f"'{email}' is not an email address", code="invalid_email",
                           details={"path": path})
    return email


def normalize_domain(domain: str, *, path: str = "$.domain") -> str:
    """`https://www.Acme.com/` -> `acme.com`: domains compare case-insensitively, scheme-free."""
    value = domain.strip().casefold()
    value = re.sub(r"^[a-z][a-z0-9+.-]*://", "", value)
    value = value.split("/", 1)[0].split(":", 1)[0]
    if value.startswith("www."):
        value = value[4:]
    if not _DOMAIN.match(value):
        raise InvalidInput(f"'{domain}' is not a domain name", code="invalid_domain",
                           details={"path": path})
    return value


def normalize_tags(tags: list[str], *, path: str = "$.tags") -> list[str]:
    """Trimmed, de-duplicated case-insensitively (the first spelling wins), order kept."""
    if len(tags) > MAX_TAGS:
        raise InvalidInput(f"at most {MAX_TAGS} tags", code="too_many_tags", details={"path": path})
    seen: set[str] = set()
    result: list[str] = []
    for index, tag in enumerate(tags):
        clean = tag.strip()
        if not clean:
            raise InvalidInput("tags cannot be empty", code="invalid_tag",
                               details={"path": f"{path}[{index}]"})
        if clean.casefold() not in seen:
            seen.add(clean.casefold())
            result.append(clean)
    return result


def check_attributes(attributes: Mapping[str, Any], *, path: str = "$.attributes") -> None:
    if len(attributes) > MAX_ATTRIBUTES:
        raise InvalidInput(f"at most {MAX_ATTRIBUTES} attributes", code="too_many_attributes",
                           details={"path": path})
    for key in attributes:
        if not key or "." in key or len(key) > 100:
            raise InvalidInput(f"attribute name '{key}' must be 1-100 characters without '.'",
                               code="invalid_attribute_name", details={"path": f"{path}.{key}"})


def merge_attributes(current: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """JSON merge patch on the top level: a null value deletes the key."""
    merged = dict(current)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


# -- value objects ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Contact:
    workspace_id: str
    id: str
    created_at: str
    updated_at: str
    email: str | None = None
    name: str | None = None
    title: str | None = None
    tags: list[str] = field(default_factory=list)
    country: str | None = None
    city: str | None = None
    org_id: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    last_active_at: str | None = None
    version: int = 0


@dataclass(frozen=True)
class Organization:
    workspace_id: str
    id: str
    name: str
    created_at: str
    updated_at: str
    domain: str | None = None
    tags: list[str] = field(default_factory=list)
    attributes: dict[str, Any] = field(default_factory=dict)
    version: int = 0


@dataclass(frozen=True)
class Activity:
    workspace_id: str
    id: str
    contact_id: str
    type: str
    occurred_at: str
    created_at: str
    source: str | None = None
    properties: dict[str, Any] = field(default_factory=dict)


CONTACT_FIELDS = ("email", "name", "title", "tags", "country", "city", "org_id", "attributes")
ORGANIZATION_FIELDS = ("name", "domain", "tags", "attributes")


def _clean_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    clean = dict(fields)
    if clean.get("email") is not None:
        clean["email"] = normalize_email(clean["email"])
    if clean.get("domain") is not None:
        clean["domain"] = normalize_domain(clean["domain"])
    if "tags" in clean:
        clean["tags"] = normalize_tags(clean["tags"] or [])
    if "attributes" in clean:
        check_attributes(clean["attributes"] or {})
    return clean


R = TypeVar("R", Contact, Organization)


def _patched(record: R, patch: Mapping[str, Any], now: str, fields: tuple[str, ...]) -> R:
    clean = _clean_fields(patch)
    if "attributes" in clean:
        clean["attributes"] = merge_attributes(record.attributes, clean["attributes"] or {})
        check_attributes(clean["attributes"])
    return replace(record, updated_at=now, **{k: v for k, v in clean.items() if k in fields})


def new_contact(workspace_id: str, contact_id: str, fields: Mapping[str, Any], now: str) -> Contact:
    return _patched(Contact(workspace_id=workspace_id, id=contact_id, created_at=now,
                            updated_at=now), fields, now, CONTACT_FIELDS)


def patch_contact(contact: Contact, patch: Mapping[str, Any], now: str) -> Contact:
    return _patched(contact, patch, now, CONTACT_FIELDS)


def new_organization(workspace_id: str, org_id: str, fields: Mapping[str, Any],
                     now: str) -> Organization:
    return patch_organization(Organization(workspace_id=workspace_id, id=org_id, name="",
                                           created_at=now, updated_at=now), fields, now)


def patch_organization(org: Organization, patch: Mapping[str, Any], now: str) -> Organization:
    patched = _patched(org, patch, now, ORGANIZATION_FIELDS)
    if not patched.name:
        raise InvalidInput("an organization needs a name", code="invalid_name",
                           details={"path": "$.name"})
    return patched


def later_timestamp(current: str | None, candidate: str) -> str:
    """`last_active_at` only moves forward, whatever order activities arrive in."""
    return candidate if current is None or candidate > current else current
