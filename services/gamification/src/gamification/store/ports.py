"""The ports the use cases need: the per-user state documents, the ledger, and the API's reads.

A user's state is one document filed under their owner key: the facts the fold needs (grids'
actions, check-in changes, ledger sums per key) and the progress projection the API reads.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final, Protocol

from mandaact_common.mongo import Doc
from mandaact_common.outbox import Transaction
from mandaact_common.unit_of_work import UnitOfWork
from mandaact_contracts.events import EventPayload

PROGRESS_FIELDS: Final = (
    "_id",
    "tenant_id",
    "user_id",
    "timezone",
    "xp_total",
    "level",
    "streak_current",
    "streak_longest",
    "last_active_date",
    "perfect_days",
    "badges",
    "xp_by_week",
)
"""The fields of a user's state that are the projection (what the reads return)."""


class GamificationStore(Protocol):
    """What one unit of work reads and writes; documents are filed under owner keys."""

    async def states(self, keys: Iterable[str]) -> dict[str, Doc]:
        """The state documents of these users (missing ones are absent)."""
        ...

    async def save_states(self, docs: Sequence[Doc]) -> None:
        """Replace (or insert) whole state documents."""
        ...

    async def insert_ledger(self, docs: Sequence[Doc]) -> None:
        """Append ledger entries."""
        ...

    async def progress(self, key: str) -> Doc | None:
        """One user's progress projection, or None before their first event."""
        ...

    async def ledger_page(self, key: str, limit: int, before: int | None) -> list[Doc]:
        """A user's ledger entries, newest first, older than the entry `before` if given."""
        ...

    async def leaderboard(self, tenant_id: str, week: str | None, limit: int) -> list[Doc]:
        """The tenant's users with XP (in the ISO week, or all time), most first, ties by id."""
        ...

    def emit(self, topic: str, payload: EventPayload, subject: str | None = None) -> None:
        """Record an event, written with this unit of work's changes."""
        ...


class GamificationUnitOfWork(UnitOfWork[GamificationStore], Protocol):
    """The unit of work of the use cases, and the store inside the consumer's transaction."""

    def store_in(self, tx: Transaction, /) -> GamificationStore:
        """The store inside a transaction the idempotent consumer opened."""
        ...
