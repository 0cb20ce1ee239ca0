"""Fixtures for the notifications service against the real MongoDB-compatible server."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from mandaact_common.consumer import IdempotentConsumer
from mandaact_common.lifecycle import Eraser, eraser_from_settings
from mandaact_common.mongo import Doc
from mandaact_common.testing import (
    RecordingDeadLetters,
    SettableClock,
    record_of,
    settings_for_tests,
)
from mandaact_common.worker import WorkerDeps
from mandaact_contracts.envelope import Envelope, new_envelope
from mandaact_contracts.events import EVENT_TYPES, EventPayload
from notifications.bootstrap import GROUP, build_app, mongo_service, projection_handler
from notifications.service import NotificationsService
from notifications.settings import Settings
from notifications.store.mongo import LIFECYCLE
from services.notifications.tests.support import TODAY, seoul

Feed = Callable[..., Awaitable[list[Envelope]]]
_TOPIC = {spec.model: topic for topic, spec in EVENT_TYPES.items()}


@pytest.fixture
def clock() -> SettableClock:
    """The service's clock: noon in Seoul until a test moves it."""
    return SettableClock(seoul(TODAY, 12))


@pytest.fixture
def settings(infra: Any, unique_db_name: str) -> Settings:
    """Settings pointing at the test server, with a database of this test's own (erasures
    start at once: no grace period)."""
    return settings_for_tests(Settings, infra, unique_db_name)


@pytest.fixture
async def app(
    settings: Settings, mongo_client: AsyncMongoClient[Doc], clock: SettableClock
) -> AsyncIterator[FastAPI]:
    """The notifications app with its lifespan running (indexes made)."""
    app = build_app(settings, client=mongo_client, clock=clock)
    async with app.router.lifespan_context(app):
        yield app
    await mongo_client.drop_database(settings.mongodb_database)


@pytest.fixture
async def http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to the app in process."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://notifications") as client:
        yield client


@pytest.fixture
def db(mongo_client: AsyncMongoClient[Doc], settings: Settings) -> AsyncDatabase[Doc]:
    """The notifications database of this test."""
    return mongo_client[settings.mongodb_database]


@pytest.fixture
def workers(
    app: FastAPI,
    settings: Settings,
    mongo_client: AsyncMongoClient[Doc],
    db: AsyncDatabase[Doc],
    clock: SettableClock,
) -> list[NotificationsService]:
    """Two workers' use cases over the same database (each claims with its own leases)."""
    return [mongo_service(settings, mongo_client, db, clock) for _ in range(2)]


@pytest.fixture
def eraser(
    settings: Settings, mongo_client: AsyncMongoClient[Doc], db: AsyncDatabase[Doc]
) -> Eraser:
    """The service's erasure, as its worker builds it (the consumer's and the jobs')."""
    return eraser_from_settings(LIFECYCLE, mongo_client, db, settings)


@pytest.fixture
def feed(
    app: FastAPI,
    settings: Settings,
    mongo_client: AsyncMongoClient[Doc],
    db: AsyncDatabase[Doc],
    clock: SettableClock,
    eraser: Eraser,
) -> Feed:
    """Delivers events as one batch through the real idempotent consumer and our handler (with
    the service's eraser, as the worker runs it)."""
    deps = WorkerDeps(settings, mongo_client, db, cast(AIOKafkaProducer, None))
    consumer = IdempotentConsumer(
        group=GROUP,
        client=mongo_client,
        db=db,
        handler=projection_handler(deps, clock),
        dead_letters=RecordingDeadLetters(),
        max_retries=1,
        backoff_seconds=0.01,
        eraser=eraser,
    )
    offsets = itertools.count()

    async def deliver(*items: EventPayload | Envelope) -> list[Envelope]:
        envelopes = [
            i if isinstance(i, Envelope) else new_envelope(_TOPIC[type(i)], i, "test")
            for i in items
        ]
        await consumer.process([record_of(e, offset=next(offsets)) for e in envelopes])
        return envelopes

    return deliver
