"""The one place that wires the checkins service's real adapters."""

from __future__ import annotations

from fastapi import FastAPI
from pymongo import AsyncMongoClient

from checkins.api.deps import ServiceFactory
from checkins.api.routes import router
from checkins.consumers.handler import make_handler
from checkins.service import CheckinsService
from checkins.settings import Settings
from checkins.store.mongo import LIFECYCLE, MongoCheckinsStore, ensure_indexes, unit_of_work
from mandaact_common.clock import Clock, utc_now
from mandaact_common.consumer import BatchHandler
from mandaact_common.http import AppState, create_app
from mandaact_common.mongo import Doc
from mandaact_common.outbox import Transaction
from mandaact_common.worker import ConsumerSpec, WorkerDeps, WorkerSpec
from mandaact_contracts import topics

GROUP = "checkins"
CONSUMES = (topics.USER_CHANGED, topics.GOAL_CHANGED, topics.USER_DELETED, topics.TENANT_DELETED)
PUBLISHES = (topics.ACTION_COMPLETED, topics.ACTION_UNCOMPLETED, topics.USER_ERASED)


def read_model_handler(deps: WorkerDeps) -> BatchHandler:
    """The consumer's handler over the Mongo store of the consumer's own transaction."""

    def store_in(tx: Transaction) -> MongoCheckinsStore:
        return MongoCheckinsStore(tx.db, tx)

    return make_handler(store_in)


def worker_spec() -> WorkerSpec:
    """Checkins keeps a read model of users and grids, relays its check-in events and erases
    the users and tenants that are deleted (the consumer absorbs `user.deleted` and
    `tenant.deleted`, the worker runs the erasures)."""
    return WorkerSpec(
        service="checkins",
        consumers=(ConsumerSpec(GROUP, CONSUMES, read_model_handler),),
        publishes=PUBLISHES,
        ensure_indexes=ensure_indexes,
        lifecycle=LIFECYCLE,
    )


def mongo_service(settings: Settings, clock: Clock = utc_now) -> ServiceFactory:
    """A factory of the use cases over the process's MongoDB client."""

    def factory(state: AppState) -> CheckinsService:
        uow = unit_of_work(state.client, state.db)
        return CheckinsService(uow, backfill_days=settings.backfill_days, clock=clock)

    return factory


def build_app(
    settings: Settings,
    client: AsyncMongoClient[Doc] | None = None,
    service_factory: ServiceFactory | None = None,
    clock: Clock = utc_now,
) -> FastAPI:
    """The checkins HTTP app (tests pass their own client and clock, or a factory with fakes)."""
    return create_app(
        settings,
        title="MandaAct checkins",
        routers=[router],
        events=worker_spec(),
        client=client,
        service_factory=service_factory or mongo_service(settings, clock),
    )
