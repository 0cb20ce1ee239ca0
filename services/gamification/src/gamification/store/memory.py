"""An in-memory adapter of the store port, for fast unit tests of the use cases.

Values go in and come out as they are stored by MongoDB: the kept fold through its plain-data
state, so a unit test exercises the same round trip as the real adapter.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from gamification.domain.progress import BoardDelta, KeySum, LedgerEntry, Period, UserProgress
from gamification.domain.streaks import TenantRepair
from gamification.domain.user_fold import Fact, GridFact, UserFold, digest
from gamification.store.ports import BoardRow, Standings
from mandaact_common.domain.owner import Owner
from mandaact_common.errors import Conflict
from mandaact_common.unit_of_work import InMemoryStore, InMemoryUnitOfWork, MemoryTables

BoardKey = tuple[str, Period, str, str]
"""A leaderboard row's identity: tenant, period, window, user."""


@dataclass
class Tables(MemoryTables):
    """Progress by owner, archived facts by id, ledger entries by id, leaderboard rows."""

    progress: dict[Owner, UserProgress] = field(default_factory=dict)
    facts: dict[tuple[Owner, str], Fact] = field(default_factory=dict)
    ledger: dict[str, LedgerEntry] = field(default_factory=dict)
    boards: dict[BoardKey, int] = field(default_factory=dict)
    repairs: dict[str, TenantRepair] = field(default_factory=dict)
    repairs_pending: dict[str, str | None] = field(default_factory=dict)


def _stored(progress: UserProgress, with_fold: bool) -> UserProgress:
    fold = progress.fold
    kept = UserFold.from_state(fold.to_state()) if fold is not None and with_fold else None
    return dataclasses.replace(
        progress,
        fold=kept,
        levels_reached=set(progress.levels_reached),
        badges=dict(progress.badges),
        reusable=dict(progress.reusable),
        windows=None if progress.windows is None else dict(progress.windows),
    )


def _fact_id(fact: Fact) -> str:
    if isinstance(fact, GridFact):
        return f"grid|{fact.grid_id}|{fact.version}"
    return f"checkin|{fact.action_id}|{fact.local_date}|{fact.seq}|{digest(fact)}"


