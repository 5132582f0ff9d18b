"""Normalisation rules of records (pure domain)."""

from __future__ import annotations

import pytest

from chalicelib.domain.errors import InvalidInput
from chalicelib.domain.records import (
    later_timestamp,
    merge_attributes,
    new_contact,
    normalize_domain,
    normalize_email,
    normalize_tags,
    normalize_timestamp,
    patch_contact,
)


@pytest.mark.parametrize("raw, clean", [
    ("acme.com", "acme.com"), ("https://www.Acme.COM/pricing", "acme.com"),
    ("HTTP://sub.acme.co.uk:8080", "sub.acme.co.uk"), (" www.x-y.io ", "x-y.io"),
])
def test_domains_are_normalised(raw, clean):
    assert normalize_domain(raw) == clean


@pytest.mark.parametrize("raw", ["", "acme", "not a domain", "-acme.com", "acme.c0m!"])
def test_bad_domains_are_rejected_with_a_path(raw):
    with pytest.raises(InvalidInput) as caught:
        normalize_domain(raw)
    assert caught.value.details == {"path": "$.domain"}


@pytest.mark.parametrize("raw", ["", "a", "a@b", "a b@c.io", "@c.io"])
def test_bad_emails_are_rejected(raw):
    with pytest.raises(InvalidInput):
        normalize_email(raw)


def test_tags_are_trimmed_and_deduplicated_case_insensitively():
    assert normalize_tags([" Economic buyer", "economic BUYER", "Ideal persona"]) == [
        "Economic buyer", "Ideal persona"]
    with pytest.raises(InvalidInput) as caught:
        normalize_tags(["a", "  "])
    assert caught.value.details == {"path": "$.tags[1]"}


def test_timestamps_normalise_to_utc_seconds():
    assert normalize_timestamp("2026-12-04T11:00:00+01:00") == "2026-12-04T10:00:00Z"
    assert normalize_timestamp("2026-12-04T10:00:00.999Z") == "2026-12-04T10:00:00Z"
    assert normalize_timestamp("2026-12-04T10:00:00") == "2026-12-04T10:00:00Z"
    with pytest.raises(InvalidInput):
        normalize_timestamp("04/12/2026")


def test_attributes_merge_like_json_merge_patch():
    assert merge_attributes({"a": 1, "b": 2}, {"b": None, "c": {"x": 1}}) == {"a": 1,
                                                                              "c": {"x": 1}}


def test_patch_changes_only_what_is_sent():
    contact = new_contact("ws", "c1", {"name": "Ada", "title": "VP", "tags": ["x"]}, "t0")
    patched = patch_contact(contact, {"title": None, "tags": ["y", "Y"]}, "t1")
    assert (patched.name, patched.title, patched.tags, patched.updated_at) == (
        "Ada", None, ["y"], "t1")
    assert patched.created_at == "t0"


def test_last_active_only_moves_forward():
    assert later_timestamp(None, "2026-01-01T00:00:00Z") == "2026-01-01T00:00:00Z"
    assert later_timestamp("2026-02-01T00:00:00Z", "2026-01-01T00:00:00Z") == \
        "2026-02-01T00:00:00Z"
