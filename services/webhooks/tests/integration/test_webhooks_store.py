"""The Mongo adapter with the real consumer: fan-out in the consumer's transaction, claims that
never hand one delivery to two workers, the delivery log newest first."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from mandaact_common.mongo import Doc
from mandaact_common.settings import DEV_ERASURE_KEY
from mandaact_common.testing import watched_client
from services.webhooks.tests.integration.conftest import Feed
from services.webhooks.tests.support import action_completed, resolver_of
from webhooks.delivery import DeliveryWorker, Limits
from webhooks.guard import UrlGuard
from webhooks.service import WebhooksService
from webhooks.store.mongo import DELIVERIES, MongoWebhooksStore, unit_of_work

pytestmark = pytest.mark.integration

GUARD = UrlGuard(allow_private=True, resolver=resolver_of({}))
KEY = DEV_ERASURE_KEY.encode()


async def test_events_become_deliveries_once_and_only_for_their_tenant(
    mongo_client: AsyncMongoClient[Doc], db: AsyncDatabase[Doc], feed: Feed
) -> None:
    service = WebhooksService(unit_of_work(mongo_client, db, KEY), GUARD)
    acme = await service.create("acme", "http://127.0.0.1:9/a", ["action.completed"], None)
    xp_only = await service.create("acme", "http://127.0.0.1:9/x", ["xp.awarded"], None)
    globex = await service.create("globex", "http://127.0.0.1:9/g", ["*"], None)
    event = action_completed("acme")
    await feed(event, action_completed("globex"))
    await feed(event)  # redelivered: the consumer and the delivery id both drop it
    assert [
        d.event_id for d in (await service.deliveries("acme", acme.id, status=None, limit=9)).items
    ] == [event.id]
    assert (await service.deliveries("acme", xp_only.id, status=None, limit=9)).items == []
    [other] = (await service.deliveries("globex", globex.id, status=None, limit=9)).items
    assert other.tenant_id == "globex"
    assert await db[DELIVERIES].count_documents({}) == 2


async def test_two_workers_never_send_one_delivery_twice(
    mongo_client: AsyncMongoClient[Doc], db: AsyncDatabase[Doc], feed: Feed
) -> None:
    sent: Counter[str] = Counter()

    async def handler(request: httpx.Request) -> httpx.Response:
        sent[request.headers["webhook-id"]] += 1
        await asyncio.sleep(0.01)
        return httpx.Response(200)

    uow = unit_of_work(mongo_client, db, KEY)
    service = WebhooksService(uow, GUARD)
    endpoint = await service.create("acme", "http://127.0.0.1:9/a", ["*"], None)
    events = [action_completed() for _ in range(12)]
    await feed(*events)
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        limits = Limits(concurrency=8, per_endpoint=4)
        workers = [DeliveryWorker(uow, GUARD, client, limits) for _ in range(2)]
        while sum(sent.values()) < len(events):
            await asyncio.gather(*(w.claim_and_start() for w in workers))
            await asyncio.gather(*(w.drain() for w in workers))
    assert sent == Counter({e.id: 1 for e in events})
    page = await service.deliveries("acme", endpoint.id, status="succeeded", limit=5)
    assert len(page.items) == 5
    rest = await service.deliveries(
        "acme", endpoint.id, status="succeeded", limit=50, after=page.next_cursor
    )
    assert len(page.items) + len(rest.items) == len(events)
    assert not {d.id for d in page.items} & {d.id for d in rest.items}


async def test_deleting_an_endpoint_removes_its_log(
    mongo_client: AsyncMongoClient[Doc], db: AsyncDatabase[Doc], feed: Feed
) -> None:
    service = WebhooksService(unit_of_work(mongo_client, db, KEY), GUARD)
    endpoint = await service.create("acme", "http://127.0.0.1:9/a", ["*"], None)
    await feed(action_completed())
    await service.delete("acme", endpoint.id)
    assert await db[DELIVERIES].count_documents({"endpoint_id": endpoint.id}) == 0


async def test_log_and_endpoint_pages_read_by_the_index_not_a_scan_of_every_tenant(
    mongo_client: AsyncMongoClient[Doc], db: AsyncDatabase[Doc], feed: Feed, infra: Any
) -> None:
    """Pages after a cursor are index reads: the server used here answers the usual `$or`
    keyset filter by scanning every tenant's deliveries."""
    service = WebhooksService(unit_of_work(mongo_client, db, KEY), GUARD)
    endpoints = [await service.create("acme", f"http://127.0.0.1:9/{n}", ["*"], None) for n in "ab"]
    await feed(*(action_completed("acme") for _ in range(5)))
    async with watched_client(infra.mongodb_url) as (client, plans):
        watched = WebhooksService(unit_of_work(client, client[db.name], KEY), GUARD)
        first = await watched.list("acme", limit=1)
        rest = await watched.list("acme", limit=5, after=first.next_cursor)
        assert [e.id for e in first.items + rest.items] == [e.id for e in endpoints]
        for status in (None, "pending"):
            page = await watched.deliveries("acme", endpoints[0].id, status=status, limit=2)
            more = await watched.deliveries(
                "acme", endpoints[0].id, status=status, limit=9, after=page.next_cursor
            )
            assert len(page.items) + len(more.items) == 5
            stamps = [d.created_at for d in page.items + more.items]
            assert stamps == sorted(stamps, reverse=True)
        assert await plans.scans(client) == []


async def test_a_claim_passes_over_a_busy_endpoints_backlog_by_index_reads(
    mongo_client: AsyncMongoClient[Doc], db: AsyncDatabase[Doc], feed: Feed, infra: Any
) -> None:
    """A busy endpoint's 60 due deliveries (more than a page) do not hide another endpoint's
    one behind them, and the claim reads by the `due` index: a `$nin` of the busy endpoints
    in the query would make the server used here scan every tenant's deliveries per claim."""
    service = WebhooksService(unit_of_work(mongo_client, db, KEY), GUARD)
    busy = await service.create("acme", "http://127.0.0.1:9/busy", ["*"], None)
    await feed(*(action_completed("acme") for _ in range(60)))
    other = await service.create("acme", "http://127.0.0.1:9/other", ["*"], None)
    await feed(action_completed("acme"))
    async with watched_client(infra.mongodb_url) as (client, plans):
        store = MongoWebhooksStore(client[db.name], None, KEY)
        now = datetime.now(UTC) + timedelta(minutes=1)
        claimed = await store.claim_due(now, "t1", now + timedelta(minutes=5), skip={busy.id})
        assert claimed is not None
        assert claimed.endpoint_id == other.id
        again = await store.claim_due(now, "t2", now + timedelta(minutes=5), skip={busy.id})
        assert again is None, "the other endpoint's only delivery is claimed already"
        first = await store.claim_due(now, "t3", now + timedelta(minutes=5))
        assert first is not None
        assert first.endpoint_id == busy.id
        assert await plans.scans(client) == []
