"""Use cases of the checkins service: a command and the ports in, the result and its events out.

A check or undo runs in one unit of work: find the action in the caller's read model, work out
the local date, apply the rules, write the day's slot conditionally on the change count read,
and emit `action.completed` / `action.uncompleted` into the outbox of the same transaction.
A request that changes nothing writes nothing and emits nothing. Checks and undos go through
group commit: under load, concurrent ones share one transaction (`MongoUnitOfWork.run_grouped`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal, TypeVar

from checkins.domain.errors import NotFound
from checkins.domain.model import (
    CheckinCursor,
    DayChecklist,
    DaySlot,
    Grid,
    GridAction,
    Owner,
    UserDay,
    UserProfile,
    checkin_date,
    checkin_range,
    checklist_order,
    day_checklist,
    done_window_start,
    ensure_checkable,
    ensure_mission_open,
    newest_grids,
    newest_profiles,
    toggle,
    user_day,
)
from checkins.store.ports import CheckinsStore, UnitOfWork
from mandaact_common.clock import Clock, NewId, new_uuid, utc_now
from mandaact_contracts import topics
from mandaact_contracts.events import ActionCompleted, ActionUncompleted, ScheduleSnapshot

ChangeEvent = TypeVar("ChangeEvent", ActionCompleted, ActionUncompleted)


@dataclass(frozen=True, slots=True)
class CheckinResult:
    """The day's slot after a check, and whether this request created the check-in."""

    slot: DaySlot
    created: bool


@dataclass(frozen=True, slots=True)
class CheckinRange:
    """The user's check-ins between two local dates, both included."""

    since: date
    until: date
    items: list[DaySlot]
    next_cursor: CheckinCursor | None = None


def _checkable_type(action: GridAction) -> Literal["routine", "mission"]:
    if action.type == "reference":  # ensure_checkable ran before any event is made
        raise AssertionError("a reference is never checked")
    return action.type


def _schedule(action: GridAction) -> ScheduleSnapshot | None:
    schedule = action.schedule
    if schedule is None:
        return None
    return ScheduleSnapshot.model_validate(
        {"frequency": schedule.frequency, "days": schedule.day_codes(), "times": schedule.times}
    )


def _change_event(
    model: type[ChangeEvent], slot: DaySlot, timezone: str, now: datetime
) -> ChangeEvent:
    assert slot.checkin_id is not None, "a check-in change always has a check-in id"
    action = slot.action
    return model(
        tenant_id=slot.owner.tenant_id,
        user_id=slot.owner.user_id,
        checkin_id=slot.checkin_id,
        action_id=action.id,
        mandalart_id=action.mandalart_id,
        sub_goal_position=action.sub_goal_position,
        sub_goal_title=action.sub_goal_title,
        action_title=action.title,
        action_type=_checkable_type(action),
        local_date=slot.day,
        timezone=timezone,
        occurred_at=now,
        seq=slot.changes,
        schedule=_schedule(action),
    )


async def _user_day(store: CheckinsStore, owner: Owner) -> UserDay:
    profile = await store.profile(owner)
    latest = None if profile is not None else await store.latest_grid_timezone(owner)
    return user_day(profile, latest)


async def _find_action(
    store: CheckinsStore, owner: Owner, action_id: str
) -> tuple[Grid, GridAction]:
    grid = await store.grid_with_action(owner, action_id)
    action = grid.action(action_id) if grid is not None else None
    if grid is None or action is None:
        raise NotFound(f"no action {action_id} for this user")
    return grid, action


