"""The ports the use cases need: user progress, the archive of facts, the ledger, leaderboards.

- progress: one small document per user (`UserProgress`: the kept fold and the projection);
- archive: every fact received (check-in changes, grid versions), append-only, read back only
  when a user's fold has to be rebuilt;
- ledger: the append-only XP entries, with their sums per line key;
- leaderboards: one row per (tenant, period, window, user), kept in step with the ledger.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from gamification.domain.progress import BoardDelta, KeySum, LedgerEntry, Period, UserProgress
from gamification.domain.streaks import TenantRepair
from gamification.domain.user_fold import Fact
from mandaact_common.domain.owner import Owner
from mandaact_common.outbox import Transaction
from mandaact_common.unit_of_work import UnitOfWork
from mandaact_contracts.events import EventPayload


@dataclass(frozen=True, slots=True)
class BoardRow:
    """One user's XP in one leaderboard window."""

    user_id: str
    xp: int


@dataclass(frozen=True, slots=True)
class Standings:
    """A window's top rows, and the caller's row with how many users rank before it."""

    top: list[BoardRow]
    mine: BoardRow | None
    ahead: int | None
    """Users with more XP than `mine`, or as much and a lower user id (None without a row)."""


class GamificationStore(Protocol):
    """What one unit of work reads and writes; every read is scoped to a tenant or an owner."""

    async def progress_of(
        self, owners: Collection[Owner], *, with_fold: bool = True
    ) -> dict[Owner, UserProgress]:
        """The stored progress of these users (absent ones left out); reads skip the fold."""
        ...

    async def save_progress(self, progress: Sequence[UserProgress]) -> None:
        """Store these users' progress (each replaces the stored one)."""
        ...

    async def archive(self, facts: Sequence[tuple[Owner, Fact]]) -> None:
        """Keep these facts (a fact already kept is kept once)."""
        ...

    async def archived(self, owner: Owner) -> list[Fact]:
        """Every fact kept for the user (for a rebuild of their fold)."""
        ...

    async def all_key_sums(self, owner: Owner) -> dict[str, KeySum]:
        """What the ledger holds for every line key of the user (for a rebuild)."""
        ...

    async def insert_ledger(self, entries: Sequence[LedgerEntry]) -> None:
        """Append ledger entries."""
        ...

    async def add_to_boards(self, deltas: Sequence[BoardDelta]) -> None:
        """Add XP to users' standings in leaderboard windows."""
        ...

    # -- streaks decided by the end of a day, and tenants' repairs --

    async def streaks_due(self, now: datetime, limit: int) -> list[UserProgress]:
        """Up to `limit` users whose streak is decided by a date that ended by `now` (no fold)."""
        ...

    async def mark_streaks(self, progress: Sequence[UserProgress]) -> None:
        """Store these users' told streak and next decision time (nothing else of them)."""
        ...

    async def repairs_of(
        self, tenant_ids: Collection[str], users: Collection[Owner] | None = None
    ) -> dict[str, list[TenantRepair]]:
        """Every streak repair of these tenants; with `users`, a repair for listed users names
        only those of `users` it lists (all a rule for them needs), else every user it lists."""
        ...

    async def add_repair(self, repair: TenantRepair, now: datetime) -> TenantRepair:
        """Store the repair, to be applied to the tenant's users; the stored one if it is."""
        ...

    async def pending_repair(self) -> tuple[TenantRepair, str | None] | None:
        """A repair not yet applied to every user of its tenant, and the last user it was."""
        ...

    async def tenant_users(
        self, tenant_id: str, after: str | None, limit: int
    ) -> list[UserProgress]:
        """The tenant's users by user id after `after` (with their folds)."""
        ...

    async def repair_applied(self, repair: TenantRepair, last: str | None) -> None:
        """Note how far the repair got (`last` user id), or that it is done (None)."""
        ...

    # -- reads for the API --

    async def ledger_page(self, owner: Owner, limit: int, before: int | None) -> list[LedgerEntry]:
        """A user's ledger entries, newest first, older than the entry `before` if given."""
        ...

    async def standings(self, owner: Owner, period: Period, window: str, limit: int) -> Standings:
        """The window's top `limit` users with XP above 0 (most first, ties by user id), and the
        caller's own row and rank in it."""
        ...

    def emit(self, topic: str, payload: EventPayload, subject: str | None = None) -> None:
        """Record an event, written with this unit of work's changes."""
        ...


class GamificationUnitOfWork(UnitOfWork[GamificationStore], Protocol):
    """The unit of work of the use cases, and the store inside the consumer's transaction."""

    def store_in(self, tx: Transaction, /) -> GamificationStore:
        """The store inside a transaction the idempotent consumer opened."""
        ...
