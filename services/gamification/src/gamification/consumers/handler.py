"""The batch handler the idempotent consumer calls inside its transaction (thin).

It hands the batch to the projection use case, over the store of the consumer's transaction (so
the facts, the ledger entries, the outbox rows and the processed-event ids commit together).
Bootstrap wires what it needs; nothing here knows which adapter that is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gamification.service import GamificationService
from gamification.store.ports import GamificationStore
from mandaact_common.consumer import BatchHandler, Inbound
from mandaact_common.outbox import Transaction


@dataclass(frozen=True, slots=True)
class HandlerDeps:
    """What the handler needs: the use cases and the store inside a consumer's transaction."""

    service: GamificationService
    store_in: Callable[[Transaction], GamificationStore]


def make_handler(deps: HandlerDeps) -> BatchHandler:
    """Turn a batch of inbound events into the projection use case."""

    async def handle(tx: Transaction, items: list[Inbound]) -> None:
        await deps.service.apply_batch(deps.store_in(tx), items)

    return handle
