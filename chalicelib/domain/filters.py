"""The filter grammar (SPEC section 6): one grammar for explorers, previews and segment rules.

    parse(document, kind)    -> an immutable tree, or InvalidFilter naming the bad node's path
    compile_filter(node)     -> a predicate over a RecordView at a Moment
    reads(node)              -> what the filter reads (fields, activity, segments): the field index
    explain(node, view, at)  -> every condition's result, for "why is this record in or out"
    to_json(node)            -> the document again (parse(to_json(n)) == n)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import Enum
from functools import lru_cache
from typing import Any, Protocol

from .errors import InvalidInput

MAX_DEPTH = 10
MAX_LEAVES = 200
MAX_LIST_VALUES = 1000
MAX_WINDOW_DAYS = 365


class InvalidFilter(InvalidInput):
    code = "invalid_filter"

    def __init__(self, message: str, path: str) -> None:
        super().__init__(message, details={"path": path})


class FieldType(Enum):
    STRING = "string"
    STRINGS = "strings"      # tags: a list of strings
    TIMESTAMP = "timestamp"  # ISO 8601 UTC, stored as YYYY-MM-DDTHH:MM:SSZ
    ANY = "any"              # attributes.* / properties.*: whatever JSON holds


S, L, T = FieldType.STRING, FieldType.STRINGS, FieldType.TIMESTAMP
ORGANIZATION_FIELDS = {"id": S, "name": S, "domain": S, "tags": L, "created_at": T,
                       "updated_at": T}
CONTACT_FIELDS = {"id": S, "email": S, "name": S, "title": S, "tags": L, "country": S, "city": S,
                  "org_id": S, "created_at": T, "updated_at": T, "last_active_at": T}
ACTIVITY_FIELDS = {"id": S, "contact_id": S, "type": S, "source": S, "occurred_at": T,
                   "created_at": T}
KINDS = ("contact", "organization", "activity")

STRING_OPS = {"eq", "neq", "in", "not_in", "contains", "not_contains", "starts_with",
              "ends_with", "exists", "not_exists"}
LIST_OPS = {"has_any", "has_all", "has_none", "contains", "not_contains", "exists", "not_exists"}
TIME_OPS = {"eq", "neq", "gt", "gte", "lt", "lte", "between", "before", "after", "within_last",
            "not_within_last", "exists", "not_exists"}
ALL_OPS = STRING_OPS | LIST_OPS | TIME_OPS
OPS_BY_TYPE = {S: STRING_OPS, L: LIST_OPS, T: TIME_OPS, FieldType.ANY: ALL_OPS}
# a missing or null value satisfies only these
MISSING_TRUE = frozenset({"not_exists", "neq", "not_in", "not_contains", "has_none"})
ACTIVITY_OPS = {"count_gte", "count_lte", "count_eq"}
SEGMENT_OPS = {"member", "not_member"}


# -- the tree --------------------------------------------------------------------------------

@dataclass(frozen=True)
class All:
    children: tuple[Node, ...]


@dataclass(frozen=True)
class AnyOf:
    children: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    child: Node


@dataclass(frozen=True)
class FieldLeaf:
    path: str
    op: str
    value: Any = None
    type: FieldType = field(default=FieldType.ANY, compare=False)

    def __hash__(self) -> int:  # values may be lists
        return hash((self.path, self.op, repr(self.value)))


@dataclass(frozen=True)
class ActivityLeaf:
    op: str
    value: int
    type: str | None = None
    source: str | None = None
    within_days: int | None = None


@dataclass(frozen=True)
class SegmentLeaf:
    segment_id: str
    op: str


Node = All | AnyOf | Not | FieldLeaf | ActivityLeaf | SegmentLeaf


# -- parsing and validation ------------------------------------------------------------------

def field_type(path: str, kind: str) -> FieldType | None:
    """The type of a field path for a kind of record, or None when there is no such field."""
    if kind == "contact":
        if path.startswith("org."):
            rest = path[4:]
            if rest.startswith("attributes.") and len(rest) > 11:
                return FieldType.ANY
            return ORGANIZATION_FIELDS.get(rest)
        known = CONTACT_FIELDS
    elif kind == "organization":
        known = ORGANIZATION_FIELDS
    else:
        if path.startswith("properties.") and len(path) > 11:
            return FieldType.ANY
        return ACTIVITY_FIELDS.get(path)
    if path.startswith("attributes.") and len(path) > 11:
        return FieldType.ANY
    return known.get(path)


def parse(document: Any, kind: str) -> Node:
    """Validate a FILTER document for `kind` records; raises InvalidFilter naming the bad node."""
    if kind not in KINDS:
        raise InvalidFilter(f"unknown record kind '{kind}'", "$")
    leaves = [0]
    node = _parse(document, kind, "$", 1, leaves)
    if leaves[0] > MAX_LEAVES:
        raise InvalidFilter(f"the filter has {leaves[0]} conditions; the limit is {MAX_LEAVES}",
                            "$")
    return node


def _parse(doc: Any, kind: str, path: str, depth: int, leaves: list[int]) -> Node:
    if depth > MAX_DEPTH:
        raise InvalidFilter(f"the filter nests deeper than {MAX_DEPTH} levels", path)
    if not isinstance(doc, dict):
        raise InvalidFilter("a filter node must be a JSON object", path)
    combinators = [key for key in ("all", "any", "not") if key in doc]
    if combinators:
        key = combinators[0]
        extra = sorted(set(doc) - {key})
        if extra:
            raise InvalidFilter(f"'{key}' stands alone in its node; remove '{extra[0]}'",
                                f"{path}.{extra[0]}")
        if key == "not":
            return Not(_parse(doc["not"], kind, f"{path}.not", depth + 1, leaves))
        items = doc[key]
        if not isinstance(items, list):
            raise InvalidFilter(f"'{key}' takes a list of filters", f"{path}.{key}")
        children = tuple(_parse(item, kind, f"{path}.{key}[{i}]", depth + 1, leaves)
                         for i, item in enumerate(items))
        return All(children) if key == "all" else AnyOf(children)
    leaves[0] += 1
    if "activity" in doc:
        return _parse_activity(doc, kind, path)
    if "segment" in doc:
        return _parse_segment(doc, path)
    if "field" in doc:
        return _parse_field(doc, kind, path)
    raise InvalidFilter("a filter node needs one of 'all', 'any', 'not', 'field', 'activity', "
                        "'segment'", path)


def _only_keys(doc: dict[str, Any], allowed: set[str], path: str) -> None:
    for key in doc:
        if key not in allowed:
            raise InvalidFilter(f"unknown key '{key}'", f"{path}.{key}")


def _parse_field(doc: dict[str, Any], kind: str, path: str) -> FieldLeaf:
    _only_keys(doc, {"field", "op", "value"}, path)
    name = doc["field"]
    if not isinstance(name, str):
        raise InvalidFilter("'field' must be a string", f"{path}.field")
    ftype = field_type(name, kind)
    if ftype is None:
        raise InvalidFilter(f"unknown field '{name}' for {kind} filters", f"{path}.field")
    op = doc.get("op")
    if not isinstance(op, str) or op not in ALL_OPS:
        raise InvalidFilter(f"unknown operator '{op}'", f"{path}.op")
    if op not in OPS_BY_TYPE[ftype]:
        raise InvalidFilter(f"operator '{op}' does not apply to {ftype.value} field '{name}'",
                            f"{path}.op")
    value = doc.get("value")
    _check_value(op, value, ftype, f"{path}.value")
    if op in ("exists", "not_exists"):
        value = None
    return FieldLeaf(path=name, op=op, value=value, type=ftype)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool))


def parse_time(text: Any) -> datetime | None:
    """A timestamp string as an aware UTC datetime, or None when it is not one."""
    if not isinstance(text, str) or len(text) < 10:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _check_value(op: str, value: Any, ftype: FieldType, path: str) -> None:
    def fail(expected: str) -> None:
        raise InvalidFilter(f"operator '{op}' takes {expected}", path)

    def check_scalar(item: Any) -> None:
        if ftype is S and not isinstance(item, str):
            fail("a string")
        if ftype is T and parse_time(item) is None:
            fail("an ISO 8601 timestamp")
        if ftype is FieldType.ANY and not _is_scalar(item):
            fail("a string, number or boolean")

    if op in ("exists", "not_exists"):
        if value not in (None, True):
            fail("no value")
    elif op in ("eq", "neq"):
        check_scalar(value)
    elif op in ("in", "not_in"):
        if not isinstance(value, list) or not value or len(value) > MAX_LIST_VALUES:
            fail(f"a list of 1 to {MAX_LIST_VALUES} values")
        for item in value:
            check_scalar(item)
    elif op in ("contains", "not_contains", "starts_with", "ends_with"):
        if not isinstance(value, str):
            fail("a string")
    elif op in ("has_any", "has_all", "has_none"):
        if (not isinstance(value, list) or not value or len(value) > MAX_LIST_VALUES
                or not all(isinstance(item, str) for item in value)):
            fail(f"a list of 1 to {MAX_LIST_VALUES} strings")
    elif op in ("gt", "gte", "lt", "lte"):
        _check_ordered(value, ftype, fail)
    elif op == "between":
        if not isinstance(value, list) or len(value) != 2:
            fail("[low, high]")
        for item in value:
            _check_ordered(item, ftype, fail)
        low, high = (_order_key(item) for item in value)
        if low is None or high is None or type(low) is not type(high) \
                or low > high:  # type: ignore[operator]
            fail("[low, high] of one type with low <= high")
    elif op in ("before", "after"):
        if parse_time(value) is None:
            fail("an ISO 8601 timestamp")
    elif op in ("within_last", "not_within_last") and _duration(value) is None:
        fail('{"days": N} or {"hours": N} with N > 0')


def _check_ordered(value: Any, ftype: FieldType, fail: Callable[[str], None]) -> None:
    if ftype is T and parse_time(value) is None:
        fail("an ISO 8601 timestamp")
    if ftype is FieldType.ANY and not _is_number(value) and parse_time(value) is None:
        fail("a number or an ISO 8601 timestamp")


def _order_key(value: Any) -> float | datetime | None:
    if _is_number(value):
        return float(value)
    return parse_time(value)


def _duration(value: Any) -> timedelta | None:
    if not isinstance(value, dict) or len(value) != 1:
        return None
    unit, amount = next(iter(value.items()))
    if unit not in ("days", "hours") or not _is_number(amount) or amount <= 0 \
            or amount > 100 * 365 * 24:
        return None
    return timedelta(days=amount) if unit == "days" else timedelta(hours=amount)


def _parse_activity(doc: dict[str, Any], kind: str, path: str) -> ActivityLeaf:
    _only_keys(doc, {"activity", "op", "value"}, path)
    if kind == "activity":
        raise InvalidFilter("activity counts apply to contact and organization filters",
                            f"{path}.activity")
    spec = doc["activity"]
    if not isinstance(spec, dict):
        raise InvalidFilter("'activity' takes an object {type?, source?, within_days?}",
                            f"{path}.activity")
    _only_keys(spec, {"type", "source", "within_days"}, f"{path}.activity")
    for key in ("type", "source"):
        if key in spec and spec[key] is not None and (
                not isinstance(spec[key], str) or not spec[key]):
            raise InvalidFilter(f"'{key}' must be a non-empty string", f"{path}.activity.{key}")
    days = spec.get("within_days")
    if days is not None and (not isinstance(days, int) or isinstance(days, bool)
                             or not 1 <= days <= MAX_WINDOW_DAYS):
        raise InvalidFilter(f"'within_days' must be a whole number from 1 to {MAX_WINDOW_DAYS}",
                            f"{path}.activity.within_days")
    op = doc.get("op")
    if op not in ACTIVITY_OPS:
        raise InvalidFilter(f"unknown operator '{op}' for an activity count", f"{path}.op")
    value = doc.get("value")
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvalidFilter("an activity count takes a whole number >= 0", f"{path}.value")
    return ActivityLeaf(op=op, value=value, type=spec.get("type"), source=spec.get("source"),
                        within_days=days)


def _parse_segment(doc: dict[str, Any], path: str) -> SegmentLeaf:
    _only_keys(doc, {"segment", "op"}, path)
    segment_id = doc["segment"]
    if not isinstance(segment_id, str) or not segment_id:
        raise InvalidFilter("'segment' takes a segment id", f"{path}.segment")
    op = doc.get("op")
    if op not in SEGMENT_OPS:
        raise InvalidFilter(f"unknown operator '{op}' for a segment condition", f"{path}.op")
    return SegmentLeaf(segment_id=segment_id, op=op)


def to_json(node: Node) -> dict[str, Any]:
    if isinstance(node, All):
        return {"all": [to_json(child) for child in node.children]}
    if isinstance(node, AnyOf):
        return {"any": [to_json(child) for child in node.children]}
    if isinstance(node, Not):
        return {"not": to_json(node.child)}
    if isinstance(node, FieldLeaf):
        document = {"field": node.path, "op": node.op}
        if node.value is not None:
            document["value"] = node.value
        return document
    if isinstance(node, ActivityLeaf):
        spec = {key: value for key, value in (("type", node.type), ("source", node.source),
                                              ("within_days", node.within_days))
                if value is not None}
        return {"activity": spec, "op": node.op, "value": node.value}
    return {"segment": node.segment_id, "op": node.op}


# -- what a filter reads ---------------------------------------------------------------------

ACTIVITY_READ = "activity"


def reads(node: Node) -> frozenset[str]:
    """Field paths the filter reads ("tags", "attributes.plan", "org.name", ...), plus
    "activity" for activity counts and "segment:<id>" for segment conditions."""
    if isinstance(node, (All, AnyOf)):
        return frozenset().union(*(reads(child) for child in node.children))
    if isinstance(node, Not):
        return reads(node.child)
    if isinstance(node, FieldLeaf):
        return frozenset({node.path})
    if isinstance(node, ActivityLeaf):
        return frozenset({ACTIVITY_READ})
    return frozenset({f"segment:{node.segment_id}"})


def segment_references(node: Node) -> frozenset[str]:
    return frozenset(r.split(":", 1)[1] for r in reads(node) if r.startswith("segment:"))


# -- evaluation ------------------------------------------------------------------------------

class ActivityCounts(Protocol):
    def count(self, type: str | None, source: str | None, within_days: int | None,
              today: str) -> int: ...


@dataclass(frozen=True)
class RecordView:
    """What a filter sees of one record: its fields, its organization (for a contact), its
    activity counts and the segments it is in."""

    record: Mapping[str, Any]
    org: Mapping[str, Any] | None = None
    activity: ActivityCounts | None = None
    segments: frozenset[str] = frozenset()


class Moment:
    """'Now' for time-relative conditions, injected so evaluation is repeatable."""

    def __init__(self, now: datetime) -> None:
        self.now = now.astimezone(UTC)
        self.text = self.now.strftime("%Y-%m-%dT%H:%M:%SZ")
        self.today = self.text[:10]
        self._since: dict[timedelta, str] = {}

    def since(self, duration: timedelta) -> str:
        if duration not in self._since:
            self._since[duration] = (self.now - duration).strftime("%Y-%m-%dT%H:%M:%SZ")
        return self._since[duration]


Predicate = Callable[[RecordView, Moment], bool]
Getter = Callable[[RecordView], Any]


def _getter(path: str) -> Getter:
    if path.startswith("org."):
        inner = _getter(path[4:])
        return lambda view: inner(RecordView(view.org)) if view.org is not None else None
    if path.startswith(("attributes.", "properties.")):
        container, key = path.split(".", 1)
        return lambda view: (view.record.get(container) or {}).get(key)
    return lambda view: view.record.get(path)


def _fold(value: Any) -> Any:
    return value.casefold() if isinstance(value, str) else value


def _kind_of(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if _is_number(value):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    return "other"


def compile_filter(node: Node) -> Predicate:
    """A fast predicate: the tree is walked once, here, not on every record."""
    if isinstance(node, All):
        return _conjunction([compile_filter(child) for child in node.children])
    if isinstance(node, AnyOf):
        return _disjunction([compile_filter(child) for child in node.children])
    if isinstance(node, Not):
        inner = compile_filter(node.child)
        return lambda view, at: not inner(view, at)
    if isinstance(node, ActivityLeaf):
        return _compile_activity(node)
    if isinstance(node, SegmentLeaf):
        wanted = node.op == "member"
        segment_id = node.segment_id
        return lambda view, at: (segment_id in view.segments) == wanted
    return _compile_field(node)


def _conjunction(parts: list[Predicate]) -> Predicate:
    # small fixed arities as plain `and` chains: no generator per record
    if not parts:
        return lambda view, at: True
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2:
        a, b = parts
        return lambda view, at: a(view, at) and b(view, at)
    if len(parts) == 3:
        a, b, c = parts
        return lambda view, at: a(view, at) and b(view, at) and c(view, at)

    def every(view: RecordView, at: Moment) -> bool:
        for part in parts:  # noqa: SIM110 - a loop is faster than all(<generator>) here
            if not part(view, at):
                return False
        return True

    return every


def _disjunction(parts: list[Predicate]) -> Predicate:
    if not parts:
        return lambda view, at: False
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2:
        a, b = parts
        return lambda view, at: a(view, at) or b(view, at)

    def some(view: RecordView, at: Moment) -> bool:
        for part in parts:  # noqa: SIM110 - a loop is faster than any(<generator>) here
            if part(view, at):
                return True
        return False

    return some


def _compile_activity(node: ActivityLeaf) -> Predicate:
    compare: Callable[[int], bool] = {
        "count_gte": lambda n: n >= node.value, "count_lte": lambda n: n <= node.value,
        "count_eq": lambda n: n == node.value}[node.op]

    def predicate(view: RecordView, at: Moment) -> bool:
        count = (view.activity.count(node.type, node.source, node.within_days, at.today)
                 if view.activity is not None else 0)
        return compare(count)

    return predicate


def _compile_field(leaf: FieldLeaf) -> Predicate:
    test = _value_test(leaf)
    when_missing = leaf.op in MISSING_TRUE
    path = leaf.path
    # the common shapes read the record directly; `org.` paths go through a getter
    if "." not in path:
        def top_level(view: RecordView, at: Moment) -> bool:
            actual = view.record.get(path)
            if actual is None or actual == []:
                return when_missing
            return test(actual, at)

        return top_level
    if path.startswith(("attributes.", "properties.")):
        container, key = path.split(".", 1)

        def nested(view: RecordView, at: Moment) -> bool:
            actual = (view.record.get(container) or _EMPTY).get(key)
            if actual is None or actual == []:
                return when_missing
            return test(actual, at)

        return nested
    get = _getter(path)

    def through_getter(view: RecordView, at: Moment) -> bool:
        actual = get(view)
        if actual is None or actual == []:
            return when_missing
        return test(actual, at)

    return through_getter


_EMPTY: Mapping[str, Any] = {}


def _value_test(leaf: FieldLeaf) -> Callable[[Any, Moment], bool]:
    """The test for a present value. Values of another type than the condition's are false
    for every operator (attributes.*); known fields were type-checked by parse()."""
    op, value = leaf.op, leaf.value
    if op == "exists":
        return lambda actual, at: True
    if op == "not_exists":
        return lambda actual, at: False
    if leaf.type is FieldType.TIMESTAMP or (
            leaf.type is FieldType.ANY and op in ("before", "after", "within_last",
                                                  "not_within_last")):
        return _time_test(op, value, stored_format=leaf.type is FieldType.TIMESTAMP)
    if op in ("eq", "neq", "in", "not_in") and leaf.type is FieldType.STRING:
        choices = frozenset(item.casefold() for item in ([value] if op in ("eq", "neq")
                                                         else value))
        if op in ("eq", "in"):
            return lambda actual, at: actual.casefold() in choices
        return lambda actual, at: actual.casefold() not in choices
    if op in ("eq", "neq", "in", "not_in"):
        options = [value] if op in ("eq", "neq") else list(value)
        by_kind: dict[str, set[Any]] = {}
        for option in options:
            by_kind.setdefault(_kind_of(option), set()).add(_fold(option))
        positive = op in ("eq", "in")

        def equality(actual: Any, at: Moment) -> bool:
            same_kind = by_kind.get(_kind_of(actual))
            if same_kind is None:
                return False  # type mismatch
            return (_fold(actual) in same_kind) == positive

        return equality
    if op in ("contains", "not_contains"):
        needle = value.casefold()
        positive = op == "contains"

        def contains(actual: Any, at: Moment) -> bool:
            if isinstance(actual, str):
                return (needle in actual.casefold()) == positive
            if isinstance(actual, list):
                return any(_fold(item) == needle for item in actual) == positive
            return False

        return contains
    if op in ("starts_with", "ends_with"):
        affix = value.casefold()
        if op == "starts_with":
            return lambda actual, at: isinstance(actual, str) and actual.casefold().startswith(
                affix)
        return lambda actual, at: isinstance(actual, str) and actual.casefold().endswith(affix)
    if op in ("has_any", "has_all", "has_none"):
        wanted = frozenset(item.casefold() for item in value)

        def elements(actual: Any) -> set[Any] | None:
            if not isinstance(actual, list):
                return None
            return {item.casefold() if isinstance(item, str) else item for item in actual}

        if op == "has_any":
            return lambda actual, at: (e := elements(actual)) is not None \
                and not wanted.isdisjoint(e)
        if op == "has_all":
            return lambda actual, at: (e := elements(actual)) is not None and wanted <= e
        return lambda actual, at: (e := elements(actual)) is not None and wanted.isdisjoint(e)
    return _order_test(op, value)


def _order_test(op: str, value: Any) -> Callable[[Any, Moment], bool]:
    """gt/gte/lt/lte/between on attributes: numbers with numbers, timestamps with timestamps."""
    bounds = [_order_key(item) for item in (value if op == "between" else [value])]
    if isinstance(bounds[0], float):
        low, high = bounds[0], bounds[-1]
        number = (int, float)
        compare: Callable[[Any], bool] = {
            "gt": lambda x: x > low, "gte": lambda x: x >= low, "lt": lambda x: x < low,
            "lte": lambda x: x <= low, "between": lambda x: low <= x <= high}[op]
        # type() rather than isinstance: True is an int, but not a number here
        return lambda actual, at: type(actual) in number and compare(actual)

    def ordered(actual: Any, at: Moment) -> bool:
        key = float(actual) if _is_number(actual) else parse_time(actual)
        if key is None or type(key) is not type(bounds[0]):
            return False
        low = bounds[0]
        if op == "gt":
            return key > low  # type: ignore[operator]
        if op == "gte":
            return key >= low  # type: ignore[operator]
        if op == "lt":
            return key < low  # type: ignore[operator]
        if op == "lte":
            return key <= low  # type: ignore[operator]
        return low <= key <= bounds[1]  # type: ignore[operator]

    return ordered


@lru_cache(maxsize=4096)
def _stored_time(text: str) -> str:
    return text if len(text) == 20 and text.endswith("Z") else _format(parse_time(text))


def _format(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else ""


def _time_test(op: str, value: Any, *, stored_format: bool) -> Callable[[Any, Moment], bool]:
    """Timestamps compare as fixed-width UTC strings (the stored format), so no parsing per
    record for known fields; attributes.* values are normalised first (false if not a time)."""

    def normal(actual: Any) -> str | None:
        if stored_format:
            return actual if isinstance(actual, str) else None
        if not isinstance(actual, str):
            return None
        parsed = parse_time(actual)
        return _format(parsed) if parsed else None

    if op in ("within_last", "not_within_last"):
        duration = _duration(value)
        assert duration is not None
        negate = op == "not_within_last"

        def recent(actual: Any, at: Moment) -> bool:
            text = normal(actual)
            if text is None:
                return False
            inside = at.since(duration) <= text <= at.text
            return inside != negate

        return recent
    if op == "between":
        low, high = (_stored_time(item) for item in value)
        return lambda actual, at: (t := normal(actual)) is not None and low <= t <= high
    bound = _stored_time(value)
    compare: Callable[[str], bool] = {
        "eq": lambda t: t == bound, "neq": lambda t: t != bound,
        "gt": lambda t: t > bound, "after": lambda t: t > bound,
        "gte": lambda t: t >= bound, "lt": lambda t: t < bound,
        "before": lambda t: t < bound, "lte": lambda t: t <= bound}[op]
    return lambda actual, at: (t := normal(actual)) is not None and compare(t)


# -- explanations ----------------------------------------------------------------------------

def explain(node: Node, view: RecordView, at: Moment, path: str = "$") -> dict[str, Any]:
    """The result of every condition for one record, mirroring the filter's shape."""
    if isinstance(node, (All, AnyOf)):
        key = "all" if isinstance(node, All) else "any"
        children = [explain(child, view, at, f"{path}.{key}[{i}]")
                    for i, child in enumerate(node.children)]
        results = [child["result"] for child in children]
        return {"path": path, "op": key, "result": all(results) if key == "all" else any(results),
                "children": children}
    if isinstance(node, Not):
        child = explain(node.child, view, at, f"{path}.not")
        return {"path": path, "op": "not", "result": not child["result"], "children": [child]}
    result = compile_filter(node)(view, at)
    described: dict[str, Any] = {"path": path, "condition": to_json(node), "result": result}
    if isinstance(node, FieldLeaf):
        described["actual"] = _getter(node.path)(view)
    elif isinstance(node, ActivityLeaf):
        described["actual"] = (view.activity.count(node.type, node.source, node.within_days,
                                                   at.today) if view.activity else 0)
    else:
        described["actual"] = node.segment_id in view.segments
    return described


