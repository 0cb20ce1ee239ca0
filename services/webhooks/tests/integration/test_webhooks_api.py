"""The admin API on the real app and database: lifespan, indexes, paging with stored times."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from pymongo import AsyncMongoClient

from mandaact_common.mongo import Doc
from mandaact_common.testing import auth_header
from services.webhooks.tests.integration.conftest import Feed
from services.webhooks.tests.support import action_completed
from webhooks.bootstrap import build_app
from webhooks.settings import Settings

pytestmark = pytest.mark.integration

BASE = "/v1/admin/webhooks"
ADMIN = auth_header("acme", "root", roles=["admin"])


@pytest.fixture
async def http(
    webhooks_settings: Settings, mongo_client: AsyncMongoClient[Doc]
) -> AsyncIterator[httpx.AsyncClient]:
    settings = webhooks_settings.model_copy(update={"allow_private": True})
    app = build_app(settings, client=mongo_client)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://webhooks") as client:
            yield client


async def test_an_admin_manages_endpoints_and_pages_through_the_log(
    http: httpx.AsyncClient, feed: Feed
) -> None:
    created = await http.post(
        BASE, json={"url": "http://127.0.0.1:9/in", "event_types": ["*"]}, headers=ADMIN
    )
    assert created.status_code == 201, created.text
    endpoint = created.json()["id"]
    events = [action_completed("acme") for _ in range(5)]
    for event in events:
        await feed(event)
    seen: list[str] = []
    times: list[str] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = await http.get(f"{BASE}/{endpoint}/deliveries", params=params, headers=ADMIN)
        assert page.status_code == 200, page.text
        seen += [d["event_id"] for d in page.json()["items"]]
        times += [d["created_at"] for d in page.json()["items"]]
        cursor = page.json()["next"]
        if cursor is None:
            break
    # Every delivery once, newest first (events fed in the same millisecond tie on time).
    assert sorted(seen) == sorted(e.id for e in events)
    assert times == sorted(times, reverse=True)
    patched = await http.patch(f"{BASE}/{endpoint}", json={"enabled": False}, headers=ADMIN)
    assert patched.json()["enabled"] is False
    assert patched.json()["disabled_reason"] == "disabled by an admin"
    listed = await http.get(BASE, headers=ADMIN)
    assert [e["id"] for e in listed.json()["items"]] == [endpoint]
    other = await http.get(BASE, headers=auth_header("globex", "root", roles=["admin"]))
    assert other.json()["items"] == []
