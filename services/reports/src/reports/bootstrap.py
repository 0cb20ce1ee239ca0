"""The one place that wires the reports service's real adapters."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from mandaact_common.http import AppState, create_app
from mandaact_common.idempotency import ensure_idempotency_indexes
from mandaact_common.mongo import Doc
from mandaact_common.worker import ConsumerSpec, WorkerDeps, WorkerSpec
from mandaact_contracts import topics
from reports.api.deps import ReportsRuntime
from reports.api.routes import router
from reports.consumers.handler import make_handler
from reports.generation import Clock, ReportGenerator, system_clock
from reports.llm import ensure_cache_indexes, make_writer
from reports.scheduler import scheduler_job
from reports.settings import Settings
from reports.store.mongo import ensure_indexes

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
)
PUBLISHES = (topics.REPORT_GENERATED,)


async def ensure_all_indexes(db: AsyncDatabase[Doc]) -> None:
    """Every index the service relies on."""
    await ensure_indexes(db)
    await ensure_cache_indexes(db)
    await ensure_idempotency_indexes(db)


async def _on_worker_start(deps: WorkerDeps) -> None:
    await ensure_all_indexes(deps.db)


def worker_spec(clock: Clock = system_clock) -> WorkerSpec:
    """Reports folds every user-scoped topic and writes reports on schedule."""
    return WorkerSpec(
        service="reports",
        consumers=(ConsumerSpec(GROUP, CONSUMES, make_handler),),
        publishes=PUBLISHES,
        on_start=_on_worker_start,
        background=(scheduler_job(clock),),
    )


def build_app(
    settings: Settings,
    client: AsyncMongoClient[Doc] | None = None,
    clock: Clock = system_clock,
) -> FastAPI:
    """The reports HTTP app (tests pass their own client and clock)."""

    async def on_start(state: AppState) -> None:
        await ensure_all_indexes(state.db)
        writer = make_writer(settings, state.db)
        app.state.reports_runtime = ReportsRuntime(
            ReportGenerator.from_settings(settings, state.client, state.db, writer), clock
        )

    app = create_app(
        settings,
        title="MandaAct reports",
        routers=[router],
        on_start=on_start,
        events=worker_spec(),
        client=client,
    )
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app_: FastAPI) -> AsyncIterator[None]:
        # create_app has no shutdown hook: close the LLM client after its lifespan ends.
        async with inner(app_):
            try:
                yield
            finally:
                runtime: ReportsRuntime | None = getattr(app_.state, "reports_runtime", None)
                if runtime is not None:
                    await runtime.generator.aclose()

    app.router.lifespan_context = lifespan
    return app
