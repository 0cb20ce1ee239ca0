"""The batch handler the idempotent consumer calls inside its transaction (thin).

It turns every consumed event into a `TenantEvent` and hands the batch to `fan_out`; the
consumer has already recorded the event ids in the same transaction, so the deliveries and the
processed ids commit together.
"""

from __future__ import annotations

from collections.abc import Callable

from mandaact_common.clock import Clock
from mandaact_common.consumer import BatchHandler, Inbound
from mandaact_common.outbox import Transaction
from webhooks.service import TenantEvent, fan_out
from webhooks.store.ports import WebhooksStore

StoreIn = Callable[[Transaction], WebhooksStore]
"""The store inside the consumer's transaction (bootstrap says which adapter)."""


def make_handler(store_in: StoreIn, clock: Clock) -> BatchHandler:
    """Turn a batch of inbound events into deliveries for their tenants' endpoints."""

    async def handle(tx: Transaction, items: list[Inbound]) -> None:
        events = [TenantEvent(item.record.topic, item.envelope) for item in items]
        await fan_out(store_in(tx), events, clock())

    return handle
