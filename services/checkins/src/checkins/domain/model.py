"""Check-in rules and the read model of grids and users: pure, no I/O.

The due rules themselves (what is on a day's checklist) are the shared ones in
`mandaact_common.domain.schedule`; this module adds what belongs to check-ins: which local
date a check-in may be for, the per-date change limit and sequence numbers, which actions may
be checked, and how the read model keeps the newest grid and user settings whatever the order
of the events.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Final

from checkins.domain.errors import (
    DateInFuture,
    DateTooOld,
    GridInactive,
    InvalidInput,
    MissionAlreadyDone,
    NotCheckable,
    TooManyChanges,
)
from mandaact_common.domain.calendar import (
    DEFAULT_DAY_START,
    DEFAULT_TIMEZONE,
    DateNotAllowed,
    check_date_allowed,
    month_bounds,
    today_in,
    week_bounds,
)
from mandaact_common.domain.owner import Owner as Owner
from mandaact_common.domain.pauses import Pause, is_paused
from mandaact_common.domain.schedule import Action, ActionType, Schedule, checklist
from mandaact_common.paging import decode_cursor, encode_cursor

MAX_CHANGES_PER_DATE: Final = 3
"""Check/undo changes allowed per action and local date; the next one is refused."""
MAX_RANGE_DAYS: Final = 92
"""The longest span, both ends included, that one listing of check-ins may cover."""
EARLIEST_DATE: Final = date(1970, 1, 1)
LATEST_DATE: Final = date(2999, 12, 31)
"""Dates outside these bounds are refused as input: no user has a checklist there, and the
calendar arithmetic near year 9999 would overflow."""


# --- the read model ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UserProfile:
    """A user's settings as the last `user.changed` seen says (newer `version` wins)."""

    owner: Owner
    timezone: str
    locale: str
    version: int
    day_starts_at: str = DEFAULT_DAY_START
    pauses: tuple[Pause, ...] = ()


@dataclass(frozen=True, slots=True)
class GridAction:
    """An action of a grid, with the sub-goal it sits under."""

    id: str
    mandalart_id: str
    sub_goal_position: int
    sub_goal_title: str
    position: int
    title: str
    type: ActionType
    schedule: Schedule | None
    added_on: date
    due_date: date | None = None

    @property
    def rule(self) -> Action:
        """The action as the shared due rules see it."""
        return Action(self.id, self.type, self.schedule, self.added_on, self.due_date)


@dataclass(frozen=True, slots=True)
class Grid:
    """A mandalart as the last `goal.changed` seen says (newer `version` wins)."""

    owner: Owner
    id: str
    title: str
    version: int
    active: bool
    deleted: bool
    timezone: str
    """The owner's timezone when this version was made (used until a user.changed arrives)."""
    created_at: datetime
    updated_at: datetime
    actions: tuple[GridAction, ...]

    @property
    def on_checklist(self) -> bool:
        """Only the actions of live, active grids are ever due."""
        return self.active and not self.deleted

    def action(self, action_id: str) -> GridAction | None:
        """The action with this id, if the grid has it."""
        return next((a for a in self.actions if a.id == action_id), None)


def newest_grids(grids: Iterable[Grid]) -> list[Grid]:
    """The highest version of each grid (per tenant and id) among `grids`."""
    best: dict[tuple[str, str], Grid] = {}
    for grid in grids:
        key = (grid.owner.tenant_id, grid.id)
        if key not in best or grid.version > best[key].version:
            best[key] = grid
    return list(best.values())


def newest_profiles(profiles: Iterable[UserProfile]) -> list[UserProfile]:
    """The highest version of each user's settings among `profiles`."""
    best: dict[Owner, UserProfile] = {}
    for profile in profiles:
        if profile.owner not in best or profile.version > best[profile.owner].version:
            best[profile.owner] = profile
    return list(best.values())


def effective_timezone(profile: UserProfile | None, latest_grid_timezone: str | None) -> str:
    """The user's timezone: from user.changed, else from their latest goal.changed, else Seoul."""
    if profile is not None:
        return profile.timezone
    return latest_grid_timezone or DEFAULT_TIMEZONE


