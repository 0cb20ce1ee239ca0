"""Use cases of the webhooks service: the admin's endpoints and delivery log, and the fan-out
of a tenant's events into deliveries (run in the consumer's transaction)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from mandaact_common.clock import Clock, NewId, new_uuid, utc_now
from mandaact_common.errors import InvalidInput
from mandaact_contracts.envelope import Envelope
from webhooks.domain.errors import (
    AlreadySucceeded,
    TooManyEndpoints,
    UnknownDelivery,
    UnknownEndpoint,
)
from webhooks.domain.model import (
    DELIVERABLE_TOPICS,
    MAX_ENDPOINTS_PER_TENANT,
    TEST_CE_TYPE,
    TEST_EVENT_TYPE,
    Delivery,
    Endpoint,
    PageCursor,
    Status,
    event_types_fault,
    new_delivery,
    new_secret,
)
from webhooks.guard import UrlGuard
from webhooks.store.ports import UnitOfWork, WebhooksStore

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """A page of a list and where the next one starts (None: this was the last)."""

    items: list[T]
    next_cursor: PageCursor | None


def endpoint_page(items: list[Endpoint], limit: int) -> Page[Endpoint]:
    """The page, with a cursor when a further item was fetched."""
    if len(items) <= limit:
        return Page(items, None)
    last = items[limit - 1]
    return Page(items[:limit], PageCursor(last.created_at, last.id))


def delivery_page(items: list[Delivery], limit: int) -> Page[Delivery]:
    """The page, with a cursor when a further item was fetched."""
    if len(items) <= limit:
        return Page(items, None)
    last = items[limit - 1]
    return Page(items[:limit], PageCursor(last.created_at, last.id))


@dataclass(frozen=True, slots=True)
class EndpointChange:
    """What an admin's PATCH changes (None: unchanged)."""

    url: str | None = None
    event_types: Sequence[str] | None = None
    enabled: bool | None = None
    description: str | None = None


