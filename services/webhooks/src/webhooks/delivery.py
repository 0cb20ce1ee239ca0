"""The delivery worker: claims due deliveries, signs and POSTs them, records each attempt.

Isolation (SPEC §8: a slow or dead endpoint never delays another endpoint or tenant): at most
`per_endpoint` attempts of one endpoint and `per_tenant` of one tenant are in flight in a
process, and a claim skips the endpoints and tenants already at their limit, so a dead endpoint
holds `per_endpoint` of the `concurrency` global slots and a tenant `per_tenant`. Each attempt
ends within `timeout` seconds. A claim is one atomic update that moves the delivery's
`next_attempt_at` past a lease: several worker replicas never send one delivery at the same
time, and a delivery whose worker died is due again when the lease ends.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from prometheus_client import Counter as MetricCounter

from mandaact_common.clock import Clock, NewId, new_uuid, utc_now
from webhooks.domain.errors import UrlRefused
from webhooks.domain.model import TEST_EVENT_TYPE, Attempt, Delivery, Endpoint, response_excerpt
from webhooks.domain.signature import signed_headers
from webhooks.guard import Checked, UrlGuard
from webhooks.store.ports import UnitOfWork, WebhooksStore

log = logging.getLogger(__name__)

ATTEMPTS = MetricCounter(
    "mandaact_webhook_attempts_total", "Webhook delivery attempts by outcome", ["outcome"]
)
LEASE = timedelta(seconds=60)
"""How long a claimed delivery is held (far above the 10 s an attempt may take)."""


class Erased:
    """What a delivery of an erased user or tenant finds instead of its endpoint."""


ERASED = Erased()


@dataclass(frozen=True, slots=True)
class Limits:
    """How much runs at once, and how long an attempt may take."""

    concurrency: int = 64
    per_endpoint: int = 2
    per_tenant: int = 8
    timeout_seconds: float = 10.0
    retry_scale: float = 1.0
    poll_seconds: float = 1.0


def pinned_request(
    client: httpx.AsyncClient, checked: Checked, headers: dict[str, str], body: str
) -> httpx.Request:
    """The POST to the address that was checked (no second DNS lookup, so no rebinding),
    with the URL's host in `Host` and, over TLS, as the SNI name and certificate name."""
    url = httpx.URL(checked.target.url)
    extensions: dict[str, str] = {}
    if checked.target.literal is None:
        if url.scheme == "https":
            extensions["sni_hostname"] = checked.target.host
        headers = {**headers, "host": url.netloc.decode("ascii")}
        url = url.copy_with(host=str(checked.address))
    return client.build_request(
        "POST", url, content=body.encode(), headers=headers, extensions=extensions
    )


