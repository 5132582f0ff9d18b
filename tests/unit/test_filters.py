"""The filter grammar's exact semantics (SPEC section 6), on the pure domain."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.domain.activity_stats import ActivityStats
from chalicelib.domain.filters import (
    InvalidFilter,
    Moment,
    RecordView,
    compile_filter,
    explain,
    parse,
    reads,
    to_json,
)

NOW = Moment(datetime(2026, 12, 4, 10, 0, 0, tzinfo=UTC))
ADA = {
    "id": "c1", "email": "Ada@Acme.com", "name": "Ada Byers", "title": "VP Engineering",
    "tags": ["Economic buyer", "Ideal persona"], "country": "US", "city": None,
    "created_at": "2026-01-15T08:00:00Z", "last_active_at": "2026-12-01T09:00:00Z",
    "attributes": {"score": 42, "plan": "Pro", "beta": True, "seen": "2026-12-03T00:00:00Z",
                   "langs": ["Python", "Go"], "empty": None},
}
ACME = {"id": "o1", "name": "Acme", "domain": "acme.com", "tags": ["Customer"],
        "attributes": {"employee_count": 1200, "industry": "Manufacturing"}}


def check(document, record=ADA, kind="contact", org=ACME, **view):
    return compile_filter(parse(document, kind))(RecordView(record, org=org, **view), NOW)


def leaf(field, op, value=None):
    node = {"field": field, "op": op}
    if value is not None:
        node["value"] = value
    return node


# (field, op, value, expected on ADA)
PRESENT = [
    ("name", "eq", "ada byers", True), ("name", "eq", "Ada", False),
    ("name", "neq", "ADA BYERS", False), ("name", "neq", "Bob", True),
    ("country", "in", ["us", "ca"], True), ("country", "in", ["fr"], False),
    ("country", "not_in", ["US"], False), ("country", "not_in", ["fr"], True),
    ("title", "contains", "engineer", True), ("title", "contains", "sales", False),
    ("title", "not_contains", "ENGINEER", False), ("title", "not_contains", "sales", True),
    ("email", "starts_with", "ada@", True), ("email", "starts_with", "bob", False),
    ("email", "ends_with", "ACME.COM", True), ("email", "ends_with", ".org", False),
    ("name", "exists", None, True), ("name", "not_exists", None, False),
    ("tags", "has_any", ["economic BUYER", "x"], True), ("tags", "has_any", ["x"], False),
    ("tags", "has_all", ["ideal persona", "Economic buyer"], True),
    ("tags", "has_all", ["Economic buyer", "x"], False),
    ("tags", "has_none", ["x", "y"], True), ("tags", "has_none", ["IDEAL PERSONA"], False),
    ("tags", "contains", "economic buyer", True), ("tags", "not_contains", "economic", True),
    ("created_at", "eq", "2026-01-15T09:00:00+01:00", True),
    ("created_at", "neq", "2026-01-15T08:00:00Z", False),
    ("created_at", "gt", "2026-01-01T00:00:00Z", True), ("created_at", "gte",
                                                          "2026-01-15T08:00:00Z", True),
    ("created_at", "lt", "2026-01-15T08:00:00Z", False), ("created_at", "lte",
                                                           "2026-01-15T08:00:00Z", True),
    ("created_at", "between", ["2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z"], True),
    ("created_at", "between", ["2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z"], False),
    ("created_at", "before", "2026-06-01T00:00:00Z", True),
    ("created_at", "after", "2026-06-01T00:00:00Z", False),
    ("last_active_at", "within_last", {"days": 7}, True),
    ("last_active_at", "within_last", {"hours": 24}, False),
    ("last_active_at", "not_within_last", {"days": 7}, False),
    ("last_active_at", "not_within_last", {"hours": 24}, True),
    ("attributes.score", "eq", 42, True), ("attributes.score", "gt", 41.5, True),
    ("attributes.score", "between", [40, 42], True), ("attributes.score", "lt", 42, False),
    ("attributes.plan", "eq", "pro", True), ("attributes.plan", "in", ["free", "PRO"], True),
    ("attributes.beta", "eq", True, True), ("attributes.beta", "neq", False, True),
    ("attributes.seen", "after", "2026-12-01T00:00:00Z", True),
    ("attributes.seen", "within_last", {"days": 2}, True),
    ("attributes.seen", "gte", "2026-12-03T00:00:00Z", True),
    ("attributes.langs", "has_any", ["go"], True), ("attributes.langs", "contains", "python",
                                                    True),
    ("org.name", "eq", "ACME", True), ("org.domain", "ends_with", ".com", True),
    ("org.tags", "has_any", ["customer"], True),
    ("org.attributes.employee_count", "gte", 1000, True),
    ("org.attributes.industry", "starts_with", "manu", True),
]


@pytest.mark.parametrize("field, op, value, expected", PRESENT)
def test_operators_on_present_values(field, op, value, expected):
    assert check(leaf(field, op, value)) is expected


MISSING_TRUE = {"not_exists", "neq", "not_in", "not_contains", "has_none"}
ANY_FIELD_CASES = [
    ("eq", "x"), ("neq", "x"), ("in", ["x"]), ("not_in", ["x"]), ("contains", "x"),
    ("not_contains", "x"), ("starts_with", "x"), ("ends_with", "x"), ("has_any", ["x"]),
    ("has_all", ["x"]), ("has_none", ["x"]), ("gt", 1), ("gte", 1), ("lt", 1), ("lte", 1),
    ("between", [1, 2]), ("before", "2026-01-01T00:00:00Z"), ("after", "2026-01-01T00:00:00Z"),
    ("within_last", {"days": 1}), ("not_within_last", {"days": 1}), ("exists", None),
    ("not_exists", None),
]


STRING_OPS = {"eq", "neq", "in", "not_in", "contains", "not_contains", "starts_with",
              "ends_with", "exists", "not_exists"}
MISSING_CASES = [(field, op, value) for field in ("attributes.absent", "attributes.empty",
                                                   "city", "org.attributes.absent")
                 for op, value in ANY_FIELD_CASES if field != "city" or op in STRING_OPS]


@pytest.mark.parametrize("field, op, value", MISSING_CASES)
def test_missing_and_null_satisfy_only_the_negative_operators(field, op, value):
    assert check(leaf(field, op, value)) is (op in MISSING_TRUE)


def test_a_contact_without_organization_reads_org_fields_as_missing():
    assert check(leaf("org.name", "eq", "Acme"), org=None) is False
    assert check(leaf("org.name", "neq", "Acme"), org=None) is True
    assert check(leaf("org.name", "not_exists"), org=None) is True


@pytest.mark.parametrize("op, value", [
    ("eq", "42"), ("neq", "42"), ("in", ["42"]), ("not_in", ["42"]), ("contains", "4"),
    ("not_contains", "4"), ("starts_with", "4"), ("has_any", ["42"]), ("has_none", ["42"]),
    ("before", "2026-01-01T00:00:00Z"), ("within_last", {"days": 1}),
    ("not_within_last", {"days": 1}), ("gt", "2026-01-01T00:00:00Z"),
])
def test_wrongly_typed_attribute_comparisons_are_false_not_errors(op, value):
    # attributes.score is the number 42: comparing it with strings or times is false
    assert check(leaf("attributes.score", op, value)) is False
    # and `not` is plain negation of that
    assert check({"not": leaf("attributes.score", op, value)}) is True


@pytest.mark.parametrize("document, path, message", [
    ({"field": "name", "op": "equals", "value": "x"}, "$.op", "unknown operator 'equals'"),
    ({"all": [{"field": "name", "op": "eq", "value": "x"},
              {"field": "name", "op": "equals", "value": "x"}]}, "$.all[1].op", "equals"),
    ({"field": "nickname", "op": "eq", "value": "x"}, "$.field", "unknown field"),
    ({"field": "tags", "op": "has_any", "value": "vip"}, "$.value", "list"),
    ({"field": "tags", "op": "gt", "value": 3}, "$.op", "does not apply"),
    ({"field": "name", "op": "eq", "value": 3}, "$.value", "string"),
    ({"field": "created_at", "op": "gt", "value": 5}, "$.value", "timestamp"),
    ({"field": "created_at", "op": "before", "value": "yesterday"}, "$.value", "timestamp"),
    ({"field": "last_active_at", "op": "within_last", "value": {"weeks": 1}}, "$.value", "days"),
    ({"field": "last_active_at", "op": "within_last", "value": {"days": 0}}, "$.value", "days"),
    ({"field": "attributes.n", "op": "between", "value": [5, 1]}, "$.value", "low <= high"),
    ({"field": "attributes.n", "op": "between", "value": [1]}, "$.value", "[low, high]"),
    ({"field": "attributes.n", "op": "gt", "value": "abc"}, "$.value", "number"),
    ({"field": "country", "op": "in", "value": []}, "$.value", "list"),
    ({"field": "name", "op": "exists", "value": "x"}, "$.value", "no value"),
    ({"field": "name", "op": "eq", "value": "x", "extra": 1}, "$.extra", "unknown key"),
    ({"field": 3, "op": "eq", "value": "x"}, "$.field", "string"),
    ({"all": {"field": "name"}}, "$.all", "list"),
    ({"all": [], "any": []}, "$.any", "stands alone"),
    ({"not": [1]}, "$.not", "object"),
    ({}, "$", "needs one of"),
    ([], "$", "object"),
    ({"activity": {"type": "x", "days": 3}, "op": "count_gte", "value": 1}, "$.activity.days",
     "unknown key"),
    ({"activity": {"within_days": 400}, "op": "count_gte", "value": 1},
     "$.activity.within_days", "365"),
    ({"activity": {}, "op": "count_gt", "value": 1}, "$.op", "unknown operator"),
    ({"activity": {}, "op": "count_gte", "value": -1}, "$.value", ">= 0"),
    ({"segment": "", "op": "member"}, "$.segment", "segment id"),
    ({"segment": "s1", "op": "in"}, "$.op", "unknown operator"),
    ({"field": "properties.x", "op": "eq", "value": 1}, "$.field", "unknown field"),
])
def test_invalid_filters_name_the_bad_node(document, path, message):
    with pytest.raises(InvalidFilter) as caught:
        parse(document, "contact")
    assert caught.value.code == "invalid_filter"
    assert caught.value.details == {"path": path}
    assert message in caught.value.message


def test_depth_and_leaf_limits():
    deep = {"field": "name", "op": "exists"}
    for _ in range(9):
        deep = {"not": deep}
    parse(deep, "contact")  # depth 10 is fine
    with pytest.raises(InvalidFilter) as caught:
        parse({"not": deep}, "contact")
    assert caught.value.details["path"] == "$" + ".not" * 10
    parse({"any": [leaf("name", "exists")] * 200}, "contact")
    with pytest.raises(InvalidFilter) as caught:
        parse({"any": [leaf("name", "exists")] * 201}, "contact")
    assert caught.value.details["path"] == "$"


def test_empty_all_is_true_and_empty_any_is_false():
    assert check({"all": []}) is True
    assert check({"any": []}) is False


def test_kinds_have_their_own_fields():
    assert check(leaf("domain", "eq", "ACME.com"), record=ACME, kind="organization")
    with pytest.raises(InvalidFilter):
        parse(leaf("org.name", "eq", "x"), "organization")
    with pytest.raises(InvalidFilter):
        parse(leaf("email", "eq", "x"), "organization")
    activity = {"id": "a1", "type": "github.star", "source": "github",
                "occurred_at": "2026-12-01T00:00:00Z", "properties": {"repo": "segments"}}
    assert check(leaf("properties.repo", "eq", "SEGMENTS"), record=activity, kind="activity")
    with pytest.raises(InvalidFilter):
        parse({"activity": {}, "op": "count_gte", "value": 1}, "activity")


def test_activity_counts_by_type_source_and_window():
    stats = ActivityStats()
    for day, type_, source in [("2026-12-04", "github.star", "github"),
                               ("2026-12-01", "github.star", "github"),
                               ("2026-11-01", "slack.message", "slack"),
                               ("2025-01-01", "github.star", "github")]:
        stats.add(type_, source, f"{day}T10:00:00Z", "2026-12-04")

    def count(spec, op="count_gte", value=1):
        return check({"activity": spec, "op": op, "value": value}, activity=stats)

    assert count({"type": "GitHub.Star"}, "count_eq", 3)
    assert count({"type": "github.star", "within_days": 4}, "count_eq", 2)
    assert count({"type": "github.star", "within_days": 3}, "count_eq", 1)
    assert count({"type": "github.star", "within_days": 1}, "count_eq", 1)
    assert count({"source": "slack", "within_days": 30}, "count_eq", 0)
    assert count({"source": "slack", "within_days": 34}, "count_eq", 1)
    assert count({}, "count_eq", 4) and count({}, "count_lte", 4) and not count({}, "count_gte", 5)
    # no activity at all counts 0
    assert check({"activity": {}, "op": "count_eq", "value": 0}) is True
    # the window keeps a bounded number of days
    assert all(day >= "2025-12-03" for day in stats.days)


def test_segment_conditions():
    assert check({"segment": "s1", "op": "member"}, segments=frozenset({"s1"}))
    assert check({"segment": "s1", "op": "not_member"}, segments=frozenset({"s2"}))


def test_reads_lists_what_the_filter_depends_on():
    node = parse({"all": [leaf("tags", "has_any", ["x"]), {"not": leaf("org.name", "exists")},
                          {"any": [{"activity": {}, "op": "count_gte", "value": 1},
                                   {"segment": "s9", "op": "member"},
                                   leaf("attributes.plan", "eq", "pro")]}]}, "contact")
    assert reads(node) == {"tags", "org.name", "activity", "segment:s9", "attributes.plan"}


def test_explain_gives_every_conditions_result():
    node = parse({"all": [leaf("tags", "has_all", ["Economic buyer", "Ideal persona"]),
                          {"not": leaf("country", "eq", "us")}]}, "contact")
    explained = explain(node, RecordView(ADA), NOW)
    assert explained["result"] is False
    first, negation = explained["children"]
    assert first["result"] is True and first["path"] == "$.all[0]"
    assert first["actual"] == ["Economic buyer", "Ideal persona"]
    assert negation["result"] is False
    assert negation["children"][0] == {"path": "$.all[1].not",
                                       "condition": {"field": "country", "op": "eq",
                                                     "value": "us"},
                                       "result": True, "actual": "US"}


# -- properties --------------------------------------------------------------------------------

LEAVES = [leaf("tags", "has_any", ["a"]), leaf("name", "starts_with", "a"),
          leaf("attributes.n", "gt", 2), leaf("country", "not_in", ["us"]),
          leaf("last_active_at", "within_last", {"days": 3}), leaf("city", "exists")]


def filters(depth: int = 3):  # type: ignore[no-untyped-def]
    base = st.sampled_from(LEAVES)
    return st.recursive(base, lambda inner: st.one_of(
        st.builds(lambda xs: {"all": xs}, st.lists(inner, max_size=3)),
        st.builds(lambda xs: {"any": xs}, st.lists(inner, max_size=3)),
        st.builds(lambda x: {"not": x}, inner)), max_leaves=8)


records = st.fixed_dictionaries({
    "name": st.sampled_from([None, "ann", "Bob", "alice"]),
    "tags": st.lists(st.sampled_from(["a", "A", "b"]), max_size=2),
    "country": st.sampled_from([None, "US", "fr"]),
    "city": st.sampled_from([None, "Paris"]),
    "last_active_at": st.sampled_from([None, "2026-12-03T00:00:00Z", "2026-10-01T00:00:00Z",
                                       "2027-01-01T00:00:00Z"]),
    "attributes": st.fixed_dictionaries({"n": st.sampled_from([None, 1, 3, "3", True])}),
})


@settings(max_examples=300, deadline=None)
@given(filters(), filters(), records)
def test_boolean_algebra(a, b, record):
    def holds(doc):  # type: ignore[no-untyped-def]
        return check(doc, record=record)

    assert holds({"not": {"not": a}}) == holds(a)
    assert holds({"all": [a, b]}) == (holds(a) and holds(b))
    assert holds({"any": [a, b]}) == (holds(a) or holds(b))
    assert holds({"not": {"all": [a, b]}}) == holds({"any": [{"not": a}, {"not": b}]})
    assert holds({"not": {"any": [a, b]}}) == holds({"all": [{"not": a}, {"not": b}]})
    assert holds({"all": [a]}) == holds(a) == holds({"any": [a]})


@settings(max_examples=200, deadline=None)
@given(filters())
def test_filters_round_trip_through_json(document):
    node = parse(document, "contact")
    assert parse(to_json(node), "contact") == node
    assert to_json(parse(to_json(node), "contact")) == to_json(node)


def test_changed_paths_and_the_field_index():
    from chalicelib.domain.filters import FieldIndex, changed_paths

    old = {"name": "a", "tags": ["x"], "attributes": {"plan": "free", "n": 1}, "version": 1}
    new = {"name": "a", "tags": ["x", "y"], "attributes": {"plan": "pro", "n": 1}, "version": 2}
    assert changed_paths(old, new) == {"tags", "attributes.plan"}
    assert changed_paths(None, new) == {"*"}
    with_lists = {"attributes": {"langs": ["go"], "n": 1}}
    assert changed_paths(with_lists, {"attributes": {"langs": ["go", "py"], "n": 1}}) == {
        "attributes.langs"}
    assert changed_paths(with_lists, {"attributes": {"langs": ["go"]}}) == {"attributes.n"}
    index = FieldIndex({
        "by_tags": parse(leaf("tags", "has_any", ["y"]), "contact"),
        "by_plan": parse(leaf("attributes.plan", "eq", "pro"), "contact"),
        "by_n": parse(leaf("attributes.n", "gt", 0), "contact"),
        "by_org": parse(leaf("org.name", "eq", "Acme"), "contact"),
        "everyone": parse({"all": []}, "contact"),
    })
    assert index.affected(changed_paths(old, new)) == {"by_tags", "by_plan"}
    assert index.affected({"org_id"}) == {"by_org"}
    assert index.affected({"title"}) == set()
    assert index.affected({"*"}) == {"by_tags", "by_plan", "by_n", "by_org", "everyone"}