@dataclass(frozen=True, slots=True)
class UserDay:
    """What makes a user's local date: timezone and day start; and which dates are paused."""

    timezone: str = DEFAULT_TIMEZONE
    day_starts_at: str = DEFAULT_DAY_START
    pauses: tuple[Pause, ...] = ()

    def today(self, now: datetime) -> date:
        """The user's date at `now`."""
        return today_in(self.timezone, now, self.day_starts_at)

    def paused(self, day: date) -> bool:
        """Whether nothing is due on `day` (a vacation pause covers it)."""
        return is_paused(day, self.pauses)


def user_day(profile: UserProfile | None, latest_grid_timezone: str | None) -> UserDay:
    """The user's day rules: from user.changed, else their latest grid's zone, else Seoul."""
    if profile is None:
        return UserDay(effective_timezone(None, latest_grid_timezone))
    return UserDay(profile.timezone, profile.day_starts_at, profile.pauses)


def checklist_order(grids: Iterable[Grid]) -> list[GridAction]:
    """The actions of the active grids, oldest grid first, then by sub-goal and action position."""
    live = sorted((g for g in grids if g.on_checklist), key=lambda g: (g.created_at, g.id))
    return [
        action
        for grid in live
        for action in sorted(grid.actions, key=lambda a: (a.sub_goal_position, a.position))
    ]


# --- dates -------------------------------------------------------------------------------------


def checkin_date(
    requested: date | None,
    now: datetime,
    timezone: str,
    backfill_days: int,
    day_starts_at: str = DEFAULT_DAY_START,
) -> date:
    """The local date a check-in or undo is for: `requested` (default today) if allowed."""
    # Allowed are the user's today and the `backfill_days` dates before it, in their timezone.
    today = today_in(timezone, now, day_starts_at)
    day = today if requested is None else requested
    try:
        check_date_allowed(day, today, backfill_days)
    except DateNotAllowed as exc:
        if exc.reason == "future":
            raise DateInFuture(
                f"{day} is in the future: today is {today} in {timezone}", "query.date"
            ) from None
        raise DateTooOld(
            f"{day} is too long ago: check-ins are possible from {exc.earliest} to {today}"
            f" ({timezone})",
            "query.date",
        ) from None
    return day


def checkin_range(
    since: date | None,
    until: date | None,
    now: datetime,
    timezone: str,
    day_starts_at: str = DEFAULT_DAY_START,
) -> tuple[date, date]:
    """The dates a listing covers: `until` defaults to today, `since` to 6 days before `until`."""
    last = until if until is not None else today_in(timezone, now, day_starts_at)
    first = since if since is not None else max(EARLIEST_DATE, last - timedelta(days=6))
    if first > last:
        raise InvalidInput("query.from", f"must not be after `to` ({first} > {last})")
    if (last - first).days + 1 > MAX_RANGE_DAYS:
        raise InvalidInput("query.to", f"the range may cover at most {MAX_RANGE_DAYS} days")
    return first, last


def done_window_start(day: date) -> date:
    """The earliest check-in date that can matter for a routine's due rule on `day`."""
    return min(week_bounds(day)[0], month_bounds(day)[0])


# --- check-ins ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DaySlot:
    """The check-in state of one action on one local date, with its change count."""

    # `changes` counts the check/undo changes so far, so it is also the `seq` of the last one;
    # `checkin_id` is the current check-in's id, or the last undone one's (the undo event's).

    owner: Owner
    action: GridAction
    day: date
    done: bool = False
    changes: int = 0
    checkin_id: str | None = None
    checked_at: datetime | None = None

    @property
    def action_id(self) -> str:
        """The id of the action this slot is about."""
        return self.action.id


