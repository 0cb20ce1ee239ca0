"""The one place that wires the checkins service's real adapters."""

from __future__ import annotations

from fastapi import FastAPI
from pymongo import AsyncMongoClient

from checkins.api.deps import ServiceFactory
from checkins.api.errors import install_error_handlers
from checkins.api.routes import router
from checkins.consumers.handler import make_handler
from checkins.service import CheckinsService, Clock, utc_now
from checkins.settings import Settings
from checkins.store.mongo import MongoUnitOfWork, ensure_indexes
from mandaact_common.http import AppState, create_app
from mandaact_common.mongo import Doc
from mandaact_common.worker import ConsumerSpec, WorkerDeps, WorkerSpec
from mandaact_contracts import topics

GROUP = "checkins"
CONSUMES = (topics.USER_CHANGED, topics.GOAL_CHANGED)
PUBLISHES = (topics.ACTION_COMPLETED, topics.ACTION_UNCOMPLETED)


async def _on_worker_start(deps: WorkerDeps) -> None:
    await ensure_indexes(deps.db)


def worker_spec() -> WorkerSpec:
    """Checkins keeps a read model of users and grids and relays its check-in events."""
    return WorkerSpec(
        service="checkins",
        consumers=(ConsumerSpec(GROUP, CONSUMES, make_handler),),
        publishes=PUBLISHES,
        on_start=_on_worker_start,
    )


def mongo_service(settings: Settings, clock: Clock = utc_now) -> ServiceFactory:
    """A factory of the use cases over the process's MongoDB client."""

    def factory(state: AppState) -> CheckinsService:
        uow = MongoUnitOfWork(state.client, state.db)
        return CheckinsService(uow, backfill_days=settings.backfill_days, clock=clock)

    return factory


def build_app(
    settings: Settings,
    client: AsyncMongoClient[Doc] | None = None,
    service_factory: ServiceFactory | None = None,
    clock: Clock = utc_now,
) -> FastAPI:
    """The checkins HTTP app (tests pass their own client and clock, or a factory with fakes)."""

    async def on_start(state: AppState) -> None:
        await ensure_indexes(state.db)

    app = create_app(
        settings,
        title="MandaAct checkins",
        routers=[router],
        on_start=on_start,
        events=worker_spec(),
        client=client,
    )
    app.state.checkins_factory = service_factory or mongo_service(settings, clock)
    install_error_handlers(app)
    return app
