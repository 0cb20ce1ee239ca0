"""SPEC §9 on the real server: the export of a user, and the erasure of a user and of a tenant
through the real consumer, delivery worker and erasure jobs. A user's erasure removes their
deliveries (retrying ones too) and leaves the tenant's endpoints; a tenant's removes both."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from mandaact_common.lifecycle import Eraser
from mandaact_common.mongo import Doc
from mandaact_common.testing import (
    SettableClock,
    auth_header,
    documents_naming,
    drain_outbox,
    erasure_of,
)
from mandaact_contracts import topics
from services.webhooks.tests.integration.conftest import Feed
from services.webhooks.tests.support import action_completed, resolver_of
from webhooks.bootstrap import build_app
from webhooks.delivery import DeliveryWorker, Limits
from webhooks.guard import UrlGuard
from webhooks.service import WebhooksService
from webhooks.settings import Settings
from webhooks.store.mongo import DELIVERIES, ENDPOINTS, unit_of_work

pytestmark = pytest.mark.integration

Outbox = Callable[..., Awaitable[list[dict[str, Any]]]]
GUARD = UrlGuard(allow_private=True, resolver=resolver_of({}))

# Ids no other text contains, so `documents_naming` finds exactly their documents.
TENANT, OTHER_TENANT = "tn-erase-acme", "tn-keep-globex"
ALICE, BOB, CAROL = "us-erase-alice", "us-keep-bob", "us-keep-carol"


class Receivers:
    """Every endpoint answers 500 (so deliveries retry) and records whose events it got."""

    def __init__(self) -> None:
        self.users: list[str | None] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.users.append(json.loads(request.content)["data"].get("user_id"))
        return httpx.Response(500, text="try again")


class Harness:
    """The admin use cases and a delivery worker over the test database."""

    def __init__(self, client: AsyncMongoClient[Doc], db: AsyncDatabase[Doc], key: bytes):
        uow = unit_of_work(client, db, key)
        self.service = WebhooksService(uow, GUARD)
        self.clock = SettableClock(datetime.now(UTC))
        self.receivers = Receivers()
        self.http = httpx.AsyncClient(transport=httpx.MockTransport(self.receivers))
        self.worker = DeliveryWorker(uow, GUARD, self.http, Limits(), clock=self.clock)

    async def send_due(self, later: timedelta = timedelta(hours=1)) -> list[str | None]:
        """Move the worker's clock on and send what is due; whose events went out."""
        self.receivers.users.clear()
        self.clock.advance(later)
        while await self.worker.claim_and_start():
            await self.worker.drain()
        return sorted(self.receivers.users, key=str)


@pytest.fixture
async def harness(
    mongo_client: AsyncMongoClient[Doc], db: AsyncDatabase[Doc], webhooks_settings: Settings
) -> AsyncIterator[Harness]:
    made = Harness(mongo_client, db, webhooks_settings.erasure_secret)
    yield made
    await made.http.aclose()


async def world(harness: Harness, feed: Feed) -> None:
    """Two endpoints and a test ping in one tenant, one endpoint in another; Alice's, Bob's and
    Carol's events delivered once and failed: every delivery is retrying."""
    service = harness.service
    everything = await service.create(TENANT, "http://127.0.0.1:9/all", ["*"], None)
    await service.create(TENANT, "http://127.0.0.1:9/done", ["action.completed"], "check-ins")
    await service.create(OTHER_TENANT, "http://127.0.0.1:9/g", ["*"], None)
    await service.ping(TENANT, everything.id)
    await feed(
        action_completed(TENANT, ALICE),
        action_completed(TENANT, ALICE),
        action_completed(TENANT, BOB),
        action_completed(OTHER_TENANT, CAROL),
    )
    assert await harness.send_due(timedelta(minutes=1)) == [None, *[ALICE] * 4, BOB, BOB, CAROL]


