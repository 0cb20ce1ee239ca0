"""An in-memory adapter of the store port, for fast unit tests of the use cases."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from mandaact_common import unit_of_work
from webhooks.domain.model import Delivery, Endpoint, PageCursor, Status


@dataclass
class Tables(unit_of_work.MemoryTables):
    """Everything the in-memory store holds."""

    endpoints: dict[str, Endpoint] = field(default_factory=dict)
    deliveries: dict[str, Delivery] = field(default_factory=dict)
    erased: set[tuple[str, str | None]] = field(default_factory=set)
    """Tombstones: (tenant, user), or (tenant, None) for a whole tenant."""


class InMemoryWebhooksStore(unit_of_work.InMemoryStore[Tables]):
    """The WebhooksStore port over dictionaries (a private copy per unit of work)."""

    async def count_endpoints(self, tenant_id: str) -> int:
        """How many endpoints the tenant has."""
        return sum(1 for e in self.tables.endpoints.values() if e.tenant_id == tenant_id)

    async def endpoint(self, tenant_id: str, endpoint_id: str) -> Endpoint | None:
        """The tenant's endpoint, or None."""
        found = self.tables.endpoints.get(endpoint_id)
        return found if found is not None and found.tenant_id == tenant_id else None

    async def endpoints(
        self, tenant_id: str, *, limit: int, after: PageCursor | None = None
    ) -> list[Endpoint]:
        """The tenant's endpoints by (created_at, id)."""
        mine = sorted(
            (e for e in self.tables.endpoints.values() if e.tenant_id == tenant_id),
            key=lambda e: (e.created_at, e.id),
        )
        if after is not None:
            mine = [e for e in mine if (e.created_at, e.id) > (after.at, after.id)]
        return mine[:limit]

    async def save_endpoint(self, endpoint: Endpoint) -> None:
        """Store the endpoint."""
        self.tables.endpoints[endpoint.id] = endpoint

    async def delete_endpoint(self, tenant_id: str, endpoint_id: str) -> bool:
        """Remove the endpoint and its deliveries."""
        if await self.endpoint(tenant_id, endpoint_id) is None:
            return False
        del self.tables.endpoints[endpoint_id]
        for key in [k for k, d in self.tables.deliveries.items() if d.endpoint_id == endpoint_id]:
            del self.tables.deliveries[key]
        return True

    async def subscribed(self, tenant_id: str, event_types: Collection[str]) -> list[Endpoint]:
        """The tenant's enabled endpoints wanting any of the event types."""
        return [
            e
            for e in self.tables.endpoints.values()
            if e.tenant_id == tenant_id and e.enabled and any(e.wants(t) for t in event_types)
        ]

    async def add_deliveries(self, deliveries: Sequence[Delivery]) -> None:
        """Store the deliveries not stored yet."""
        for d in deliveries:
            self.tables.deliveries.setdefault(d.id, d)

    async def delivery(self, tenant_id: str, endpoint_id: str, delivery_id: str) -> Delivery | None:
        """One delivery of the tenant's endpoint."""
        found = self.tables.deliveries.get(delivery_id)
        if found is None or found.tenant_id != tenant_id or found.endpoint_id != endpoint_id:
            return None
        return found

    async def deliveries(
        self,
        tenant_id: str,
        endpoint_id: str,
        *,
        status: Status | None,
        limit: int,
        after: PageCursor | None = None,
    ) -> list[Delivery]:
        """The endpoint's deliveries, newest first."""
        mine = sorted(
            (
                d
                for d in self.tables.deliveries.values()
                if d.tenant_id == tenant_id
                and d.endpoint_id == endpoint_id
                and (status is None or d.status == status)
            ),
            key=lambda d: (d.created_at, d.id),
            reverse=True,
        )
        if after is not None:
            mine = [d for d in mine if (d.created_at, d.id) < (after.at, after.id)]
        return mine[:limit]

    async def save_delivery(self, delivery: Delivery, *, held_by: str | None) -> bool:
        """Store the delivery if still held by `held_by`."""
        stored = self.tables.deliveries.get(delivery.id)
        if stored is None or (held_by is not None and stored.claim != held_by):
            return False
        self.tables.deliveries[delivery.id] = delivery
        return True

    async def erased(self, tenant_id: str, user_id: str | None) -> bool:
        """Whether the tenant, or this user of it, has a tombstone."""
        tombstones = self.tables.erased
        return (tenant_id, None) in tombstones or (
            user_id is not None and (tenant_id, user_id) in tombstones
        )

    async def claim_due(
        self,
        now: datetime,
        token: str,
        lease_until: datetime,
        *,
        skip: Collection[str] = (),
        skip_tenants: Collection[str] = (),
    ) -> Delivery | None:
        """Take the most overdue pending delivery of an endpoint not skipped."""
        due = [
            d
            for d in self.tables.deliveries.values()
            if d.status == "pending"
            and d.next_attempt_at <= now
            and d.endpoint_id not in skip
            and d.tenant_id not in skip_tenants
        ]
        if not due:
            return None
        first = min(due, key=lambda d: (d.next_attempt_at, d.id))
        held = first.claimed(token, lease_until)
        self.tables.deliveries[first.id] = held
        return held


def unit_of_work_over(
    tables: Tables | None = None,
) -> unit_of_work.InMemoryUnitOfWork[Tables, InMemoryWebhooksStore]:
    """An in-memory unit of work over fresh (or the given) tables."""
    return unit_of_work.InMemoryUnitOfWork(tables or Tables(), InMemoryWebhooksStore)
