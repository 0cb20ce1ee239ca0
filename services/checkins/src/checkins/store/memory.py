"""An in-memory adapter of the store ports, for fast unit tests of the use cases."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from checkins.domain.errors import ConcurrentChange
from checkins.domain.model import (
    CheckinCursor,
    DaySlot,
    Grid,
    GridAction,
    Owner,
    UserProfile,
)
from checkins.store.ports import GridKey
from mandaact_common import unit_of_work

SlotKey = tuple[Owner, str, date]


@dataclass
class Tables(unit_of_work.MemoryTables):
    """Everything the in-memory store holds."""

    profiles: dict[Owner, UserProfile] = field(default_factory=dict)
    grids: dict[GridKey, Grid] = field(default_factory=dict)
    slots: dict[SlotKey, DaySlot] = field(default_factory=dict)


class InMemoryCheckinsStore(unit_of_work.InMemoryStore[Tables]):
    """The CheckinsStore port over dictionaries (a private copy per unit of work)."""

    async def profile(self, owner: Owner) -> UserProfile | None:
        """The user's stored settings, or None."""
        return self.tables.profiles.get(owner)

    async def latest_grid_timezone(self, owner: Owner) -> str | None:
        """The timezone of the user's most recently changed grid."""
        mine = [g for g in self.tables.grids.values() if g.owner == owner]
        if not mine:
            return None
        return max(mine, key=lambda g: (g.updated_at, g.id)).timezone

    async def live_grids(self, owner: Owner) -> list[Grid]:
        """The user's grids that are not deleted."""
        return [g for g in self.tables.grids.values() if g.owner == owner and not g.deleted]

    async def grid_with_action(self, owner: Owner, action_id: str) -> Grid | None:
        """The user's live grid holding this action."""
        return next(
            (g for g in await self.live_grids(owner) if g.action(action_id) is not None), None
        )

    async def slot(self, owner: Owner, action: GridAction, day: date) -> DaySlot | None:
        """The stored state of the action on `day`."""
        found = self.tables.slots.get((owner, action.id, day))
        return (
            None
            if found is None
            else DaySlot(
                owner, action, day, found.done, found.changes, found.checkin_id, found.checked_at
            )
        )

    async def save_slot(self, slot: DaySlot, *, previous_changes: int) -> None:
        """Store the slot if its change count is still `previous_changes`."""
        slot_key = (slot.owner, slot.action_id, slot.day)
        current = self.tables.slots.get(slot_key)
        if (current.changes if current else 0) != previous_changes:
            raise ConcurrentChange("the check-in was changed by another request")
        self.tables.slots[slot_key] = slot

    async def done_dates(
        self,
        owner: Owner,
        *,
        until: date,
        since: date,
        any_date_of: Collection[str] = (),
    ) -> dict[str, set[date]]:
        """Check-in dates per action up to `until`: from `since` on, or any for `any_date_of`."""
        done: dict[str, set[date]] = {}
        for (who, action_id, day), slot in self.tables.slots.items():
            wanted = since <= day or action_id in any_date_of
            if who == owner and slot.done and day <= until and wanted:
                done.setdefault(action_id, set()).add(day)
        return done

    async def action_done_dates(self, owner: Owner, action_id: str) -> set[date]:
        """Every date the action has a check-in on."""
        return {
            day
            for (who, action, day), slot in self.tables.slots.items()
            if who == owner and action == action_id and slot.done
        }

    async def checkins(
        self,
        owner: Owner,
        since: date,
        until: date,
        *,
        limit: int,
        after: CheckinCursor | None = None,
    ) -> list[DaySlot]:
        """A page of the user's current check-ins from `since` to `until`, in listing order."""

        def key(slot: DaySlot) -> tuple[date, datetime, str]:
            return CheckinCursor.after(slot).key()

        found = sorted(
            (
                s
                for s in self.tables.slots.values()
                if s.owner == owner and s.done and since <= s.day <= until
            ),
            key=key,
        )
        if after is not None:
            found = [s for s in found if key(s) > after.key()]
        return found[:limit]

    async def grid_versions(self, keys: Collection[GridKey]) -> dict[GridKey, int]:
        """The stored version of each of these grids."""
        return {k: self.tables.grids[k].version for k in keys if k in self.tables.grids}

    async def save_grids(self, grids: Sequence[Grid]) -> None:
        """Store these grids, each only over an older version (or none)."""
        for grid in grids:
            grid_key = (grid.owner.tenant_id, grid.id)
            current = self.tables.grids.get(grid_key)
            if current is not None and current.version >= grid.version:
                raise ConcurrentChange(f"grid {grid.id} already has version {current.version}")
            self.tables.grids[grid_key] = grid

    async def profile_versions(self, owners: Collection[Owner]) -> dict[Owner, int]:
        """The stored settings version of each of these users."""
        return {o: self.tables.profiles[o].version for o in owners if o in self.tables.profiles}

    async def save_profiles(self, profiles: Sequence[UserProfile]) -> None:
        """Store these settings, each only over an older version (or none)."""
        for profile in profiles:
            current = self.tables.profiles.get(profile.owner)
            if current is not None and current.version >= profile.version:
                raise ConcurrentChange(f"settings already have version {current.version}")
            self.tables.profiles[profile.owner] = profile


class InMemoryUnitOfWork(unit_of_work.InMemoryUnitOfWork[Tables, InMemoryCheckinsStore]):
    """The checkins unit of work in memory (for unit tests of the use cases)."""

    def __init__(self, tables: Tables | None = None) -> None:
        super().__init__(tables or Tables(), InMemoryCheckinsStore)
