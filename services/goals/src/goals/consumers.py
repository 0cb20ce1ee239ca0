"""Goals' batch handler (thin): each service's `user.erased` answers a deletion record."""

from __future__ import annotations

from collections.abc import Callable

from goals.service import record_erasures
from goals.store.ports import GoalsStore
from mandaact_common.consumer import BatchHandler, Inbound
from mandaact_common.outbox import Transaction
from mandaact_contracts.events import UserErased

StoreIn = Callable[[Transaction], GoalsStore]
"""The store inside the consumer's transaction (bootstrap says which adapter)."""


def make_handler(store_in: StoreIn, erasure_key: bytes) -> BatchHandler:
    """Record a batch of `user.erased` answers in the deletion records."""

    async def handle(tx: Transaction, items: list[Inbound]) -> None:
        answers = [i.payload for i in items if isinstance(i.payload, UserErased)]
        if answers:
            await record_erasures(store_in(tx), answers, erasure_key=erasure_key)

    return handle
