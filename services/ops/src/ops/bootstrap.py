"""The one place that wires the ops service's real adapters."""

from __future__ import annotations

import asyncio
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from mandaact_common.clock import Clock, utc_now
from mandaact_common.http import AppState, create_app
from mandaact_common.kafka import client_security
from mandaact_common.lag import LagMonitor
from mandaact_common.mongo import Doc
from mandaact_common.settings import DEV_MODES
from mandaact_common.worker import WorkerSpec
from mandaact_contracts import topics
from mandaact_contracts.asyncapi import PRODUCERS
from ops.api.deps import ServiceFactory
from ops.api.routes import console_router, dev_router, router
from ops.kafka import KafkaOps
from ops.probes import HttpProbes
from ops.service import OpsService, group_topics
from ops.settings import Settings
from ops.store.mongo import MongoOpsStore, ensure_indexes

STATIC = Path(__file__).parent / "static"
"""The web console: plain HTML, JS and CSS, no build step."""


def worker_spec() -> WorkerSpec:
    """Ops has no worker; this says what its Kafka principal may do (`kafka_acls`): re-publish
    to every event topic, read every event and dead-letter topic with no group, and read every
    group's committed offsets."""
    return WorkerSpec(
        service="ops",
        publishes=tuple(PRODUCERS),
        observes=(
            *topics.ALL_TOPICS,
            *(topics.dead_letter_topic(g) for g in topics.CONSUMER_GROUPS),
        ),
        describes_groups=topics.CONSUMER_GROUPS,
    )


def mongo_service(settings: Settings, kafka: KafkaOps, clock: Clock = utc_now) -> ServiceFactory:
    """A factory of the use cases over the process's MongoDB client and Kafka clients."""
    probes = HttpProbes(settings.probe_timeout_seconds)

    def factory(state: AppState) -> OpsService:
        return OpsService(
            MongoOpsStore(state.client, state.db),
            letters=kafka,
            offsets=kafka,
            probes=probes,
            tail=kafka,
            services=settings.services,
            clock=clock,
        )

    return factory


def build_app(
    settings: Settings,
    client: AsyncMongoClient[Doc] | None = None,
    service_factory: ServiceFactory | None = None,
    clock: Clock = utc_now,
) -> FastAPI:
    """The ops HTTP app and console (tests pass their own client, or a factory with fakes)."""
    kafka = KafkaOps(settings)

    async def indexes(db: AsyncDatabase[Doc]) -> None:
        await ensure_indexes(db, handled_ttl_seconds=settings.handled_ttl_seconds)

    exporting: list[asyncio.Task[None]] = []  # of this lifespan

    async def on_start(state: AppState) -> None:
        await indexes(state.db)
        if settings.lag_refresh_seconds > 0:  # `mandaact_consumer_lag` of every group (§10)
            lag = LagMonitor(
                settings.kafka_bootstrap_servers,
                group_topics(),
                client_id="ops-api",
                interval_seconds=settings.lag_refresh_seconds,
                security=client_security(settings),
            )
            exporting.append(asyncio.create_task(lag.run(asyncio.Event()), name="consumer-lag"))

    async def on_stop(_state: AppState) -> None:
        for task in exporting:
            task.cancel()  # a read of figures only: nothing to finish
        await asyncio.gather(*exporting, return_exceptions=True)
        exporting.clear()
        await kafka.close()

    mints = settings.env in DEV_MODES and settings.jwt_jwks_url is None
    app = create_app(
        settings,
        title="MandaAct ops",
        routers=[router, console_router],
        on_start=on_start,
        on_stop=on_stop,
        client=client,
        service_factory=service_factory or mongo_service(settings, kafka, clock),
    )
    if mints:  # unauthenticated by design, so not rate limited per caller (there is none)
        app.include_router(dev_router)
    app.mount("/static", StaticFiles(directory=STATIC), name="console")

    # A route, not a catch-all mount at "/": other paths keep their 404/405 problems.
    @app.get("/", include_in_schema=False)
    async def console() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    return app