async def test_a_users_deliveries_are_never_sent_again_and_are_erased(
    harness: Harness, feed: Feed, db: AsyncDatabase[Doc], eraser: Eraser, outbox: Outbox
) -> None:
    await world(harness, feed)
    alices = await documents_naming(db, ALICE)
    assert {name for name, _ in alices} == {DELIVERIES}
    assert len(alices) == 4  # two events, two endpoints
    assert {doc["status"] for _, doc in alices} == {"pending"}
    endpoints = await db[ENDPOINTS].find({}).sort("_id").to_list()

    await feed(erasure_of(TENANT, ALICE))
    # Before the erasure job runs (its grace period), none of Alice's is sent again.
    assert await harness.send_due() == [None, BOB, BOB, CAROL]
    kept = await documents_naming(db, BOB, OTHER_TENANT)
    ping = await db[DELIVERIES].find_one({"event_type": "webhook.test"})

    assert await eraser.run_due() == 1

    [erased] = await outbox(topics.USER_ERASED)
    assert (erased["payload"]["service"], erased["payload"]["scope"]) == ("webhooks", "user")
    assert (erased["payload"]["tenant_id"], erased["payload"]["user_id"]) == (TENANT, ALICE)
    assert [e["topic"] for e in await outbox()] == [topics.USER_ERASED]
    await drain_outbox(db)
    assert await documents_naming(db, ALICE) == []
    assert await documents_naming(db, BOB, OTHER_TENANT) == kept
    # The tenant's endpoints and its test ping are the tenant's: they stay as they were.
    assert await db[ENDPOINTS].find({}).sort("_id").to_list() == endpoints
    assert await db[DELIVERIES].find_one({"event_type": "webhook.test"}) == ping

    await feed(action_completed(TENANT, ALICE))  # late: dropped by the consumer
    assert await documents_naming(db, ALICE) == []
    assert ALICE not in await harness.send_due()
    assert await eraser.run_due() == 0


async def test_a_tenants_endpoints_and_deliveries_are_erased(
    harness: Harness,
    feed: Feed,
    db: AsyncDatabase[Doc],
    eraser: Eraser,
    outbox: Outbox,
    webhooks_settings: Settings,
    mongo_client: AsyncMongoClient[Doc],
) -> None:
    await world(harness, feed)
    kept = await documents_naming(db, OTHER_TENANT)

    await feed(erasure_of(TENANT))
    assert await eraser.run_due() == 1

    [erased] = await outbox(topics.USER_ERASED)
    assert (erased["payload"]["service"], erased["payload"]["scope"]) == ("webhooks", "tenant")
    assert [e["topic"] for e in await outbox()] == [topics.USER_ERASED]
    await drain_outbox(db)
    assert await documents_naming(db, TENANT) == []
    assert await documents_naming(db, OTHER_TENANT) == kept

    await feed(action_completed(TENANT, BOB))
    assert await harness.send_due() == [CAROL]
    assert await documents_naming(db, TENANT) == []
    app = build_app(webhooks_settings.model_copy(update={"allow_private": True}), mongo_client)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://webhooks") as http:
            admin = auth_header(TENANT, "root", roles=["admin"])
            body = {"url": "http://127.0.0.1:9/again", "event_types": ["*"]}
            again = await http.post("/v1/admin/webhooks", json=body, headers=admin)
    assert again.status_code == 410
    assert await documents_naming(db, TENANT) == []


async def test_the_export_holds_the_callers_deliveries_and_nobody_elses(
    harness: Harness,
    feed: Feed,
    webhooks_settings: Settings,
    mongo_client: AsyncMongoClient[Doc],
) -> None:
    await world(harness, feed)
    app = build_app(webhooks_settings, mongo_client)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://webhooks") as http:
            response = await http.get("/v1/me/export", headers=auth_header(TENANT, ALICE))
    assert response.status_code == 200
    body = response.json()
    assert (body["service"], body["tenant_id"], body["user_id"]) == ("webhooks", TENANT, ALICE)
    deliveries = body["collections"][DELIVERIES]
    assert len(deliveries) == 4
    assert {d["user_id"] for d in deliveries} == {ALICE}
    assert all(ALICE in d["body"] for d in deliveries)
    assert ENDPOINTS not in body["collections"]  # the tenant's, nobody's own
    assert "whsec_" not in response.text
    assert BOB not in response.text
    assert CAROL not in response.text
