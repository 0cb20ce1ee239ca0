"""SSRF rules: refused URLs never reach the network, at registration and at every try.

The resolver is injected and the HTTP transport fails the test if it is ever called, so nothing
leaves the machine even if the guard were broken.
"""

from __future__ import annotations

import httpx
import pytest

from mandaact_contracts import topics
from services.webhooks.tests.support import (
    NOW,
    action_completed,
    forbidden_transport,
    resolver_of,
)
from webhooks.delivery import DeliveryWorker, Limits
from webhooks.domain.errors import UrlRefused
from webhooks.domain.model import Endpoint
from webhooks.guard import UrlGuard
from webhooks.service import TenantEvent, WebhooksService, fan_out
from webhooks.store.memory import unit_of_work_over
from webhooks.store.ports import WebhooksStore

pytestmark = pytest.mark.unit

NAMES = {
    "loopback.example": ["127.0.0.1"],
    "intranet.example": ["10.1.2.3"],
    "mixed.example": ["93.184.216.34", "192.168.1.10"],
    "metadata.example": ["169.254.169.254"],
    "v6-loopback.example": ["::1"],
    "public.example": ["93.184.216.34"],
}

REFUSED = [
    "http://169.254.169.254/",
    "https://169.254.169.254/latest/meta-data/",
    "https://10.0.0.1/",
    "https://loopback.example/hook",
    "https://intranet.example/hook",
    "https://mixed.example/hook",  # every address must pass, not just one
    "https://metadata.example/",
    "https://v6-loopback.example/",
    "https://[::1]/",
    "https://[::ffff:127.0.0.1]/",
    "https://224.0.0.1/",
    "https://0.0.0.0/",
    "http://public.example/",  # plain http only in local/test mode
    "ftp://public.example/",
    "https://user:pw@public.example/",
    "https://nowhere.example/",  # does not resolve
]


def production_service() -> WebhooksService:
    guard = UrlGuard(allow_private=False, resolver=resolver_of(NAMES))
    return WebhooksService(unit_of_work_over(), guard, clock=lambda: NOW)


@pytest.mark.parametrize("url", REFUSED)
async def test_production_refuses_the_url_at_registration(url: str) -> None:
    with pytest.raises(UrlRefused):
        await production_service().create("acme", url, ["*"], None)


async def test_production_accepts_a_public_https_url() -> None:
    created = await production_service().create("acme", "https://public.example/h", ["*"], None)
    assert created.url == "https://public.example/h"
    assert created.enabled


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:9/hook", "http://loopback.example/hook", "http://10.0.0.1/"]
)
async def test_local_mode_allows_private_addresses_and_http(url: str) -> None:
    guard = UrlGuard(allow_private=True, resolver=resolver_of(NAMES))
    checked = await guard.check(url)
    assert checked.target.url == url


async def test_a_host_that_resolves_to_a_private_address_later_is_refused_at_the_try() -> None:
    # Registered while it resolved to a public address; by the try it resolves to loopback.
    names = dict(NAMES)
    uow = unit_of_work_over()
    guard = UrlGuard(allow_private=False, resolver=resolver_of(names))
    service = WebhooksService(uow, guard, clock=lambda: NOW)
    endpoint = await service.create("acme", "https://public.example/hook", ["*"], None)
    names["public.example"] = ["127.0.0.1"]

    async def deliver(store: WebhooksStore) -> int:
        return await fan_out(
            store,
            [TenantEvent(topics.ACTION_COMPLETED, action_completed())],
            NOW,
        )

    await uow.run(deliver)
    async with httpx.AsyncClient(transport=forbidden_transport()) as client:
        worker = DeliveryWorker(uow, guard, client, Limits(), clock=lambda: NOW)
        assert await worker.claim_and_start() == 1
        await worker.drain()
    page = await service.deliveries("acme", endpoint.id, status=None, limit=10)
    [delivery] = page.items
    [attempt] = delivery.attempts
    assert attempt.status_code is None
    assert attempt.error is not None
    assert "loopback" in attempt.error
    assert delivery.status == "pending"  # retried later, like any failed try


@pytest.mark.parametrize(
    "url", ["https://10.0.0.1/", "http://169.254.169.254/", "https://loopback.example/"]
)
async def test_a_stored_url_that_production_refuses_is_never_sent(url: str) -> None:
    # An endpoint stored in local mode (or by hand) must still not be sent in production.
    uow = unit_of_work_over()
    endpoint = Endpoint(
        tenant_id="acme",
        id="e1",
        url=url,
        event_types=("*",),
        secret="whsec_" + "A" * 44,
        description=None,
        enabled=True,
        created_at=NOW,
        updated_at=NOW,
    )

    async def seed(store: WebhooksStore) -> None:
        await store.save_endpoint(endpoint)
        await fan_out(
            store,
            [TenantEvent(topics.ACTION_COMPLETED, action_completed())],
            NOW,
        )

    await uow.run(seed)
    guard = UrlGuard(allow_private=False, resolver=resolver_of(NAMES))
    async with httpx.AsyncClient(transport=forbidden_transport()) as client:
        worker = DeliveryWorker(uow, guard, client, Limits(), clock=lambda: NOW)
        await worker.claim_and_start()
        await worker.drain()
    [delivery] = uow.tables.deliveries.values()
    assert delivery.attempts[-1].status_code is None


async def test_a_try_connects_to_the_checked_address_with_the_host_name_kept() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    uow = unit_of_work_over()
    guard = UrlGuard(allow_private=False, resolver=resolver_of(NAMES))
    service = WebhooksService(uow, guard, clock=lambda: NOW)
    await service.create("acme", "https://public.example:8443/hook?x=1", ["*"], None)

    async def deliver(store: WebhooksStore) -> int:
        return await fan_out(
            store,
            [TenantEvent(topics.ACTION_COMPLETED, action_completed())],
            NOW,
        )

    await uow.run(deliver)
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        worker = DeliveryWorker(uow, guard, client, Limits(), clock=lambda: NOW)
        await worker.claim_and_start()
        await worker.drain()
    [request] = seen
    assert request.url.host == "93.184.216.34"
    assert request.url.port == 8443
    assert request.url.path == "/hook"
    assert request.url.query == b"x=1"
    assert request.headers["host"] == "public.example:8443"
    assert request.extensions["sni_hostname"] == "public.example"


async def test_a_host_that_cannot_even_be_looked_up_is_a_refusal_not_a_crash() -> None:
    async def idna_failure(host: str, port: int) -> list[str]:
        raise UnicodeError("label empty or too long")

    guard = UrlGuard(allow_private=False, resolver=idna_failure)
    with pytest.raises(UrlRefused, match="does not resolve"):
        await guard.check("https://a..b/")
