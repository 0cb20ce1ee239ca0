"""An in-memory adapter of the store ports, for fast unit tests of the use cases."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from mandaact_common import unit_of_work
from mandaact_common.keys import sub_key
from notifications.domain.model import CheckinChange, Owner, UserState
from notifications.domain.records import Grid, Sent, SentCursor, Timer
from notifications.store.ports import GridKey, SlotKey


@dataclass
class Tables(unit_of_work.MemoryTables):
    """What the in-memory store holds."""

    users: dict[Owner, UserState] = field(default_factory=dict)
    grids: dict[GridKey, Grid] = field(default_factory=dict)
    slots: dict[SlotKey, CheckinChange] = field(default_factory=dict)
    timers: dict[str, Timer] = field(default_factory=dict)
    sent: dict[str, Sent] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    erased: set[Owner] = field(default_factory=set)
    """Users with a tombstone (a tenant's erasure: every user of it)."""


class InMemoryNotificationsStore(unit_of_work.InMemoryStore[Tables]):
    """The NotificationsStore port over dictionaries (a private copy per unit of work)."""

    async def users(self, owners: Collection[Owner]) -> dict[Owner, UserState]:
        """The stored state of these users."""
        return {o: self.tables.users[o] for o in owners if o in self.tables.users}

    async def save_users(self, states: Sequence[UserState]) -> None:
        """Store these users' states."""
        for state in states:
            self.tables.users[state.owner] = state

    async def grid_versions(self, keys: Collection[GridKey]) -> dict[GridKey, int]:
        """The stored version of each of these grids."""
        return {k: self.tables.grids[k].version for k in keys if k in self.tables.grids}

    async def save_grids(self, grids: Sequence[Grid]) -> None:
        """Store these grids."""
        for grid in grids:
            self.tables.grids[(grid.owner.tenant_id, grid.id)] = grid

    async def slot_seqs(self, keys: Collection[SlotKey]) -> dict[SlotKey, int]:
        """The stored `seq` of each of these slots."""
        return {k: self.tables.slots[k].seq for k in keys if k in self.tables.slots}

    async def save_slots(self, changes: Sequence[CheckinChange]) -> None:
        """Store these slots."""
        for change in changes:
            self.tables.slots[(change.owner, change.action_id, change.local_date)] = change

    async def live_grids(self, owner: Owner) -> list[Grid]:
        """The user's grids whose actions are due."""
        return [g for g in self.tables.grids.values() if g.owner == owner and g.on_checklist]

    async def done_dates(
        self, owner: Owner, *, since: date, until: date, missions: Collection[str]
    ) -> dict[str, set[date]]:
        """Check-in dates per action from `since` to `until`, and any date of `missions`."""
        done: dict[str, set[date]] = {}
        for (who, action, day), slot in self.tables.slots.items():
            wanted = since <= day or action in missions
            if who == owner and slot.done and day <= until and wanted:
                done.setdefault(action, set()).add(day)
        return done

    async def latest_checkin(self, owner: Owner) -> date | None:
        """The user's latest local date with a check-in."""
        days = [d for (who, _, d), s in self.tables.slots.items() if who == owner and s.done]
        return max(days) if days else None

    async def erased(self, owner: Owner) -> bool:
        """Whether the user was erased."""
        return owner in self.tables.erased

    async def timer(self, key: str) -> Timer | None:
        """The timer row with this id."""
        return self.tables.timers.get(key)

    async def timers(self, keys: Collection[str]) -> dict[str, Timer]:
        """The timer rows with these ids."""
        return {k: self.tables.timers[k] for k in keys if k in self.tables.timers}

    async def save_timers(self, timers: Sequence[Timer]) -> None:
        """Store these rows."""
        for timer in timers:
            self.tables.timers[timer.key] = timer

    async def delete_timers(self, keys: Collection[str]) -> None:
        """Remove these rows."""
        for key in keys:
            self.tables.timers.pop(key, None)

    async def was_sent(self, dedupe_key: str) -> bool:
        """Whether a notification with this dedupe key exists."""
        return dedupe_key in self.tables.sent

    async def sent_on(self, owner: Owner, day: date) -> int:
        """How many notifications the user got for a local date."""
        return self.tables.counts.get(sub_key(owner.key, day.isoformat()), 0)

    async def save_sent(self, sent: Sent) -> None:
        """Store the notification and count it."""
        if sent.dedupe_key in self.tables.sent:
            raise KeyError(f"duplicate notification {sent.dedupe_key}")
        self.tables.sent[sent.dedupe_key] = sent
        count_key = sub_key(sent.owner.key, sent.local_date.isoformat())
        self.tables.counts[count_key] = self.tables.counts.get(count_key, 0) + 1

    async def sent_page(self, owner: Owner, *, limit: int, after: SentCursor | None) -> list[Sent]:
        """The user's notifications, newest first, after `after`."""
        mine = sorted(
            (s for s in self.tables.sent.values() if s.owner == owner),
            key=lambda s: (s.created_at, s.id),
            reverse=True,
        )
        if after is not None:
            mine = [s for s in mine if (s.created_at, s.id) < (after.created_at, after.id)]
        return mine[:limit]


class InMemoryUnitOfWork(unit_of_work.InMemoryUnitOfWork[Tables, InMemoryNotificationsStore]):
    """The notifications unit of work in memory."""

    def __init__(self, tables: Tables | None = None) -> None:
        super().__init__(tables or Tables(), InMemoryNotificationsStore)


class InMemoryTimerLeases:
    """The TimerLeases port over the unit of work's tables."""

    def __init__(self, uow: InMemoryUnitOfWork) -> None:
        self._uow = uow

    async def claim_due(self, now: datetime, lease: timedelta, limit: int, token: str) -> list[str]:
        """Claim up to `limit` rows due by `now` whose lease is free."""
        timers = self._uow.tables.timers
        due = sorted(
            (t for t in timers.values() if t.fire_at <= now and t.lease_until <= now),
            key=lambda t: t.fire_at,
        )[:limit]
        for timer in due:
            timers[timer.key] = dataclasses.replace(
                timer, lease_until=now + lease, lease_token=token
            )
        return [t.key for t in due]
