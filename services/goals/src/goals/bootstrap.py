"""The one place that wires the goals service's real adapters."""

from __future__ import annotations

from fastapi import FastAPI
from pymongo import AsyncMongoClient

from goals.api.deps import ServiceFactory
from goals.api.routes import router
from goals.service import GoalsService
from goals.settings import Settings
from goals.store.mongo import ensure_indexes, unit_of_work
from mandaact_common.http import AppState, create_app
from mandaact_common.mongo import Doc
from mandaact_common.worker import WorkerSpec
from mandaact_contracts import topics


def worker_spec() -> WorkerSpec:
    """Goals consumes nothing; its worker relays `user.changed` and `goal.changed`."""
    return WorkerSpec(
        service="goals",
        publishes=(topics.USER_CHANGED, topics.GOAL_CHANGED),
        ensure_indexes=ensure_indexes,
    )


def mongo_service(state: AppState) -> GoalsService:
    """The use cases over the process's MongoDB client."""
    return GoalsService(unit_of_work(state.client, state.db))


def build_app(
    settings: Settings,
    client: AsyncMongoClient[Doc] | None = None,
    service_factory: ServiceFactory = mongo_service,
) -> FastAPI:
    """The goals HTTP app (tests pass their own client, or a factory with fakes)."""
    return create_app(
        settings,
        title="MandaAct goals",
        routers=[router],
        events=worker_spec(),
        client=client,
        service_factory=service_factory,
    )