class CheckinsService:
    """The checkins use cases over a unit of work."""

    def __init__(
        self,
        uow: UnitOfWork,
        *,
        backfill_days: int,
        clock: Clock = utc_now,
        new_id: NewId = new_uuid,
    ) -> None:
        self._uow = uow
        self._backfill_days = backfill_days
        self._clock = clock
        self._new_id = new_id

    async def check(self, owner: Owner, action_id: str, requested: date | None) -> CheckinResult:
        """Mark the action done for a local date; emits `action.completed` only when new."""

        async def work(store: CheckinsStore) -> CheckinResult:
            grid, action = await _find_action(store, owner, action_id)
            rules = await _user_day(store, owner)
            timezone = rules.timezone
            now = self._clock()
            day = checkin_date(requested, now, timezone, self._backfill_days, rules.day_starts_at)
            ensure_checkable(grid, action, checking=True)
            stored = await store.slot(owner, action, day)
            slot = stored or DaySlot(owner, action, day)
            if not slot.done and action.type == "mission":  # a routine is done on any date
                ensure_mission_open(action, day, await store.action_done_dates(owner, action_id))
            changed = toggle(slot, True, new_checkin_id=self._new_id(), now=now)
            if changed is None:
                return CheckinResult(slot, created=False)
            await store.save_slot(changed, previous_changes=slot.changes)
            event = _change_event(ActionCompleted, changed, timezone, now)
            store.emit(topics.ACTION_COMPLETED, event, subject=action_id)
            return CheckinResult(changed, created=True)

        return await self._uow.run_grouped(work)

    async def uncheck(self, owner: Owner, action_id: str, requested: date | None) -> bool:
        """Undo the date's check-in (`action.uncompleted`); False when there was none to undo."""

        async def work(store: CheckinsStore) -> bool:
            grid, action = await _find_action(store, owner, action_id)
            rules = await _user_day(store, owner)
            timezone = rules.timezone
            now = self._clock()
            day = checkin_date(requested, now, timezone, self._backfill_days, rules.day_starts_at)
            ensure_checkable(grid, action, checking=False)
            slot = await store.slot(owner, action, day)
            if slot is None:
                return False
            changed = toggle(slot, False, new_checkin_id=self._new_id(), now=now)
            if changed is None:
                return False
            await store.save_slot(changed, previous_changes=slot.changes)
            event = _change_event(ActionUncompleted, changed, timezone, now)
            store.emit(topics.ACTION_UNCOMPLETED, event, subject=action_id)
            return True

        return await self._uow.run_grouped(work)

    async def checklist(self, owner: Owner, requested: date | None) -> DayChecklist:
        """The checklist of a local date (default: the user's today)."""

        async def work(store: CheckinsStore) -> DayChecklist:
            rules = await _user_day(store, owner)
            day = requested if requested is not None else rules.today(self._clock())
            grids = await store.live_grids(owner)
            missions = [a.id for a in checklist_order(grids) if a.type == "mission"]
            done = await store.done_dates(
                owner, until=day, since=done_window_start(day), any_date_of=missions
            )
            return day_checklist(grids, day, done, paused=rules.paused(day))

        return await self._uow.read(work)

    async def list_checkins(
        self,
        owner: Owner,
        since: date | None,
        until: date | None,
        *,
        limit: int,
        cursor: CheckinCursor | None = None,
    ) -> CheckinRange:
        """A page of the user's check-ins between two local dates (default: the last 7 days)."""

        async def work(store: CheckinsStore) -> CheckinRange:
            rules = await _user_day(store, owner)
            now = self._clock()
            first, last = checkin_range(since, until, now, rules.timezone, rules.day_starts_at)
            # One extra row tells whether another page exists without a count query.
            rows = await store.checkins(owner, first, last, limit=limit + 1, after=cursor)
            items = rows[:limit]
            more = len(rows) > limit  # so items holds `limit` >= 1 rows
            return CheckinRange(
                first, last, items, CheckinCursor.after(items[-1]) if more else None
            )

        return await self._uow.read(work)


async def project(
    store: CheckinsStore, grids: Sequence[Grid], profiles: Sequence[UserProfile]
) -> None:
    """Keep the newest version of every grid and user settings seen, whatever the order."""
    newest = newest_grids(grids)
    if newest:
        stored = await store.grid_versions([(g.owner.tenant_id, g.id) for g in newest])
        fresh = [g for g in newest if g.version > stored.get((g.owner.tenant_id, g.id), 0)]
        if fresh:
            await store.save_grids(fresh)
    latest = newest_profiles(profiles)
    if latest:
        known = await store.profile_versions([p.owner for p in latest])
        changed = [p for p in latest if p.version > known.get(p.owner, 0)]
        if changed:
            await store.save_profiles(changed)
