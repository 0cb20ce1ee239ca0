"""The one place that wires the webhooks service's real adapters."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import httpx
from fastapi import FastAPI
from pymongo import AsyncMongoClient

from mandaact_common.clock import Clock, utc_now
from mandaact_common.consumer import BatchHandler
from mandaact_common.http import AppState, create_app
from mandaact_common.mongo import Doc
from mandaact_common.outbox import Transaction
from mandaact_common.worker import ConsumerSpec, WorkerDeps, WorkerSpec
from mandaact_contracts import topics
from webhooks.api.deps import ServiceFactory
from webhooks.api.routes import router
from webhooks.consumers.handler import make_handler
from webhooks.delivery import DeliveryWorker, Limits
from webhooks.domain.model import DELIVERABLE_TOPICS
from webhooks.guard import Resolver, UrlGuard, system_resolver
from webhooks.service import WebhooksService
from webhooks.settings import Settings
from webhooks.store.mongo import LIFECYCLE, MongoWebhooksStore, ensure_indexes, unit_of_work

GROUP = "webhooks"
CONSUMES = (*DELIVERABLE_TOPICS, topics.USER_DELETED, topics.TENANT_DELETED)
"""Every topic endpoints receive, and the deletions this service erases on."""
PUBLISHES = (topics.USER_ERASED,)
BackgroundJob = Callable[[WorkerDeps, asyncio.Event], Coroutine[Any, Any, None]]


def webhooks_settings(deps: WorkerDeps) -> Settings:
    """The worker's settings as the webhooks service's own class."""
    if isinstance(deps.settings, Settings):
        return deps.settings
    return Settings.model_validate(deps.settings.model_dump())


def fan_out_handler(clock: Clock = utc_now) -> Callable[[WorkerDeps], BatchHandler]:
    """The consumer's handler over the Mongo store of the consumer's own transaction."""

    def build(deps: WorkerDeps) -> BatchHandler:
        def store_in(tx: Transaction) -> MongoWebhooksStore:
            return MongoWebhooksStore(tx.db, tx)

        return make_handler(store_in, clock)

    return build


def limits_of(settings: Settings) -> Limits:
    """The delivery worker's limits from the settings."""
    return Limits(
        concurrency=settings.concurrency,
        per_endpoint=settings.per_endpoint,
        per_tenant=settings.per_tenant,
        timeout_seconds=settings.timeout_seconds,
        retry_scale=settings.retry_scale,
        poll_seconds=settings.poll_seconds,
    )


def http_client(
    settings: Settings, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    """The client deliveries go out with: no redirects followed (a redirect could lead past
    the URL guard), no proxies from the environment, the attempt timeout."""
    return httpx.AsyncClient(
        transport=transport,
        timeout=settings.timeout_seconds,
        follow_redirects=False,
        trust_env=False,
        headers={"user-agent": "MandaAct-Webhooks/1.0"},
        limits=httpx.Limits(max_connections=settings.concurrency),
    )


def delivery_job(
    clock: Clock = utc_now,
    resolver: Resolver = system_resolver,
    transport: httpx.AsyncBaseTransport | None = None,
) -> BackgroundJob:
    """The worker's background job that sends due deliveries."""

    async def job(deps: WorkerDeps, stop: asyncio.Event) -> None:
        settings = webhooks_settings(deps)
        guard = UrlGuard(allow_private=settings.allow_private, resolver=resolver)
        async with http_client(settings, transport) as client:
            worker = DeliveryWorker(
                unit_of_work(deps.client, deps.db, settings.erasure_secret),
                guard,
                client,
                limits_of(settings),
                clock=clock,
            )
            await worker.run(stop)

    return job


def worker_spec(clock: Clock = utc_now) -> WorkerSpec:
    """Webhooks turns every topic's events into deliveries and sends them, and erases the users
    and tenants that are deleted."""
    return WorkerSpec(
        service="webhooks",
        consumers=(ConsumerSpec(GROUP, CONSUMES, fan_out_handler(clock)),),
        publishes=PUBLISHES,
        ensure_indexes=ensure_indexes,
        background=(delivery_job(clock),),
        lifecycle=LIFECYCLE,
    )


def mongo_service(
    settings: Settings, clock: Clock = utc_now, resolver: Resolver = system_resolver
) -> ServiceFactory:
    """A factory of the admin use cases over the process's MongoDB client."""
    guard = UrlGuard(allow_private=settings.allow_private, resolver=resolver)

    def factory(state: AppState) -> WebhooksService:
        uow = unit_of_work(state.client, state.db, settings.erasure_secret)
        return WebhooksService(uow, guard, clock=clock)

    return factory


def build_app(
    settings: Settings,
    client: AsyncMongoClient[Doc] | None = None,
    service_factory: ServiceFactory | None = None,
    clock: Clock = utc_now,
) -> FastAPI:
    """The webhooks HTTP app (tests pass their own client and clock, or a factory with fakes)."""
    return create_app(
        settings,
        title="MandaAct webhooks",
        routers=[router],
        events=worker_spec(clock),
        client=client,
        service_factory=service_factory or mongo_service(settings, clock),
    )
