"""Deliveries over the in-memory store and a mock transport: signature, body, retries, the
schedule, auto-disable, tenant isolation, and a dead endpoint that delays nobody else."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from mandaact_contracts import topics
from mandaact_contracts.envelope import Envelope
from services.webhooks.tests.support import NOW, World, action_completed
from webhooks.delivery import Limits
from webhooks.domain.model import MAX_TRIES, RETRY_SCHEDULE
from webhooks.domain.signature import signature
from webhooks.service import EndpointChange, TenantEvent, fan_out
from webhooks.store.ports import WebhooksStore

pytestmark = pytest.mark.unit


async def publish(world: World, *envelopes: Envelope, topic: str = topics.ACTION_COMPLETED) -> None:
    async def work(store: WebhooksStore) -> int:
        events = [TenantEvent(topic, e) for e in envelopes]
        return await fan_out(store, events, world.clock())

    await world.uow.run(work)


async def run_due(world: World) -> int:
    started = await world.worker.claim_and_start()
    await world.worker.drain()
    return started


def test_the_signature_is_the_standard_webhooks_one() -> None:
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = '{"test": 2432232314}'
    # The example of the Standard Webhooks specification's test suite.
    assert (
        signature(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
        == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    )


async def test_a_delivery_is_a_signed_cloudevent_that_verifies() -> None:
    seen: list[httpx.Request] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, text="thanks")

    world = World(handler)
    world.clock.now = datetime.now(UTC)  # the reference verifier checks the timestamp
    endpoint = await world.service.create(
        "acme", "http://127.0.0.1:9/h", ["action.completed"], None
    )
    event = action_completed()
    await publish(world, event)
    assert await run_due(world) == 1
    [request] = seen
    body = request.content.decode()
    headers = dict(request.headers)
    # Verified with the reference implementation and the secret shown at creation.
    document = Webhook(endpoint.secret).verify(body, headers)
    assert headers["webhook-id"] == event.id
    assert headers["webhook-signature"] == signature(
        endpoint.secret, event.id, int(headers["webhook-timestamp"]), body
    )
    assert document["specversion"] == "1.0"
    assert document["id"] == event.id
    assert document["type"] == "mandaact.action.completed.v1"
    assert document["tenantid"] == "acme"
    assert document["datacontenttype"] == "application/json"
    assert document["data"] == event.data
    [delivery] = (await world.service.deliveries("acme", endpoint.id, status=None, limit=5)).items
    assert delivery.status == "succeeded"
    assert delivery.attempts[0].response == "thanks"


async def test_500_twice_then_200_makes_three_attempts_and_one_success() -> None:
    answers = iter([500, 500, 200])

    async def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(next(answers), text="boom" * 1000)

    world = World(handler)
    endpoint = await world.service.create("acme", "http://127.0.0.1:9/h", ["*"], None)
    await publish(world, action_completed())
    assert await run_due(world) == 1
    assert await run_due(world) == 0  # not due before the first wait of the schedule
    world.clock.advance(RETRY_SCHEDULE[0])
    assert await run_due(world) == 1
    world.clock.advance(RETRY_SCHEDULE[1] - timedelta(seconds=1))
    assert await run_due(world) == 0
    world.clock.advance(timedelta(seconds=1))
    assert await run_due(world) == 1
    [delivery] = (await world.service.deliveries("acme", endpoint.id, status=None, limit=5)).items
    assert delivery.status == "succeeded"
    assert [a.status_code for a in delivery.attempts] == [500, 500, 200]
    assert len(delivery.attempts[0].response) == 1024  # the first 1 KiB of the answer
    assert (await world.service.get("acme", endpoint.id)).failing_since is None


async def test_after_the_whole_schedule_the_delivery_failed_and_a_manual_retry_tries_once() -> None:
    tries = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal tries
        tries += 1
        return httpx.Response(503)

    world = World(handler)
    endpoint = await world.service.create("acme", "http://127.0.0.1:9/h", ["*"], None)
    await publish(world, action_completed())
    for wait in (timedelta(0), *RETRY_SCHEDULE):
        world.clock.advance(wait)
        assert await run_due(world) == 1
    world.clock.advance(timedelta(days=1))
    assert await run_due(world) == 0
    assert tries == MAX_TRIES == 8
    [failed] = (await world.service.deliveries("acme", endpoint.id, status="failed", limit=5)).items
    assert failed.tries == 8
    assert (
        await world.service.deliveries("acme", endpoint.id, status="pending", limit=5)
    ).items == []

    await world.service.retry("acme", endpoint.id, failed.id)
    assert await run_due(world) == 1
    [again] = (await world.service.deliveries("acme", endpoint.id, status="failed", limit=5)).items
    assert again.tries == 9
    assert tries == 9


async def test_the_retry_scale_shrinks_the_schedule() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500)

    world = World(handler, limits=Limits(retry_scale=0.001))
    await world.service.create("acme", "http://127.0.0.1:9/h", ["*"], None)
    await publish(world, action_completed())
    await run_due(world)
    world.clock.advance(timedelta(milliseconds=5))
    assert await run_due(world) == 1


async def test_an_endpoint_failing_for_five_days_is_disabled() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500)

    world = World(handler)
    endpoint = await world.service.create("acme", "http://127.0.0.1:9/h", ["*"], None)
    await publish(world, action_completed())
    await run_due(world)
    assert (await world.service.get("acme", endpoint.id)).failing_since == NOW
    world.clock.advance(timedelta(days=4, hours=23))
    await publish(world, action_completed())
    await run_due(world)
    assert (await world.service.get("acme", endpoint.id)).enabled
    world.clock.advance(timedelta(hours=1))
    await publish(world, action_completed())
    await run_due(world)
    disabled = await world.service.get("acme", endpoint.id)
    assert not disabled.enabled
    assert disabled.disabled_reason is not None
    # Its pending deliveries fail without a try when due; it gets no new ones.
    world.clock.advance(timedelta(days=1))
    while await run_due(world):
        pass
    log = await world.service.deliveries("acme", endpoint.id, status=None, limit=50)
    assert {d.status for d in log.items} == {"failed"}
    assert log.items[0].attempts[-1].error == "the endpoint is disabled"
    await publish(world, action_completed())
    assert (
        len((await world.service.deliveries("acme", endpoint.id, status=None, limit=50)).items) == 3
    )
    # Enabling it again forgets the failures.
    enabled = await world.service.update("acme", endpoint.id, EndpointChange(enabled=True))
    assert enabled.enabled
    assert enabled.failing_since is None


async def test_a_tenant_sees_only_its_own_events_and_the_types_it_subscribed() -> None:
    seen: list[str] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.url.path}:{json.loads(request.content)['tenantid']}")
        return httpx.Response(200)

    world = World(handler)
    await world.service.create("acme", "http://127.0.0.1:9/acme", ["*"], None)
    await world.service.create("globex", "http://127.0.0.1:9/globex", ["action.completed"], None)
    await world.service.create("globex", "http://127.0.0.1:9/xp", ["xp.awarded"], None)
    event = action_completed("acme")
    await publish(world, event, action_completed("globex"))
    await publish(world, event)  # a redelivered event makes no second delivery
    await run_due(world)
    assert sorted(seen) == ["/acme:acme", "/globex:globex"]


async def test_a_dead_endpoint_does_not_delay_another() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/dead":
            await asyncio.sleep(30)  # never answers within the timeout
        return httpx.Response(200)

    world = World(handler, limits=Limits(concurrency=4, per_endpoint=2, timeout_seconds=2))
    dead = await world.service.create("acme", "http://127.0.0.1:9/dead", ["*"], None)
    alive = await world.service.create("acme", "http://127.0.0.1:9/alive", ["*"], None)
    await world.service.delete("acme", alive.id)
    await publish(world, *[action_completed() for _ in range(20)])
    alive = await world.service.create("acme", "http://127.0.0.1:9/alive", ["*"], None)
    await publish(world, action_completed())
    started = time.monotonic()
    assert await world.worker.claim_and_start() == 3  # 2 of the dead endpoint, then the live one
    while True:
        page = await world.service.deliveries("acme", alive.id, status="succeeded", limit=5)
        if page.items:
            break
        assert time.monotonic() - started < 1.0, "the live endpoint waited for the dead one"
        await asyncio.sleep(0.01)
    await world.worker.drain()
    dead_log = await world.service.deliveries("acme", dead.id, status=None, limit=50)
    timed_out = [d for d in dead_log.items if d.attempts]
    assert len(timed_out) == 2
    assert all("no answer within 2 s" in (d.attempts[0].error or "") for d in timed_out)


async def test_a_tenant_with_dead_endpoints_does_not_take_every_slot() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/dead"):
            await asyncio.sleep(30)
        return httpx.Response(200)

    limits = Limits(concurrency=6, per_endpoint=2, per_tenant=4, timeout_seconds=2)
    world = World(handler, limits=limits)
    for n in range(4):
        await world.service.create("acme", f"http://127.0.0.1:9/dead{n}", ["*"], None)
    await publish(world, *[action_completed("acme") for _ in range(5)])
    other = await world.service.create("globex", "http://127.0.0.1:9/alive", ["*"], None)
    await publish(world, action_completed("globex"))
    # 4 of acme's dead ones (its tenant limit), then globex's, though acme's are older.
    assert await world.worker.claim_and_start() == 5
    await asyncio.sleep(0.05)
    page = await world.service.deliveries("globex", other.id, status="succeeded", limit=5)
    assert len(page.items) == 1
    await world.worker.drain()


async def test_a_delivery_of_an_erased_user_or_tenant_is_never_sent_again() -> None:
    sent: list[str] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.headers["webhook-id"])
        return httpx.Response(500)

    world = World(handler)
    await world.service.create("acme", "http://127.0.0.1:9/a", ["*"], None)
    await world.service.create("globex", "http://127.0.0.1:9/g", ["*"], None)
    alice, bob, carol = (
        action_completed("acme", "alice"),
        action_completed("acme", "bob"),
        action_completed("globex", "carol"),
    )
    await publish(world, alice, bob, carol)
    assert await run_due(world) == 3  # every one fails once: all three retry
    # The tombstones are there, the erasure jobs have not run yet (their grace period).
    world.uow.tables.erased |= {("acme", "alice"), ("globex", None)}
    sent.clear()
    world.clock.now += RETRY_SCHEDULE[0]

    assert await run_due(world) == 3
    assert sent == [bob.id]
    left = {d.user_id: d for d in world.uow.tables.deliveries.values()}
    assert (left["alice"].status, left["carol"].status) == ("failed", "failed")
    assert left["alice"].attempts[-1].error == "its user or tenant was erased"
    assert left["bob"].status == "pending"
    world.clock.now += RETRY_SCHEDULE[1]
    await run_due(world)
    assert sent == [bob.id, bob.id]