class DeliveryWorker:
    """Runs due deliveries until stopped."""

    def __init__(
        self,
        uow: UnitOfWork,
        guard: UrlGuard,
        client: httpx.AsyncClient,
        limits: Limits,
        *,
        clock: Clock = utc_now,
        new_id: NewId = new_uuid,
    ) -> None:
        self._uow = uow
        self._guard = guard
        self._client = client
        self._limits = limits
        self._clock = clock
        self._new_id = new_id
        self._in_flight: Counter[str] = Counter()
        self._tenant_in_flight: Counter[str] = Counter()
        self._slots = asyncio.Semaphore(limits.concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self._freed = asyncio.Event()

    def _busy(self) -> tuple[set[str], set[str]]:
        """The endpoints and the tenants at their limit of attempts in flight."""
        endpoints = {e for e, n in self._in_flight.items() if n >= self._limits.per_endpoint}
        tenants = {t for t, n in self._tenant_in_flight.items() if n >= self._limits.per_tenant}
        return endpoints, tenants

    async def _claim(self, token: str) -> Delivery | None:
        now = self._clock()
        endpoints, tenants = self._busy()

        async def take(store: WebhooksStore) -> Delivery | None:
            return await store.claim_due(
                now, token, now + LEASE, skip=endpoints, skip_tenants=tenants
            )

        # One atomic single-document update: no transaction needed.
        return await self._uow.read(take)

    async def claim_and_start(self) -> int:
        """Claim due deliveries while slots are free and start their attempts; how many."""
        started = 0
        while not self._slots.locked():
            token = self._new_id()
            delivery = await self._claim(token)
            if delivery is None:
                return started
            await self._slots.acquire()
            self._in_flight[delivery.endpoint_id] += 1
            self._tenant_in_flight[delivery.tenant_id] += 1
            task = asyncio.create_task(self._attempt(delivery, token))
            self._tasks.add(task)
            task.add_done_callback(self._done(delivery))
            started += 1
        return started

    def _done(self, delivery: Delivery) -> Callable[[asyncio.Task[None]], None]:
        def release(task: asyncio.Task[None]) -> None:
            self._tasks.discard(task)
            for counter, key in (
                (self._in_flight, delivery.endpoint_id),
                (self._tenant_in_flight, delivery.tenant_id),
            ):
                counter[key] -= 1
                if counter[key] <= 0:
                    del counter[key]
            self._slots.release()
            self._freed.set()
            if not task.cancelled() and task.exception() is not None:
                log.error("a delivery attempt failed to record", exc_info=task.exception())

        return release

    async def drain(self) -> None:
        """Wait for the attempts in flight."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def run(self, stop: asyncio.Event) -> None:
        """Claim and send until `stop` is set; an outage of the database is waited out."""
        while not stop.is_set():
            try:
                await self.claim_and_start()
            except Exception:  # the database is down or slow: wait, then try again
                log.warning("claiming due webhook deliveries failed; retrying", exc_info=True)
            self._freed.clear()
            waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._freed.wait())]
            await asyncio.wait(
                waits, timeout=self._limits.poll_seconds, return_when=asyncio.FIRST_COMPLETED
            )
            for w in waits:
                w.cancel()
        await self.drain()

    async def _endpoint_of(self, delivery: Delivery) -> Endpoint | Erased | None:
        async def work(store: WebhooksStore) -> Endpoint | Erased | None:
            if await store.erased(delivery.tenant_id, delivery.user_id):
                return ERASED
            return await store.endpoint(delivery.tenant_id, delivery.endpoint_id)

        return await self._uow.read(work)

    async def _attempt(self, delivery: Delivery, token: str) -> None:
        endpoint = await self._endpoint_of(delivery)
        if endpoint is None:
            return  # deleted with its deliveries meanwhile
        if isinstance(endpoint, Erased):
            # Its user (or tenant) was erased and the erasure job has not run yet: it is never
            # sent again, and it leaves the due ones now rather than when its lease ends.
            await self._record(
                delivery.abandoned(self._clock(), "its user or tenant was erased"), token, None
            )
            return
        if not endpoint.enabled and delivery.event_type != TEST_EVENT_TYPE:
            await self._record(
                delivery.abandoned(self._clock(), "the endpoint is disabled"), token, None
            )
            return
        attempt = await self.send(endpoint, delivery)
        ATTEMPTS.labels("success" if attempt.succeeded else "failure").inc()
        after = delivery.after(attempt, self._limits.retry_scale)
        await self._record(after, token, attempt)

    async def send(self, endpoint: Endpoint, delivery: Delivery) -> Attempt:
        """One signed POST of the delivery, its URL checked again after DNS."""
        started_at = self._clock()
        started = time.monotonic()

        def failed(error: str, status: int | None = None, response: str = "") -> Attempt:
            latency = int((time.monotonic() - started) * 1000)
            return Attempt(started_at, status, latency, response, error)

        try:
            checked = await self._guard.check(endpoint.url)
        except UrlRefused as e:
            return failed(e.reason)
        headers = signed_headers(
            endpoint.secret, delivery.event_id, int(started_at.timestamp()), delivery.body
        )
        try:
            request = pinned_request(self._client, checked, headers, delivery.body)
        except (httpx.InvalidURL, ValueError) as e:
            return failed(f"the URL cannot be sent to: {e}"[:500])
        try:
            async with asyncio.timeout(self._limits.timeout_seconds):
                response = await self._client.send(request, stream=True)
                try:
                    content = b""
                    async for chunk in response.aiter_bytes():
                        content += chunk
                        if len(content) >= 1024:
                            break
                finally:
                    await response.aclose()
        except TimeoutError:
            return failed(f"no answer within {self._limits.timeout_seconds:g} s")
        except httpx.HTTPError as e:
            return failed(f"{type(e).__name__}: {e}"[:500])
        latency = int((time.monotonic() - started) * 1000)
        excerpt = response_excerpt(content)
        error = None if 200 <= response.status_code < 300 else f"HTTP {response.status_code}"
        return Attempt(started_at, response.status_code, latency, excerpt, error)

    async def _record(self, after: Delivery, token: str, attempt: Attempt | None) -> None:
        async def work(store: WebhooksStore) -> None:
            if not await store.save_delivery(after, held_by=token):
                return  # the lease ended and another worker holds it now
            if attempt is None:
                return
            endpoint = await store.endpoint(after.tenant_id, after.endpoint_id)
            if endpoint is None:
                return
            now: datetime = attempt.at
            changed = (
                endpoint.after_success(now) if attempt.succeeded else endpoint.after_failure(now)
            )
            if changed != endpoint:
                await store.save_endpoint(changed)

        await self._uow.run(work)
