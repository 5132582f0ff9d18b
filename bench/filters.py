"""The filter engine, measured against baselines in the same run:

1. compiled predicate throughput vs a hand-written Python lambda for the same condition;
2. 1,000 segment filters, one changed field: re-check through the field index vs all filters;
3. preview over 50,000 contacts vs a raw scan (the same DynamoDB queries, nothing else).
"""

from __future__ import annotations

import os
import random
import statistics
from datetime import UTC, datetime

from bench.common import fresh_dynamodb, raw_scan, report, seed_contacts, timed
from chalicelib.domain.filters import (
    FieldIndex,
    Moment,
    RecordView,
    changed_paths,
    compile_filter,
    parse,
)

CONDITION = {"all": [
    {"field": "tags", "op": "has_all", "value": ["Economic buyer", "Ideal persona"]},
    {"field": "country", "op": "in", "value": ["us", "ca"]},
    {"field": "attributes.employee_count", "op": "gte", "value": 100},
]}
WANTED_TAGS = {"economic buyer", "ideal persona"}
COUNTRIES = {"us", "ca"}


def hand_written(record: dict) -> bool:
    tags = {tag.casefold() for tag in record.get("tags") or []}
    country = record.get("country")
    count = (record.get("attributes") or {}).get("employee_count")
    return (tags >= WANTED_TAGS and isinstance(country, str) and country.casefold() in COUNTRIES
            and isinstance(count, (int, float)) and not isinstance(count, bool) and count >= 100)


