"""The ports the use cases need: the transactional store and the timers' leases."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import date, datetime, timedelta
from typing import Protocol

from mandaact_common import unit_of_work
from mandaact_contracts.events import EventPayload
from notifications.domain.model import CheckinChange, Owner, UserState
from notifications.domain.records import Grid, Sent, SentCursor, Timer

GridKey = tuple[str, str]
"""A grid's identity: (tenant id, grid id)."""
SlotKey = tuple[Owner, str, date]
"""A check-in slot's identity: (user, action id, local date)."""


class NotificationsStore(Protocol):
    """What one unit of work reads and writes; every read is scoped to an owner."""

    # --- the read model ------------------------------------------------------------------------

    async def users(self, owners: Collection[Owner]) -> dict[Owner, UserState]:
        """The stored state of these users (absent ones are left out)."""
        ...

    async def save_users(self, states: Sequence[UserState]) -> None:
        """Store these users' states (replacing what was stored)."""
        ...

    async def grid_versions(self, keys: Collection[GridKey]) -> dict[GridKey, int]:
        """The stored version of each of these grids (absent ones are left out)."""
        ...

    async def save_grids(self, grids: Sequence[Grid]) -> None:
        """Store these grids (each newer than what is stored)."""
        ...

    async def slot_seqs(self, keys: Collection[SlotKey]) -> dict[SlotKey, int]:
        """The stored `seq` of each of these check-in slots (absent ones are left out)."""
        ...

    async def save_slots(self, changes: Sequence[CheckinChange]) -> None:
        """Store these check-in slots (each newer than what is stored)."""
        ...

    async def live_grids(self, owner: Owner) -> list[Grid]:
        """The user's grids whose actions are due (active, not deleted)."""
        ...

    async def done_dates(
        self, owner: Owner, *, since: date, until: date, missions: Collection[str]
    ) -> dict[str, set[date]]:
        """Check-in dates per action from `since` to `until`, and any date of `missions`."""
        ...

    async def latest_checkin(self, owner: Owner) -> date | None:
        """The user's latest local date with a check-in (of the slots kept)."""
        ...

    async def erased(self, owner: Owner) -> bool:
        """Whether the user (or their tenant) was erased (SPEC §9): nothing is sent to them,
        and their documents are about to go."""
        ...

    # --- timers and sent notifications ---------------------------------------------------------

    async def timer(self, key: str) -> Timer | None:
        """The timer row with this id."""
        ...

    async def timers(self, keys: Collection[str]) -> dict[str, Timer]:
        """The timer rows with these ids (absent ones are left out)."""
        ...

    async def save_timers(self, timers: Sequence[Timer]) -> None:
        """Store these rows, keeping the lease of a row claimed meanwhile unless given."""
        ...

    async def delete_timers(self, keys: Collection[str]) -> None:
        """Remove these rows."""
        ...

    async def was_sent(self, dedupe_key: str) -> bool:
        """Whether a notification with this (user, kind, date[, badge]) key exists."""
        ...

    async def sent_on(self, owner: Owner, day: date) -> int:
        """How many notifications the user got for a local date."""
        ...

    async def save_sent(self, sent: Sent) -> None:
        """Store a sent notification and count it against its local date."""
        ...

    async def sent_page(self, owner: Owner, *, limit: int, after: SentCursor | None) -> list[Sent]:
        """The user's notifications, newest first, after `after`."""
        ...

    def emit(self, topic: str, payload: EventPayload, subject: str | None = None) -> None:
        """Record an event, written with this unit of work's changes."""
        ...


class TimerLeases(Protocol):
    """Claims on due timer rows: conditional writes of their own, outside any transaction."""

    async def claim_due(self, now: datetime, lease: timedelta, limit: int, token: str) -> list[str]:
        """Claim up to `limit` rows due by `now` whose lease is free; the ids won."""
        ...


UnitOfWork = unit_of_work.UnitOfWork[NotificationsStore]
"""Runs work against a NotificationsStore: atomically (changes and events) or read-only."""
