"""The one place that wires the notifications service's adapters."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import Any

from fastapi import FastAPI
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from mandaact_common.clock import Clock
from mandaact_common.consumer import BatchHandler
from mandaact_common.http import AppState, create_app
from mandaact_common.mongo import Doc
from mandaact_common.outbox import Transaction
from mandaact_common.worker import ConsumerSpec, WorkerDeps, WorkerSpec
from mandaact_contracts import topics
from notifications.api.deps import ServiceFactory
from notifications.api.routes import router
from notifications.clock import clock_of
from notifications.consumers.handler import make_handler
from notifications.consumers.scheduler import run_timers
from notifications.service import NotificationsService
from notifications.settings import Settings
from notifications.store import mongo
from notifications.store.mongo import LIFECYCLE
from notifications.store.ports import TimerLeases, UnitOfWork

GROUP = "notifications"
CONSUMES = (
    topics.USER_CHANGED,
    topics.GOAL_CHANGED,
    topics.ACTION_COMPLETED,
    topics.ACTION_UNCOMPLETED,
    topics.STREAK_CHANGED,
    topics.BADGE_UNLOCKED,
    topics.LEVEL_REACHED,
    topics.REPORT_GENERATED,
    topics.USER_DELETED,
    topics.TENANT_DELETED,
)
PUBLISHES = (topics.NOTIFICATION_REQUESTED, topics.USER_ERASED)

BackgroundJob = Callable[[WorkerDeps, asyncio.Event], Coroutine[Any, Any, None]]


def notifications_settings(deps: WorkerDeps) -> Settings:
    """The worker's settings as the notifications service's own class."""
    if isinstance(deps.settings, Settings):
        return deps.settings
    return Settings.model_validate(deps.settings.model_dump())


def build_service(
    settings: Settings, *, uow: UnitOfWork, leases: TimerLeases, clock: Clock
) -> NotificationsService:
    """The use cases over these adapters, with the settings' lease and chunk."""
    return NotificationsService(
        uow,
        leases,
        lease=timedelta(seconds=settings.lease_seconds),
        chunk=settings.chunk,
        clock=clock,
    )


def mongo_service(
    settings: Settings,
    client: AsyncMongoClient[Doc],
    db: AsyncDatabase[Doc],
    clock: Clock | None = None,
) -> NotificationsService:
    """The use cases over MongoDB."""
    return build_service(
        settings,
        uow=mongo.unit_of_work(client, db, settings.erasure_secret),
        leases=mongo.MongoTimerLeases(db),
        clock=clock or clock_of(settings.clock_file),
    )


def projection_handler(deps: WorkerDeps, clock: Clock | None = None) -> BatchHandler:
    """The consumer's handler over the Mongo store of the consumer's own transaction."""
    settings = notifications_settings(deps)

    def store_in(tx: Transaction) -> mongo.MongoNotificationsStore:
        return mongo.MongoNotificationsStore(tx.db, tx)

    return make_handler(store_in, clock or clock_of(settings.clock_file))


def timers_job(clock: Clock | None = None) -> BackgroundJob:
    """The worker's background job that fires due timers (tests pass their own clock)."""

    async def job(deps: WorkerDeps, stop: asyncio.Event) -> None:
        settings = notifications_settings(deps)
        service = mongo_service(settings, deps.client, deps.db, clock)
        await run_timers(service, settings.poll_seconds, stop)

    return job


def worker_spec(clock: Clock | None = None) -> WorkerSpec:
    """Notifications keeps a read model of users, fires timers, relays its notifications and
    erases the users and tenants that are deleted."""
    return WorkerSpec(
        service="notifications",
        consumers=(ConsumerSpec(GROUP, CONSUMES, lambda deps: projection_handler(deps, clock)),),
        publishes=PUBLISHES,
        ensure_indexes=mongo.ensure_indexes,
        background=(timers_job(clock),),
        lifecycle=LIFECYCLE,
    )


def build_app(
    settings: Settings,
    client: AsyncMongoClient[Doc] | None = None,
    service_factory: ServiceFactory | None = None,
    clock: Clock | None = None,
) -> FastAPI:
    """The notifications HTTP app (tests pass their own client and clock, or a factory)."""

    def over_mongo(state: AppState) -> NotificationsService:
        return mongo_service(settings, state.client, state.db, clock)

    return create_app(
        settings,
        title="MandaAct notifications",
        routers=[router],
        events=worker_spec(clock),
        client=client,
        service_factory=service_factory or over_mongo,
    )