def synthetic_contacts(n: int, seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    tags = ["Economic buyer", "Ideal persona", "economic BUYER", "Champion", "Ideal"]
    return [{"id": f"c{i:06d}", "name": f"P{i}", "title": rng.choice(["CTO", "VP", None]),
             "tags": rng.sample(tags, rng.randint(0, 3)),
             "country": rng.choice(["US", "ca", "FR", None]),
             "attributes": {"employee_count": rng.choice([5, 50, 500, 5000, "n/a"])}}
            for i in range(n)]


def predicate_throughput(records: list[dict], rounds: int) -> dict[str, float]:
    predicate = compile_filter(parse(CONDITION, "contact"))
    at = Moment(datetime.now(UTC))
    views = [RecordView(record) for record in records]
    assert [predicate(v, at) for v in views] == [hand_written(r) for r in records]
    compiled = statistics.median(timed(lambda: [predicate(v, at) for v in views])
                                 for _ in range(rounds))
    lam = statistics.median(timed(lambda: [hand_written(v.record) for v in views])
                            for _ in range(rounds))
    return {"compiled_per_s": len(views) / compiled, "lambda_per_s": len(views) / lam,
            "speed_ratio": lam / compiled}


# A workspace's vocabulary: the contact fields, a few organization fields and 100 custom
# attributes (CRMs carry hundreds of custom fields; filters spread over them).
ATTRIBUTES = 100
FIELDS = ["name", "title", "country", "city", "email", "tags", "created_at"] + [
    f"attributes.a{i}" for i in range(ATTRIBUTES)] + ["org.name", "org.attributes.size"]


def random_filter(rng: random.Random) -> dict:
    fields = FIELDS
    leaves = []
    for _ in range(rng.randint(1, 4)):
        name = rng.choice(fields)
        if name == "tags":
            leaves.append({"field": name, "op": "has_any", "value": [f"t{rng.randint(0, 50)}"]})
        elif name == "created_at":
            leaves.append({"field": name, "op": "within_last", "value": {"days": 30}})
        else:
            leaves.append({"field": name, "op": "eq", "value": f"v{rng.randint(0, 9)}"})
    return {"all": leaves}


def field_index_gain(rounds: int) -> dict[str, float]:
    """For each attribute in turn, one change to it: the index's cost (diff, lookup,
    re-checking the affected filters) vs evaluating every filter. Median over the changes."""
    rng = random.Random(11)
    nodes = {f"s{i}": parse(random_filter(rng), "contact") for i in range(1000)}
    predicates = {sid: compile_filter(node) for sid, node in nodes.items()}
    index = FieldIndex(nodes)
    old = {"id": "c1", "name": "v1", "title": "v2", "tags": ["t1"], "country": "v3",
           "created_at": "2026-12-01T00:00:00Z",
           "attributes": {f"a{i}": f"v{i % 10}" for i in range(ATTRIBUTES)}}
    at = Moment(datetime.now(UTC))
    repeat = 50
    gains, affected, indexed_costs, all_costs = [], [], [], []
    for attribute in range(0, ATTRIBUTES, 5):
        new = {**old, "attributes": {**old["attributes"], f"a{attribute}": "changed"}}
        view = RecordView(new, org={"name": "v1", "attributes": {"size": "v2"}})

        def with_index() -> list[bool]:
            return [predicates[sid](view, at)  # noqa: B023 - measured right here
                    for sid in index.affected(changed_paths(old, new))]  # noqa: B023

        def all_filters() -> list[bool]:
            return [predicate(view, at) for predicate in predicates.values()]  # noqa: B023

        indexed = statistics.median(timed(lambda: [with_index() for _ in range(repeat)])
                                    for _ in range(rounds)) / repeat
        everything = statistics.median(timed(lambda: [all_filters() for _ in range(repeat)])
                                       for _ in range(rounds)) / repeat
        affected.append(len(index.affected(changed_paths(old, new))))
        indexed_costs.append(indexed * 1e6)
        all_costs.append(everything * 1e6)
        gains.append(everything / indexed)
    return {"changes": float(len(gains)), "affected": statistics.median(affected),
            "indexed_us": statistics.median(indexed_costs),
            "all_us": statistics.median(all_costs), "gain": statistics.median(gains),
            "gain_min": min(gains)}


def preview_vs_raw_scan(n: int, rounds: int) -> dict[str, float]:
    with fresh_dynamodb() as settings:
        from chalicelib.persistence.repositories import DynamoMembershipReader, DynamoRecordStore
        from chalicelib.services.search import SearchService

        workspace = "ws_bench"
        seeded = seed_contacts(workspace, synthetic_contacts(n))
        service = SearchService(DynamoRecordStore(), DynamoMembershipReader(),
                                lambda: datetime.now(UTC))
        assert len(raw_scan(settings, workspace)) == n
        result = service.preview(workspace, "contact", CONDITION, 10)
        preview_times, raw_times = [], []
        for _ in range(rounds):
            preview_times.append(timed(lambda: service.preview(workspace, "contact",
                                                               CONDITION, 10)))
            raw_times.append(timed(lambda: raw_scan(settings, workspace)))
    preview, raw = statistics.median(preview_times), statistics.median(raw_times)
    return {"n": float(n), "matches": float(result.count), "seed_s": seeded,
            "preview_s": preview, "raw_s": raw, "ratio": preview / raw}


def run() -> dict[str, float]:
    rounds = int(os.environ.get("BENCH_ROUNDS", "5"))
    throughput = predicate_throughput(synthetic_contacts(100_000), rounds)
    report("compiled filter vs hand-written lambda (100,000 records)", [
        ("compiled predicate", f"{throughput['compiled_per_s']:,.0f} records/s"),
        ("hand-written lambda", f"{throughput['lambda_per_s']:,.0f} records/s"),
        ("compiled speed / lambda speed", f"{throughput['speed_ratio']:.2f}x (goal >= 0.5x)"),
    ])
    gain = field_index_gain(rounds)
    report(f"1,000 segment filters, one changed field ({gain['changes']:.0f} fields in turn, "
           "median)", [
        ("filters the index re-checks", f"{gain['affected']:.0f} of 1,000"),
        ("with the field index", f"{gain['indexed_us']:.1f} us per change"),
        ("evaluating all filters", f"{gain['all_us']:.1f} us per change"),
        ("cost ratio all / indexed", f"{gain['gain']:.0f}x less, worst field "
                                     f"{gain['gain_min']:.0f}x (goal >= 20x)"),
    ])
    n = int(os.environ.get("BENCH_PREVIEW_N", "50000"))
    preview = preview_vs_raw_scan(n, max(3, rounds // 2))
    report(f"preview over {n:,} contacts vs a raw scan of the same items", [
        ("seeding (batch writes)", f"{preview['seed_s']:.1f} s"),
        ("preview (count + sample)", f"{preview['preview_s']:.2f} s, "
                                     f"{preview['matches']:.0f} matches"),
        ("raw scan (same queries)", f"{preview['raw_s']:.2f} s"),
        ("time ratio preview / raw", f"{preview['ratio']:.2f}x (goal <= 1.5x)"),
    ])
    return {**throughput, **gain, **preview}


if __name__ == "__main__":
    run()
