"""The batch handler the idempotent consumer calls inside its transaction (thin).

It hands the batch's events to the fold use case, over the store of the consumer's own
transaction, in which the consumer has already recorded the event ids, with the time of the
fold (a report whose fold changes is rewritten once the fold has been quiet for `settle`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from mandaact_common.clock import Clock
from mandaact_common.consumer import BatchHandler, Inbound
from mandaact_common.outbox import Transaction
from reports.service import fold_batch
from reports.store.ports import ReportsStore

StoreIn = Callable[[Transaction], ReportsStore]
"""The store inside a transaction the consumer opened."""


def make_handler(store_in: StoreIn, clock: Clock, settle: timedelta) -> BatchHandler:
    """Turn a batch of inbound events into one fold of the facts."""

    async def handle(tx: Transaction, items: list[Inbound]) -> None:
        payloads = [item.payload for item in items]
        await fold_batch(store_in(tx), payloads, now=clock(), settle=settle)

    return handle