@dataclass(frozen=True, slots=True)
class CheckinCursor:
    """Where the next page of a check-in listing starts: after this (date, checked_at, action)."""

    day: date
    checked_at: datetime
    action_id: str

    @classmethod
    def after(cls, slot: DaySlot) -> CheckinCursor:
        """The cursor that continues after `slot` (a current check-in)."""
        return cls(slot.day, slot.checked_at or datetime.min.replace(tzinfo=UTC), slot.action_id)

    def encode(self) -> str:
        """An opaque, URL-safe token."""
        millis = int(self.checked_at.timestamp() * 1000)
        return encode_cursor(self.day.isoformat(), millis, self.action_id)

    @classmethod
    def decode(cls, token: str, field: str = "query.cursor") -> CheckinCursor:
        """Read a token made by `encode`, or raise InvalidInput naming `field`."""
        day, millis, action_id = decode_cursor(token, (str, int, str), field)
        try:
            return cls(
                date.fromisoformat(str(day)),
                datetime.fromtimestamp(int(millis) / 1000, UTC),
                str(action_id),
            )
        except (ValueError, OverflowError, OSError):
            raise InvalidInput(field, "is not a cursor this API returned") from None

    def key(self) -> tuple[date, datetime, str]:
        """The listing order's key of this position."""
        return (self.day, self.checked_at, self.action_id)


def ensure_checkable(grid: Grid, action: GridAction, *, checking: bool) -> None:
    """Refuse references always, and checking (not undoing) an action of an inactive grid."""
    if action.type == "reference":
        raise NotCheckable(f"action {action.id} is a reference: it is never checked off")
    if checking and not grid.active:
        raise GridInactive(f"the grid of action {action.id} is inactive")


def ensure_mission_open(action: GridAction, day: date, done_dates: Collection[date]) -> None:
    """Refuse a second check-in of a mission: it is done once, on one date."""
    if action.type != "mission":
        return
    other = sorted(d for d in done_dates if d != day)
    if other:
        raise MissionAlreadyDone(
            f"mission {action.id} is already done on {other[0]}; undo that check-in first"
        )


def toggle(slot: DaySlot, done: bool, *, new_checkin_id: str, now: datetime) -> DaySlot | None:
    """The slot after checking (`done`) or undoing, or None when it is already that way."""
    # Only real changes count against the per-date limit: a repeat is answered, not refused.
    if slot.done == done:
        return None
    if slot.changes >= MAX_CHANGES_PER_DATE:
        raise TooManyChanges(
            f"action {slot.action_id} was already checked or undone {slot.changes} times"
            f" on {slot.day}; at most {MAX_CHANGES_PER_DATE} changes per date",
            MAX_CHANGES_PER_DATE,
        )
    if done:
        return dataclasses.replace(
            slot, done=True, changes=slot.changes + 1, checkin_id=new_checkin_id, checked_at=now
        )
    return dataclasses.replace(slot, done=False, changes=slot.changes + 1)


# --- the checklist -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChecklistEntry:
    """A due action on a day's checklist and whether it is done."""

    action: GridAction
    done: bool


@dataclass(frozen=True, slots=True)
class DayChecklist:
    """A local date's due actions with their done flags, and the day's counts."""

    day: date
    entries: tuple[ChecklistEntry, ...]
    due_count: int
    done_count: int
    perfect: bool
    paused: bool = False


def day_checklist(
    grids: Iterable[Grid],
    day: date,
    done: Mapping[str, Collection[date]],
    *,
    paused: bool = False,
) -> DayChecklist:
    """The checklist of `day` by the shared due rules, in grid, sub-goal and action order.

    On a paused date the items are still listed (they can be checked) but nothing is due, so
    the day is never perfect.
    """
    actions = checklist_order(grids)
    by_id = {action.id: action for action in actions}
    shared = checklist([action.rule for action in actions], day, done)
    entries = tuple(ChecklistEntry(by_id[item.action_id], item.done) for item in shared.items)
    if paused:
        return DayChecklist(day, entries, 0, shared.done_count, perfect=False, paused=True)
    return DayChecklist(day, entries, shared.due_count, shared.done_count, shared.perfect)
