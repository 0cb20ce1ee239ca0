"""The batch handler the idempotent consumer calls inside its transaction."""

from __future__ import annotations

from datetime import UTC, datetime

from gamification.service import apply_batch
from mandaact_common.consumer import BatchHandler, Inbound
from mandaact_common.outbox import Transaction
from mandaact_common.worker import WorkerDeps


def make_handler(_deps: WorkerDeps) -> BatchHandler:
    """Turn a batch of inbound events into the projection use case."""

    async def handle(tx: Transaction, items: list[Inbound]) -> None:
        await apply_batch(tx, items, datetime.now(UTC))

    return handle
