"""The one place that wires the reports service's adapters: real ones, or the fakes tests pass."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import Any

from fastapi import FastAPI
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from mandaact_common.clock import Clock, utc_now
from mandaact_common.consumer import BatchHandler
from mandaact_common.http import AppState, create_app
from mandaact_common.mongo import Doc
from mandaact_common.worker import ConsumerSpec, WorkerDeps, WorkerSpec
from mandaact_contracts import topics
from reports.api.deps import ServiceFactory
from reports.api.routes import router
from reports.consumers.handler import make_handler
from reports.consumers.scheduler import run_scheduler
from reports.llm import make_writer
from reports.service import ReportsService
from reports.settings import Settings
from reports.store import mongo
from reports.store.ports import JobLeases, ReportsUnitOfWork, SummaryWriter

GROUP = "reports"
CONSUMES = (
    topics.USER_CHANGED,
    topics.GOAL_CHANGED,
    topics.ACTION_COMPLETED,
    topics.ACTION_UNCOMPLETED,
    topics.XP_AWARDED,
    topics.XP_REVOKED,
    topics.LEVEL_REACHED,
    topics.BADGE_UNLOCKED,
    topics.STREAK_CHANGED,
    topics.USER_DELETED,
    topics.TENANT_DELETED,
)
PUBLISHES = (topics.REPORT_GENERATED, topics.USER_ERASED)

BackgroundJob = Callable[[WorkerDeps, asyncio.Event], Coroutine[Any, Any, None]]


async def ensure_indexes(db: AsyncDatabase[Doc]) -> None:
    """Every index the service relies on (its store's, the LLM cache's and budget's)."""
    await mongo.ensure_indexes(db)


def build_service(
    settings: Settings,
    *,
    uow: ReportsUnitOfWork,
    leases: JobLeases,
    writer: SummaryWriter,
    clock: Clock = utc_now,
) -> ReportsService:
    """The use cases over these adapters, with the settings' lease, chunk, concurrency, wait."""
    return ReportsService(
        uow,
        leases,
        writer,
        lease=timedelta(seconds=settings.claim_lease_seconds),
        chunk=settings.scheduler_chunk,
        concurrency=settings.llm_concurrency,
        wait_seconds=settings.llm_deadline_seconds + 5.0,
        settle=timedelta(seconds=settings.report_settle_seconds),
        clock=clock,
    )


def mongo_service(
    settings: Settings,
    client: AsyncMongoClient[Doc],
    db: AsyncDatabase[Doc],
    *,
    writer: SummaryWriter | None = None,
    clock: Clock = utc_now,
) -> ReportsService:
    """The use cases over MongoDB, with the writer the settings ask for unless one is given."""
    return build_service(
        settings,
        uow=mongo.unit_of_work(client, db),
        leases=mongo.MongoJobLeases(db),
        writer=writer or make_writer(settings, db, clock),
        clock=clock,
    )


def fold_handler(deps: WorkerDeps, clock: Clock = utc_now) -> BatchHandler:
    """The consumer's handler over the Mongo store of the consumer's own transaction."""
    settle = timedelta(seconds=reports_settings(deps).report_settle_seconds)
    return make_handler(mongo.unit_of_work(deps.client, deps.db).store_in, clock, settle)


def fold_handler_on(clock: Clock) -> Callable[[WorkerDeps], BatchHandler]:
    """`fold_handler` on this clock (the worker's, which tests set)."""

    def handler(deps: WorkerDeps) -> BatchHandler:
        return fold_handler(deps, clock)

    return handler


def reports_settings(deps: WorkerDeps) -> Settings:
    """The worker's settings as the reports service's own class."""
    if isinstance(deps.settings, Settings):
        return deps.settings
    return Settings.model_validate(deps.settings.model_dump())


def scheduler_job(clock: Clock = utc_now) -> BackgroundJob:
    """The worker's background job that writes due reports and due rewrites (tests pass their
    own clock)."""

    async def job(deps: WorkerDeps, stop: asyncio.Event) -> None:
        settings = reports_settings(deps)
        service = mongo_service(settings, deps.client, deps.db, clock=clock)
        try:
            await run_scheduler(service, settings.scheduler_poll_seconds, stop)
        finally:
            await service.aclose()

    return job


FOLD_GATHER_MS = 250
"""How long the fold's fetches may wait to gather events: a check-in's `action.completed` and
its `xp.awarded` (and the next users') then fold in one transaction instead of one each, and a
report, weekly, is a quarter of a second later at most (docs/reports.md)."""


def worker_spec(clock: Clock = utc_now) -> WorkerSpec:
    """Reports folds every user-scoped topic, writes reports on schedule and erases users."""
    return WorkerSpec(
        service="reports",
        consumers=(
            ConsumerSpec(GROUP, CONSUMES, fold_handler_on(clock), gather_ms=FOLD_GATHER_MS),
        ),
        publishes=PUBLISHES,
        ensure_indexes=ensure_indexes,
        background=(scheduler_job(clock),),
        lifecycle=mongo.LIFECYCLE,
    )


def build_app(
    settings: Settings,
    client: AsyncMongoClient[Doc] | None = None,
    clock: Clock = utc_now,
    service_factory: ServiceFactory | None = None,
) -> FastAPI:
    """The reports HTTP app (tests pass their own client and clock, or a factory with fakes)."""

    def over_mongo(state: AppState) -> ReportsService:
        return mongo_service(settings, state.client, state.db, clock=clock)

    factory = service_factory or over_mongo

    async def on_start(state: AppState) -> None:
        app.state.reports_service = factory(state)

    async def on_stop(state: AppState) -> None:
        service: ReportsService | None = getattr(app.state, "reports_service", None)
        if service is not None:
            await service.aclose()

    app = create_app(
        settings,
        title="MandaAct reports",
        routers=[router],
        on_start=on_start,
        on_stop=on_stop,
        events=worker_spec(clock),
        client=client,
    )
    return app
