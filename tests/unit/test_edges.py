"""Pure helpers at the edges: JSON paths, body reading, cursors, Lambda response parsing."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.adapters.http import json_path, read_json
from chalicelib.adapters.invoke import failed_identifiers
from chalicelib.domain.errors import InvalidInput, PayloadTooLarge
from chalicelib.domain.ids import new_id, shard_of
from chalicelib.domain.pages import decode_cursor, encode_cursor
from chalicelib.local.events import schedule_period, stream_table


def test_json_paths():
    assert json_path(("items", 1, "occurred_at")) == "$.items[1].occurred_at"
    assert json_path(()) == "$"


def test_read_json_says_what_is_wrong():
    assert read_json(b'{"a": 1}') == {"a": 1}
    for raw in (None, b"", b"   "):
        with pytest.raises(InvalidInput):
            read_json(raw)
    with pytest.raises(InvalidInput) as caught:
        read_json(b'{"a": 1,\n "b": }')
    assert caught.value.details["line"] == 2
    with pytest.raises(InvalidInput):
        read_json(b"\xff\xfe")
    with pytest.raises(PayloadTooLarge):
        read_json(b" " * 1_048_577)


@given(st.dictionaries(st.text(max_size=5), st.one_of(st.text(max_size=10), st.integers())))
def test_cursors_round_trip(position):
    assert decode_cursor(encode_cursor(position)) == (position or None)


@pytest.mark.parametrize("cursor", ["%%%", "bm90IGpzb24", "WzFd"])
def test_foreign_cursors_are_rejected(cursor):
    with pytest.raises(InvalidInput):
        decode_cursor(cursor)


def test_ids_sort_by_creation_and_shards_are_stable():
    ids = [new_id("c") for _ in range(50)]
    assert len(set(ids)) == 50
    earlier = new_id("c")
    time.sleep(0.003)
    assert earlier < new_id("c")
    assert shard_of("c_abc", 16) == shard_of("c_abc", 16) and 0 <= shard_of("x", 16) < 16


def test_batch_item_failures_are_read_as_lambda_does():
    ids = ["1", "2", "3"]
    assert failed_identifiers(None, ids) == set()
    assert failed_identifiers({"batchItemFailures": []}, ids) == set()
    assert failed_identifiers({"batchItemFailures": [{"itemIdentifier": "2"}]}, ids) == {"2"}
    # an identifier that is not in the batch, or an empty one, fails the whole batch
    assert failed_identifiers({"batchItemFailures": [{"itemIdentifier": "9"}]}, ids) is None
    assert failed_identifiers({"batchItemFailures": [{"itemIdentifier": ""}]}, ids) is None


def test_schedules_and_stream_arns():
    assert schedule_period("rate(15 minutes)") == 900
    assert schedule_period("rate(1 hour)") == 3600
    assert stream_table("arn:aws:dynamodb:us-east-1:1:table/segments-records/stream/2026") == \
        "segments-records"
