"""Fixtures for the webhooks service against the real MongoDB-compatible server."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

import pytest
from aiokafka import AIOKafkaProducer
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from mandaact_common.consumer import IdempotentConsumer
from mandaact_common.lifecycle import Eraser, eraser_from_settings
from mandaact_common.mongo import Doc
from mandaact_common.testing import RecordingDeadLetters, record_of, settings_for_tests
from mandaact_common.worker import WorkerDeps
from mandaact_contracts.envelope import Envelope
from webhooks.bootstrap import GROUP, fan_out_handler
from webhooks.settings import Settings
from webhooks.store.mongo import LIFECYCLE, ensure_indexes


@pytest.fixture
def webhooks_settings(infra: Any, unique_db_name: str) -> Settings:
    """Settings pointing at the test server, with a database of this test's own (erasures
    start at once: no grace period)."""
    return settings_for_tests(Settings, infra, unique_db_name)


@pytest.fixture
async def db(
    mongo_client: AsyncMongoClient[Doc], webhooks_settings: Settings
) -> AsyncIterator[AsyncDatabase[Doc]]:
    """The webhooks database of this test, with its indexes."""
    database = mongo_client[webhooks_settings.mongodb_database]
    await ensure_indexes(database)
    yield database
    await mongo_client.drop_database(webhooks_settings.mongodb_database)


Feed = Callable[..., Awaitable[None]]


@pytest.fixture
def eraser(
    webhooks_settings: Settings, mongo_client: AsyncMongoClient[Doc], db: AsyncDatabase[Doc]
) -> Eraser:
    """The service's erasure, as its worker builds it (the consumer's and the jobs')."""
    return eraser_from_settings(LIFECYCLE, mongo_client, db, webhooks_settings)


@pytest.fixture
def feed(
    webhooks_settings: Settings,
    mongo_client: AsyncMongoClient[Doc],
    db: AsyncDatabase[Doc],
    eraser: Eraser,
) -> Feed:
    """Delivers envelopes as one batch through the real idempotent consumer and our handler
    (with the service's eraser, as the worker runs it)."""
    deps = WorkerDeps(webhooks_settings, mongo_client, db, cast(AIOKafkaProducer, None))
    consumer = IdempotentConsumer(
        group=GROUP,
        client=mongo_client,
        db=db,
        handler=fan_out_handler()(deps),
        dead_letters=RecordingDeadLetters(),
        max_retries=1,
        backoff_seconds=0.01,
        eraser=eraser,
    )
    offsets = itertools.count()

    async def deliver(*envelopes: Envelope) -> None:
        await consumer.process([record_of(e, offset=next(offsets)) for e in envelopes])

    return deliver
