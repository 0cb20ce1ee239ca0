"""The batch handler the idempotent consumer calls inside its transaction (thin).

It hands the batch's events to the fold use case, over the store of the consumer's own
transaction, in which the consumer has already recorded the event ids.
"""

from __future__ import annotations

from collections.abc import Callable

from mandaact_common.consumer import BatchHandler, Inbound
from mandaact_common.outbox import Transaction
from reports.service import fold_batch
from reports.store.ports import ReportsStore

StoreIn = Callable[[Transaction], ReportsStore]
"""The store inside a transaction the consumer opened."""


def make_handler(store_in: StoreIn) -> BatchHandler:
    """Turn a batch of inbound events into one fold of the facts."""

    async def handle(tx: Transaction, items: list[Inbound]) -> None:
        await fold_batch(store_in(tx), [item.payload for item in items])

    return handle