class InMemoryGamificationStore(InMemoryStore[Tables]):
    """The GamificationStore port over dictionaries."""

    async def progress_of(
        self, owners: Collection[Owner], *, with_fold: bool = True
    ) -> dict[Owner, UserProgress]:
        """The stored progress of these users (absent ones left out)."""
        found = self.tables.progress
        return {o: _stored(found[o], with_fold) for o in owners if o in found}

    async def save_progress(self, progress: Sequence[UserProgress]) -> None:
        """Replace the users' progress."""
        for p in progress:
            self.tables.progress[p.owner] = _stored(p, with_fold=True)

    async def archive(self, facts: Sequence[tuple[Owner, Fact]]) -> None:
        """Keep the facts not kept yet."""
        for owner, fact in facts:
            self.tables.facts.setdefault((owner, _fact_id(fact)), fact)

    async def archived(self, owner: Owner) -> list[Fact]:
        """Every archived fact of the user."""
        return [f for (o, _), f in self.tables.facts.items() if o == owner]

    async def all_key_sums(self, owner: Owner) -> dict[str, KeySum]:
        """What the ledger holds for every key of the user."""
        return {key: s for (o, key), s in self._sums().items() if o == owner}

    def _sums(self) -> dict[tuple[Owner, str], KeySum]:
        out: dict[tuple[Owner, str], KeySum] = {}
        for e in self.tables.ledger.values():
            held = out.get((e.owner, e.key))
            total, count = (held.total, held.count) if held else (0, 0)
            by_date = dict(held.by_date) if held else {}
            by_date[e.local_date] = by_date.get(e.local_date, 0) + e.amount
            out[(e.owner, e.key)] = KeySum(
                total + e.amount, count + 1, e.reason, e.action_id, e.local_date, e.badge, by_date
            )
        return out

    async def insert_ledger(self, entries: Sequence[LedgerEntry]) -> None:
        """Append entries; an id or (owner, key, n) already stored is a conflict."""
        taken = {(e.owner, e.key, e.n) for e in self.tables.ledger.values()}
        for entry in entries:
            if entry.id in self.tables.ledger or (entry.owner, entry.key, entry.n) in taken:
                raise Conflict(f"ledger entry {entry.id} is already stored")
            taken.add((entry.owner, entry.key, entry.n))
            self.tables.ledger[entry.id] = entry

    async def add_to_boards(self, deltas: Sequence[BoardDelta]) -> None:
        """Add XP to the users' rows of their windows (all time is the users' `xp_total`)."""
        for d in deltas:
            if d.period == "all":
                continue
            key = (d.owner.tenant_id, d.period, d.window, d.owner.user_id)
            self.tables.boards[key] = self.tables.boards.get(key, 0) + d.xp

    async def streaks_due(self, now: datetime, limit: int) -> list[UserProgress]:
        """Users whose streak decision time has come, soonest first."""
        due = [
            p
            for p in self.tables.progress.values()
            if p.streak_fire_at is not None and p.streak_fire_at <= now
        ]
        due.sort(key=lambda p: (p.streak_fire_at, p.owner.key))
        return [_stored(p, with_fold=False) for p in due[:limit]]

    async def mark_streaks(self, progress: Sequence[UserProgress]) -> None:
        """Store the told streak and the next decision time."""
        for p in progress:
            held = self.tables.progress[p.owner]
            self.tables.progress[p.owner] = dataclasses.replace(
                held, streak_told=p.streak_told, streak_fire_at=p.streak_fire_at
            )

    async def repairs_of(
        self, tenant_ids: Collection[str], users: Collection[Owner] | None = None
    ) -> dict[str, list[TenantRepair]]:
        """The tenants' repairs (each with every user it lists: `users` narrows nothing here)."""
        out: dict[str, list[TenantRepair]] = {}
        for repair in self.tables.repairs.values():
            if repair.tenant_id in tenant_ids:
                out.setdefault(repair.tenant_id, []).append(repair)
        return out

    async def add_repair(self, repair: TenantRepair, now: datetime) -> TenantRepair:
        """Keep the repair (once) and mark it to be applied."""
        held = self.tables.repairs.get(repair.id)
        if held is not None:
            return held
        self.tables.repairs[repair.id] = repair
        self.tables.repairs_pending[repair.id] = None
        return repair

    async def pending_repair(self) -> tuple[TenantRepair, str | None] | None:
        """The first repair still to apply."""
        for repair_id, last in self.tables.repairs_pending.items():
            return self.tables.repairs[repair_id], last
        return None

    async def tenant_users(
        self, tenant_id: str, after: str | None, limit: int
    ) -> list[UserProgress]:
        """The tenant's users after `after`, by user id."""
        users = sorted(
            (p for o, p in self.tables.progress.items() if o.tenant_id == tenant_id),
            key=lambda p: p.owner.user_id,
        )
        return [_stored(p, True) for p in users if after is None or p.owner.user_id > after][:limit]

    async def repair_applied(self, repair: TenantRepair, last: str | None) -> None:
        """Note the progress of the repair, or drop it from the pending ones."""
        if last is None:
            self.tables.repairs_pending.pop(repair.id, None)
        else:
            self.tables.repairs_pending[repair.id] = last

    async def ledger_page(self, owner: Owner, limit: int, before: int | None) -> list[LedgerEntry]:
        """A user's ledger entries, newest first."""
        mine = [
            e
            for e in self.tables.ledger.values()
            if e.owner == owner and (before is None or e.ord < before)
        ]
        return sorted(mine, key=lambda e: e.ord, reverse=True)[:limit]

    def _window(self, tenant_id: str, period: Period, window: str) -> list[BoardRow]:
        if period == "all":
            everyone = [
                BoardRow(o.user_id, p.xp_total)
                for o, p in self.tables.progress.items()
                if o.tenant_id == tenant_id
            ]
            return sorted(everyone, key=lambda r: (-r.xp, r.user_id))
        rows = [
            BoardRow(user, xp)
            for (tenant, p, w, user), xp in self.tables.boards.items()
            if (tenant, p, w) == (tenant_id, period, window)
        ]
        return sorted(rows, key=lambda r: (-r.xp, r.user_id))

    async def standings(self, owner: Owner, period: Period, window: str, limit: int) -> Standings:
        """Every row of the window sorted; the top `limit` and the caller's place in them."""
        ranked = [r for r in self._window(owner.tenant_id, period, window) if r.xp > 0]
        place = next((i for i, r in enumerate(ranked) if r.user_id == owner.user_id), None)
        if period == "all":
            progress = self.tables.progress.get(owner)
            mine = BoardRow(owner.user_id, progress.xp_total) if progress else None
        else:
            xp = self.tables.boards.get((owner.tenant_id, period, window, owner.user_id))
            mine = None if xp is None else BoardRow(owner.user_id, xp)
        return Standings(ranked[:limit], mine, place)


def in_memory_unit_of_work(
    tables: Tables | None = None,
) -> InMemoryUnitOfWork[Tables, InMemoryGamificationStore]:
    """A unit of work over in-memory tables (fresh ones unless given)."""
    return InMemoryUnitOfWork(tables or Tables(), InMemoryGamificationStore)
