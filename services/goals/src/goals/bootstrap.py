"""The one place that wires the goals service's real adapters."""

from __future__ import annotations

from datetime import timedelta

from fastapi import FastAPI
from pymongo import AsyncMongoClient

from goals.api.deps import ServiceFactory
from goals.api.routes import router
from goals.consumers import make_handler
from goals.service import GoalsService
from goals.settings import Settings
from goals.store.mongo import LIFECYCLE, MongoGoalsStore, ensure_indexes, unit_of_work
from mandaact_common.consumer import BatchHandler
from mandaact_common.http import AppState, create_app
from mandaact_common.mongo import Doc
from mandaact_common.outbox import Transaction
from mandaact_common.settings import ServiceSettings
from mandaact_common.worker import ConsumerSpec, WorkerDeps, WorkerSpec
from mandaact_contracts import topics

GROUP = "goals"
CONSUMES = (topics.USER_ERASED,)
PUBLISHES = (
    topics.USER_CHANGED,
    topics.GOAL_CHANGED,
    topics.USER_DELETED,
    topics.TENANT_DELETED,
    topics.USER_ERASED,
)


def answers_handler(deps: WorkerDeps) -> BatchHandler:
    """The consumer's handler over the Mongo store of the consumer's own transaction."""

    def store_in(tx: Transaction) -> MongoGoalsStore:
        return MongoGoalsStore(tx.db, tx)

    return make_handler(store_in, deps.settings.erasure_secret)


def worker_spec() -> WorkerSpec:
    """Goals relays `user.changed`, `goal.changed` and the deletions it starts, runs its own
    erasures, and records every service's `user.erased` answer (SPEC §9)."""
    return WorkerSpec(
        service="goals",
        consumers=(ConsumerSpec(GROUP, CONSUMES, answers_handler),),
        publishes=PUBLISHES,
        ensure_indexes=ensure_indexes,
        lifecycle=LIFECYCLE,
    )


def mongo_service(settings: ServiceSettings) -> ServiceFactory:
    """A factory of the use cases over the process's MongoDB client."""

    def factory(state: AppState) -> GoalsService:
        return GoalsService(
            unit_of_work(state.client, state.db),
            erasure_key=settings.erasure_secret,
            erasure_grace=timedelta(seconds=settings.erasure_grace_seconds),
        )

    return factory


def build_app(
    settings: Settings,
    client: AsyncMongoClient[Doc] | None = None,
    service_factory: ServiceFactory | None = None,
) -> FastAPI:
    """The goals HTTP app (tests pass their own client, or a factory with fakes)."""
    return create_app(
        settings,
        title="MandaAct goals",
        routers=[router],
        events=worker_spec(),
        client=client,
        service_factory=service_factory or mongo_service(settings),
    )