class WebhooksService:
    """The tenant admin's use cases."""

    def __init__(
        self,
        uow: UnitOfWork,
        guard: UrlGuard,
        *,
        clock: Clock = utc_now,
        new_id: NewId = new_uuid,
    ) -> None:
        self._uow = uow
        self._guard = guard
        self._clock = clock
        self._new_id = new_id

    async def _checked(self, url: str) -> str:
        await self._guard.check(url)
        return url

    @staticmethod
    def _checked_types(event_types: Sequence[str]) -> tuple[str, ...]:
        fault = event_types_fault(event_types, DELIVERABLE_TOPICS)
        if fault is not None:
            raise InvalidInput("event_types", fault)
        return tuple(event_types)

    async def create(
        self, tenant_id: str, url: str, event_types: Sequence[str], description: str | None
    ) -> Endpoint:
        """Register an endpoint (its URL checked, DNS included); the secret is made here."""
        types = self._checked_types(event_types)
        await self._checked(url)
        now = self._clock()
        endpoint = Endpoint(
            tenant_id=tenant_id,
            id=self._new_id(),
            url=url,
            event_types=types,
            secret=new_secret(),
            description=description,
            enabled=True,
            created_at=now,
            updated_at=now,
        )

        async def work(store: WebhooksStore) -> Endpoint:
            if await store.count_endpoints(tenant_id) >= MAX_ENDPOINTS_PER_TENANT:
                raise TooManyEndpoints(MAX_ENDPOINTS_PER_TENANT)
            await store.save_endpoint(endpoint)
            return endpoint

        return await self._uow.run(work)

    async def get(self, tenant_id: str, endpoint_id: str) -> Endpoint:
        """The tenant's endpoint; 404 otherwise."""

        async def work(store: WebhooksStore) -> Endpoint:
            found = await store.endpoint(tenant_id, endpoint_id)
            if found is None:
                raise UnknownEndpoint()
            return found

        return await self._uow.read(work)

    async def list(
        self, tenant_id: str, *, limit: int, after: PageCursor | None = None
    ) -> Page[Endpoint]:
        """A page of the tenant's endpoints, oldest first."""

        async def work(store: WebhooksStore) -> list[Endpoint]:
            return await store.endpoints(tenant_id, limit=limit + 1, after=after)

        return endpoint_page(await self._uow.read(work), limit)

    async def update(self, tenant_id: str, endpoint_id: str, change: EndpointChange) -> Endpoint:
        """Change an endpoint's URL, event types, description or enabled flag."""
        types = self._checked_types(change.event_types) if change.event_types is not None else None
        if change.url is not None:
            await self._checked(change.url)
        now = self._clock()

        async def work(store: WebhooksStore) -> Endpoint:
            found = await store.endpoint(tenant_id, endpoint_id)
            if found is None:
                raise UnknownEndpoint()
            changed = found.changed(
                now,
                url=change.url,
                event_types=types,
                enabled=change.enabled,
                description=change.description,
            )
            await store.save_endpoint(changed)
            return changed

        return await self._uow.run(work)

    async def delete(self, tenant_id: str, endpoint_id: str) -> None:
        """Remove an endpoint and its delivery log; 404 if there is none."""

        async def work(store: WebhooksStore) -> None:
            if not await store.delete_endpoint(tenant_id, endpoint_id):
                raise UnknownEndpoint()

        await self._uow.run(work)

    async def deliveries(
        self,
        tenant_id: str,
        endpoint_id: str,
        *,
        status: Status | None,
        limit: int,
        after: PageCursor | None = None,
    ) -> Page[Delivery]:
        """A page of the endpoint's deliveries, newest first, with their attempts."""

        async def work(store: WebhooksStore) -> list[Delivery]:
            if await store.endpoint(tenant_id, endpoint_id) is None:
                raise UnknownEndpoint()
            return await store.deliveries(
                tenant_id, endpoint_id, status=status, limit=limit + 1, after=after
            )

        return delivery_page(await self._uow.read(work), limit)

    async def retry(self, tenant_id: str, endpoint_id: str, delivery_id: str) -> Delivery:
        """Make a pending or failed delivery due now (a failed one gets one more try)."""
        now = self._clock()

        async def work(store: WebhooksStore) -> Delivery:
            if await store.endpoint(tenant_id, endpoint_id) is None:
                raise UnknownEndpoint()
            found = await store.delivery(tenant_id, endpoint_id, delivery_id)
            if found is None:
                raise UnknownDelivery()
            if found.status == "succeeded":
                raise AlreadySucceeded()
            reopened = found.reopened(now)
            await store.save_delivery(reopened, held_by=None)
            return reopened

        return await self._uow.run(work)

    async def ping(self, tenant_id: str, endpoint_id: str) -> Delivery:
        """Queue a test event (`mandaact.webhook.test.v1`) to the endpoint, even if disabled."""
        now = self._clock()

        async def work(store: WebhooksStore) -> Delivery:
            endpoint = await store.endpoint(tenant_id, endpoint_id)
            if endpoint is None:
                raise UnknownEndpoint()
            envelope = Envelope(
                id=self._new_id(),
                source="webhooks",
                type=TEST_CE_TYPE,
                time=now,
                subject=f"webhooks/{endpoint_id}",
                tenant_id=tenant_id,
                data={"tenant_id": tenant_id, "endpoint_id": endpoint_id, "test": True},
            )
            delivery = new_delivery(endpoint, envelope, TEST_EVENT_TYPE, now)
            await store.add_deliveries([delivery])
            return delivery

        return await self._uow.run(work)


@dataclass(frozen=True, slots=True)
class TenantEvent:
    """One consumed event and its topic."""

    topic: str
    envelope: Envelope


async def fan_out(store: WebhooksStore, events: Sequence[TenantEvent], now: datetime) -> int:
    """One delivery per (event, enabled endpoint of the event's tenant that wants it); only the
    tenant's own endpoints are read. Returns how many deliveries were made (repeats included)."""
    by_tenant: dict[str, list[TenantEvent]] = defaultdict(list)
    for event in events:
        by_tenant[event.envelope.tenant_id].append(event)
    made: list[Delivery] = []
    for tenant_id, mine in by_tenant.items():
        endpoints = await store.subscribed(tenant_id, {e.topic for e in mine})
        for event in mine:
            made.extend(
                new_delivery(endpoint, event.envelope, event.topic, now)
                for endpoint in endpoints
                if endpoint.wants(event.topic)
            )
    await store.add_deliveries(made)
    return len(made)
