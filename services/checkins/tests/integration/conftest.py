"""Fixtures for the checkins service against the real MongoDB-compatible server."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from typing import Any, cast

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from checkins.bootstrap import GROUP, build_app, read_model_handler
from checkins.settings import Settings
from checkins.store.mongo import LIFECYCLE
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
from mandaact_contracts.envelope import Envelope
from mandaact_contracts.events import EventPayload
from services.checkins.tests.support import NOW, Feed, envelope_of


@pytest.fixture
def clock() -> SettableClock:
    """The app's clock, at NOW until a test moves it."""
    return SettableClock(NOW)


@pytest.fixture
def checkins_settings(infra: Any, unique_db_name: str) -> Settings:
    """Settings pointing at the test server, with a database of this test's own (erasures
    start at once: no grace period)."""
    return settings_for_tests(Settings, infra, unique_db_name)


@pytest.fixture
async def checkins_app(
    checkins_settings: Settings, mongo_client: AsyncMongoClient[Doc], clock: SettableClock
) -> AsyncIterator[FastAPI]:
    """The checkins app with its lifespan running (indexes made)."""
    app = build_app(checkins_settings, client=mongo_client, clock=clock)
    async with app.router.lifespan_context(app):
        yield app
    await mongo_client.drop_database(checkins_settings.mongodb_database)


@pytest.fixture
async def http(checkins_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to the app in process."""
    transport = httpx.ASGITransport(app=checkins_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://checkins") as client:
        yield client


@pytest.fixture
def db(mongo_client: AsyncMongoClient[Doc], checkins_settings: Settings) -> AsyncDatabase[Doc]:
    """The checkins database of this test."""
    return mongo_client[checkins_settings.mongodb_database]


@pytest.fixture
def dead_letters() -> RecordingDeadLetters:
    """Where the test consumer's poison records go."""
    return RecordingDeadLetters()


@pytest.fixture
def eraser(
    checkins_settings: Settings, mongo_client: AsyncMongoClient[Doc], db: AsyncDatabase[Doc]
) -> Eraser:
    """The service's erasure, as its worker builds it (the consumer's and the jobs')."""
    return eraser_from_settings(LIFECYCLE, mongo_client, db, checkins_settings)


@pytest.fixture
def feed(
    checkins_app: FastAPI,
    checkins_settings: Settings,
    mongo_client: AsyncMongoClient[Doc],
    db: AsyncDatabase[Doc],
    dead_letters: RecordingDeadLetters,
    eraser: Eraser,
) -> Feed:
    """Delivers events as one batch through the real idempotent consumer and our handler (with
    the service's eraser, as the worker runs it)."""
    # Payloads get a new envelope (a new ce_id); envelopes are re-delivered as they are.
    # The handler does not touch the producer; the dead letters are recorded instead.
    deps = WorkerDeps(checkins_settings, mongo_client, db, cast(AIOKafkaProducer, None))
    consumer = IdempotentConsumer(
        group=GROUP,
        client=mongo_client,
        db=db,
        handler=read_model_handler(deps),
        dead_letters=dead_letters,
        max_retries=1,
        backoff_seconds=0.01,
        eraser=eraser,
    )
    offsets = itertools.count()

    async def deliver(*items: EventPayload | Envelope) -> list[Envelope]:
        envelopes = [i if isinstance(i, Envelope) else envelope_of(i) for i in items]
        await consumer.process([record_of(e, offset=next(offsets)) for e in envelopes])
        return envelopes

    return deliver
