"""The port the use cases need: a transactional store of endpoints and deliveries."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Protocol

from mandaact_common import unit_of_work
from mandaact_contracts.events import EventPayload
from webhooks.domain.model import Delivery, Endpoint, PageCursor, Status


class WebhooksStore(Protocol):
    """What one unit of work reads and writes; every read is scoped to a tenant."""

    async def count_endpoints(self, tenant_id: str) -> int:
        """How many endpoints the tenant has."""
        ...

    async def endpoint(self, tenant_id: str, endpoint_id: str) -> Endpoint | None:
        """The tenant's endpoint, or None."""
        ...

    async def endpoints(
        self, tenant_id: str, *, limit: int, after: PageCursor | None = None
    ) -> list[Endpoint]:
        """At most `limit` of the tenant's endpoints, oldest first, starting after `after`."""
        ...

    async def save_endpoint(self, endpoint: Endpoint) -> None:
        """Store the endpoint (new or changed)."""
        ...

    async def delete_endpoint(self, tenant_id: str, endpoint_id: str) -> bool:
        """Remove the endpoint and its deliveries; False if there was none."""
        ...

    async def subscribed(self, tenant_id: str, event_types: Collection[str]) -> list[Endpoint]:
        """The tenant's enabled endpoints subscribed to any of these event types (or to "*")."""
        ...

    async def add_deliveries(self, deliveries: Sequence[Delivery]) -> None:
        """Store the deliveries that are not stored yet (a repeated event adds nothing)."""
        ...

    async def delivery(self, tenant_id: str, endpoint_id: str, delivery_id: str) -> Delivery | None:
        """One delivery of the tenant's endpoint, or None."""
        ...

    async def deliveries(
        self,
        tenant_id: str,
        endpoint_id: str,
        *,
        status: Status | None,
        limit: int,
        after: PageCursor | None = None,
    ) -> list[Delivery]:
        """At most `limit` deliveries of the endpoint, newest first, starting after `after`."""
        ...

    async def save_delivery(self, delivery: Delivery, *, held_by: str | None) -> bool:
        """Store the delivery if the stored one is still held by `held_by` (None: by nobody
        or anybody, an admin's change); False if another worker holds it now."""
        ...

    async def claim_due(
        self,
        now: datetime,
        token: str,
        lease_until: datetime,
        *,
        skip: Collection[str] = (),
        skip_tenants: Collection[str] = (),
    ) -> Delivery | None:
        """Atomically take the most overdue pending delivery (of an endpoint not in `skip`, of a
        tenant not in `skip_tenants`): it is held by `token` and not due again until
        `lease_until`."""
        ...

    async def erased(self, tenant_id: str, user_id: str | None) -> bool:
        """Whether the tenant, or this user of it, was erased (SPEC §9): nothing of theirs is
        sent any more, and their deliveries are about to go."""
        ...

    def emit(self, topic: str, payload: EventPayload, subject: str | None = None) -> None:
        """Record an event, written with this unit of work's changes (webhooks emits none)."""
        ...


UnitOfWork = unit_of_work.UnitOfWork[WebhooksStore]
"""Runs work against a WebhooksStore: atomically or read-only."""
