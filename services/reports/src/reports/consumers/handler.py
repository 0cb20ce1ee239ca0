"""The batch handler the idempotent consumer calls inside its transaction."""

from __future__ import annotations

from mandaact_common.consumer import BatchHandler, Inbound
from mandaact_common.outbox import Transaction
from mandaact_common.worker import WorkerDeps
from reports.service import apply_batch


def make_handler(_deps: WorkerDeps) -> BatchHandler:
    """Turn a batch of inbound events into the fold use case."""

    async def handle(tx: Transaction, items: list[Inbound]) -> None:
        await apply_batch(tx, items)

    return handle
