"""The one place that wires the gamification service's adapters (real ones, or tests' fakes)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import FastAPI
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from gamification.api.deps import ServiceFactory
from gamification.api.routes import router
from gamification.consumers.handler import HandlerDeps, make_handler
from gamification.service import GamificationService
from gamification.settings import Settings
from gamification.store.mongo import (
    LIFECYCLE,
    FoldCache,
    MongoGamificationStore,
    ensure_indexes,
)
from gamification.store.ports import GamificationUnitOfWork
from mandaact_common.clock import Clock, utc_now
from mandaact_common.consumer import BatchHandler
from mandaact_common.http import AppState, create_app
from mandaact_common.mongo import Doc
from mandaact_common.settings import ServiceSettings
from mandaact_common.unit_of_work import MongoUnitOfWork
from mandaact_common.worker import ConsumerSpec, WorkerDeps, WorkerSpec, run_every
from mandaact_contracts import topics

BackgroundJob = Callable[[WorkerDeps, asyncio.Event], Coroutine[Any, Any, None]]

GROUP = "gamification"
CONSUMES = (
    topics.USER_CHANGED,
    topics.GOAL_CHANGED,
    topics.ACTION_COMPLETED,
    topics.ACTION_UNCOMPLETED,
    topics.USER_DELETED,
    topics.TENANT_DELETED,
)
PUBLISHES = (
    topics.XP_AWARDED,
    topics.XP_REVOKED,
    topics.LEVEL_REACHED,
    topics.BADGE_UNLOCKED,
    topics.STREAK_CHANGED,
    topics.USER_ERASED,
)


def mongo_unit_of_work(
    client: AsyncMongoClient[Doc], db: AsyncDatabase[Doc]
) -> MongoUnitOfWork[MongoGamificationStore]:
    """The unit of work over the service's MongoDB database."""
    folds = FoldCache()
    return MongoUnitOfWork(client, db, GROUP, lambda db, tx: MongoGamificationStore(db, tx, folds))


def accept_days(settings: ServiceSettings) -> int:
    """How many days back a check-in may come without a rebuild: the backfill window, and 1."""
    return settings.backfill_days + 1


def consumer_handler(
    uow: GamificationUnitOfWork, clock: Clock = utc_now, accept_days: int = 2
) -> BatchHandler:
    """The consumer's batch handler over a unit of work (MongoDB's, or an in-memory one)."""
    service = GamificationService(uow, clock, accept_days=accept_days)
    return make_handler(HandlerDeps(service, uow.store_in))


def mongo_handler(
    client: AsyncMongoClient[Doc],
    db: AsyncDatabase[Doc],
    clock: Clock = utc_now,
    accept_days: int = 2,
) -> BatchHandler:
    """The consumer's batch handler over the service's MongoDB database (worker and replay)."""
    return consumer_handler(mongo_unit_of_work(client, db), clock, accept_days)


def streaks_job(clock: Clock = utc_now) -> BackgroundJob:
    """The worker's background job: decide the streaks of the users whose day just ended, and
    apply tenants' streak repairs a batch of users at a time."""

    async def job(deps: WorkerDeps, stop: asyncio.Event) -> None:
        service = GamificationService(mongo_unit_of_work(deps.client, deps.db), clock)
        settings = deps.settings
        if not isinstance(settings, Settings):
            settings = Settings.model_validate(settings.model_dump())
        seconds = settings.streak_sweep_seconds

        async def step() -> int:
            return await service.sweep_streaks() + await service.apply_repairs()

        await run_every(step, seconds, stop, "streak sweep")

    return job


def worker_spec(clock: Clock = utc_now) -> WorkerSpec:
    """Gamification consumes grids, check-ins and erasures and publishes XP, level, badge,
    streak events (and `user.erased`)."""

    def handler(deps: WorkerDeps) -> BatchHandler:
        return mongo_handler(deps.client, deps.db, clock, accept_days(deps.settings))

    return WorkerSpec(
        service="gamification",
        consumers=(ConsumerSpec(GROUP, CONSUMES, handler),),
        publishes=PUBLISHES,
        ensure_indexes=ensure_indexes,
        background=(streaks_job(clock),),
        lifecycle=LIFECYCLE,
    )


def mongo_service(clock: Clock = utc_now) -> ServiceFactory:
    """A factory of the use cases over the process's MongoDB client."""

    def factory(state: AppState) -> GamificationService:
        return GamificationService(mongo_unit_of_work(state.client, state.db), clock)

    return factory


def build_app(
    settings: Settings,
    client: AsyncMongoClient[Doc] | None = None,
    service_factory: ServiceFactory | None = None,
    clock: Clock = utc_now,
) -> FastAPI:
    """The gamification HTTP app (tests pass their own client and clock, or a fake factory)."""
    return create_app(
        settings,
        title="MandaAct gamification",
        routers=[router],
        events=worker_spec(clock),
        client=client,
        service_factory=service_factory or mongo_service(clock),
    )
