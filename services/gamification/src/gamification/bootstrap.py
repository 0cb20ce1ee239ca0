"""The one place that wires the gamification service's real adapters."""

from __future__ import annotations

from fastapi import FastAPI
from pymongo import AsyncMongoClient

from gamification.api.routes import router
from gamification.consumers.handler import make_handler
from gamification.settings import Settings
from gamification.store.mongo import ensure_indexes
from mandaact_common.http import AppState, create_app
from mandaact_common.mongo import Doc
from mandaact_common.worker import ConsumerSpec, WorkerDeps, WorkerSpec
from mandaact_contracts import topics

GROUP = "gamification"
CONSUMES = (
    topics.USER_CHANGED,
    topics.GOAL_CHANGED,
    topics.ACTION_COMPLETED,
    topics.ACTION_UNCOMPLETED,
)
PUBLISHES = (
    topics.XP_AWARDED,
    topics.XP_REVOKED,
    topics.LEVEL_REACHED,
    topics.BADGE_UNLOCKED,
    topics.STREAK_CHANGED,
)


async def _on_worker_start(deps: WorkerDeps) -> None:
    await ensure_indexes(deps.db)


def worker_spec() -> WorkerSpec:
    """Gamification consumes grids and check-ins and publishes XP, level, badge, streak events."""
    return WorkerSpec(
        service="gamification",
        consumers=(ConsumerSpec(GROUP, CONSUMES, make_handler),),
        publishes=PUBLISHES,
        on_start=_on_worker_start,
    )


def build_app(settings: Settings, client: AsyncMongoClient[Doc] | None = None) -> FastAPI:
    """The gamification HTTP app (tests pass their own client)."""

    async def on_start(state: AppState) -> None:
        await ensure_indexes(state.db)

    return create_app(
        settings,
        title="MandaAct gamification",
        routers=[router],
        on_start=on_start,
        events=worker_spec(),
        client=client,
    )
