"""The composition root: services wired to their DynamoDB stores, made once per settings."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from functools import lru_cache

from chalicelib.adapters.invoke import Handler, deliver_one
from chalicelib.domain.ids import new_id
from chalicelib.domain.records import format_timestamp
from chalicelib.services.dead_letters import DeadLetterService
from chalicelib.services.evaluation import LiveEvaluation
from chalicelib.services.identity import IdentityService
from chalicelib.services.records import RecordsService
from chalicelib.services.search import SearchService
from chalicelib.services.segments import SegmentsService
from chalicelib.settings import Settings, get_settings


def now() -> str:
    return format_timestamp(datetime.now(UTC))


@lru_cache(maxsize=4)
def _identity(settings: Settings) -> IdentityService:
    from chalicelib.persistence.repositories import DynamoIdentityStore

    return IdentityService(DynamoIdentityStore(), settings.operator_key, now)


@lru_cache(maxsize=4)
def _records(settings: Settings) -> RecordsService:
    from chalicelib.persistence.repositories import DynamoMembershipReader, DynamoRecordStore

    return RecordsService(DynamoRecordStore(), DynamoMembershipReader(), now)


def bound_settings() -> Settings:
    """The current settings, with the models bound to their tables (cheap when unchanged)."""
    from chalicelib.persistence import tables

    return tables.bind(get_settings())


@lru_cache(maxsize=4)
def _search(settings: Settings) -> SearchService:
    from chalicelib.persistence.repositories import DynamoMembershipReader, DynamoRecordStore

    return SearchService(DynamoRecordStore(), DynamoMembershipReader(),
                         lambda: datetime.now(UTC))


@lru_cache(maxsize=4)
def _segments(settings: Settings) -> SegmentsService:
    from chalicelib.persistence.queues import SqsBackfillQueue
    from chalicelib.persistence.repositories import DynamoRecordStore
    from chalicelib.persistence.segments import DynamoSegmentStore

    return SegmentsService(DynamoSegmentStore(), DynamoRecordStore(), _search(settings),
                           SqsBackfillQueue(), lambda: datetime.now(UTC),
                           membership_changed=_live(settings).membership_changed,
                           shard_done=_live(settings).drain_pending)


def segments() -> SegmentsService:
    return _segments(bound_settings())


@lru_cache(maxsize=4)
def _live(settings: Settings) -> LiveEvaluation:
    from chalicelib.persistence.queues import SqsBackfillQueue
    from chalicelib.persistence.repositories import DynamoRecordStore
    from chalicelib.persistence.segments import DynamoSegmentStore

    return LiveEvaluation(DynamoSegmentStore(), DynamoRecordStore(), _search(settings),
                          lambda: datetime.now(UTC), later=SqsBackfillQueue().enqueue_recheck)


def live() -> LiveEvaluation:
    return _live(bound_settings())


def dead_letters(handlers: Mapping[str, Handler]) -> DeadLetterService:
    """Dead letters, re-driven to the functions in `handlers` (the app's handler map)."""
    from chalicelib.persistence.dead_letters import DynamoDeadLetters

    bound_settings()
    return DeadLetterService(DynamoDeadLetters(),
                             lambda consumer, record: deliver_one(handlers, consumer, record),
                             lambda: new_id("dl"), now)


def search() -> SearchService:
    return _search(bound_settings())


def identity() -> IdentityService:
    return _identity(bound_settings())


def records() -> RecordsService:
    return _records(bound_settings())