# -- the field index -------------------------------------------------------------------------

_BOOKKEEPING = frozenset({"pk", "sk", "kind", "version", "org_key", "ws_key", "workspace_id"})


def changed_paths(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> set[str]:
    """Field paths that differ between two versions of a record (attributes per key).
    A record that appears or disappears changes everything: answered as {"*"}."""
    if old is None or new is None:
        return {"*"}
    changed = set()
    for key in set(old) | set(new):
        if key in _BOOKKEEPING or old.get(key) == new.get(key):
            continue
        if key in ("attributes", "properties"):
            before, after = old.get(key) or {}, new.get(key) or {}
            try:  # set algebra on (name, value) pairs runs in C
                names = {name for name, _ in before.items() ^ after.items()}
            except TypeError:  # unhashable values (lists, maps): compare one by one
                names = {name for name in set(before) | set(after)
                         if before.get(name) != after.get(name)}
            changed |= {f"{key}.{name}" for name in names}
        else:
            changed.add(key)
    return changed


class FieldIndex:
    """Which filters read which fields: a change re-checks only the filters it can affect."""

    def __init__(self, filters: Mapping[str, Node]) -> None:
        self._all = frozenset(filters)
        self._by_path: dict[str, set[str]] = {}
        self._org_readers: set[str] = set()
        for filter_id, node in filters.items():
            for path in reads(node):
                self._by_path.setdefault(path, set()).add(filter_id)
                if path.startswith("org."):
                    self._org_readers.add(filter_id)

    def affected(self, changed: set[str]) -> set[str]:
        """Filters whose result may differ after a change to `changed` ("*": any field;
        "org_id" or "org.*": the contact's organization, so every `org.` reader)."""
        if "*" in changed:
            return set(self._all)
        found: set[str] = set()
        for path in changed:
            found |= self._by_path.get(path, set())
            if path in ("org_id", "org.*"):
                found |= self._org_readers
        return found
