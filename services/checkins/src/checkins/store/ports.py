"""The ports the use cases need: a transactional store of the read model and check-ins."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import date
from typing import Protocol

from checkins.domain.model import (
    CheckinCursor,
    DaySlot,
    Grid,
    GridAction,
    Owner,
    UserProfile,
)
from mandaact_common import unit_of_work
from mandaact_contracts.events import EventPayload

GridKey = tuple[str, str]
"""A grid's identity in the read model: (tenant id, grid id)."""


class CheckinsStore(Protocol):
    """What one unit of work reads and writes; every read is scoped to an owner."""

    async def profile(self, owner: Owner) -> UserProfile | None:
        """The user's settings from the newest user.changed, or None if none arrived yet."""
        ...

    async def latest_grid_timezone(self, owner: Owner) -> str | None:
        """The timezone carried by the user's most recently changed grid, if any."""
        ...

    async def live_grids(self, owner: Owner) -> list[Grid]:
        """The user's grids that are not deleted (active or not)."""
        ...

    async def grid_with_action(self, owner: Owner, action_id: str) -> Grid | None:
        """The user's live grid holding this action, or None."""
        ...

    async def slot(self, owner: Owner, action: GridAction, day: date) -> DaySlot | None:
        """The stored state of the action on `day` (its action is the one passed), or None."""
        ...

    async def save_slot(self, slot: DaySlot, *, previous_changes: int) -> None:
        """Store the slot if its change count is still `previous_changes` (0 = none stored)."""
        ...

    async def done_dates(
        self,
        owner: Owner,
        *,
        until: date,
        since: date,
        any_date_of: Collection[str] = (),
    ) -> dict[str, set[date]]:
        """Check-in dates per action up to `until`: from `since` on, or any for `any_date_of`."""
        ...

    async def action_done_dates(self, owner: Owner, action_id: str) -> set[date]:
        """Every date the action has a check-in on."""
        ...

    async def checkins(
        self,
        owner: Owner,
        since: date,
        until: date,
        *,
        limit: int,
        after: CheckinCursor | None = None,
    ) -> list[DaySlot]:
        """At most `limit` of the user's current check-ins from `since` to `until`, by date,
        time and action id, starting after `after`."""
        ...

    def emit(self, topic: str, payload: EventPayload, subject: str | None = None) -> None:
        """Record an event, written with this unit of work's changes."""
        ...

    # --- the read model, fed by the consumer ---------------------------------------------------

    async def grid_versions(self, keys: Collection[GridKey]) -> dict[GridKey, int]:
        """The stored version of each of these grids (absent ones are left out)."""
        ...

    async def save_grids(self, grids: Sequence[Grid]) -> None:
        """Store these grids, each only over an older version of it (or none)."""
        ...

    async def profile_versions(self, owners: Collection[Owner]) -> dict[Owner, int]:
        """The stored settings version of each of these users (absent ones are left out)."""
        ...

    async def save_profiles(self, profiles: Sequence[UserProfile]) -> None:
        """Store these settings, each only over an older version of them (or none)."""
        ...


UnitOfWork = unit_of_work.UnitOfWork[CheckinsStore]
"""Runs work against a CheckinsStore: atomically (changes and events) or read-only."""
