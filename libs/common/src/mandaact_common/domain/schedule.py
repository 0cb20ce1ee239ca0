"""Due rules: which actions are on a user's checklist for a local date.

Rules (SPEC §2 "Daily checklist", "Check-in"), for an action and a local date `day`:

- A reference (mindset note) is never due and never checkable.
- Nothing is due before the date the action was added (`added_on`).
- A daily routine is due every day.
- A weekly routine on given weekdays is due on those weekdays.
- A weekly routine N times a week is due every day of the ISO week (Monday–Sunday) until N
  check-ins were made that week before `day`; it stays due on the day the target is met, so the
  checklist shows it ticked.
- A monthly routine N times a month is the same within the calendar month.
- A mission is due every day until the day it is done, that day included, and not after.
  `due_date` is informative only: a mission not done by its due date stays on the checklist.

Check-ins may predate `added_on` (people write the grid after they start): those do not make
the action due earlier, but they do count towards a weekly/monthly target and complete a mission.

Only check-ins on due days count as done, so `done_count <= due_count` for every day.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from types import MappingProxyType
from typing import Final, Literal, TypeGuard, get_args

from mandaact_common.domain.calendar import month_bounds, week_bounds

__all__ = [
    "WEEKDAY_CODES",
    "WEEKDAY_NUMBERS",
    "Action",
    "ActionType",
    "Checklist",
    "ChecklistItem",
    "Frequency",
    "InvalidAction",
    "InvalidSchedule",
    "Schedule",
    "action_due_and_done",
    "checklist",
    "due_and_done",
    "is_checkable",
    "is_due",
    "shape_fault",
    "weekday_code",
    "weekday_number",
]

Frequency = Literal["daily", "weekly", "monthly"]
ActionType = Literal["routine", "mission", "reference"]

_FREQUENCIES: Final[tuple[str, ...]] = get_args(Frequency)
_ACTION_TYPES: Final[tuple[str, ...]] = get_args(ActionType)

WEEKDAY_CODES: Final[tuple[str, ...]] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
"""Weekday codes by number, 0 = Monday … 6 = Sunday (as `date.weekday()`)."""

WEEKDAY_NUMBERS: Final[Mapping[str, int]] = MappingProxyType(
    {code: number for number, code in enumerate(WEEKDAY_CODES)}
)
"""Weekday numbers by code, "mon" = 0 … "sun" = 6."""


class InvalidSchedule(ValueError):
    """A schedule that breaks the rules for its frequency."""


class InvalidAction(ValueError):
    """An action whose type and schedule do not fit together."""


def weekday_number(code: str) -> int:
    """Return the weekday number (0 = Monday) for a code "mon".."sun", or raise InvalidSchedule."""
    try:
        return WEEKDAY_NUMBERS[code]
    except KeyError:
        raise InvalidSchedule(
            f"unknown weekday {code!r}: expected one of {', '.join(WEEKDAY_CODES)}"
        ) from None


def weekday_code(number: int) -> str:
    """Return the code "mon".."sun" for a weekday number 0..6."""
    if not 0 <= number <= 6:
        raise ValueError(f"weekday number must be 0..6, got {number}")
    return WEEKDAY_CODES[number]


def _is_frequency(value: str) -> TypeGuard[Frequency]:
    return value in _FREQUENCIES


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True, slots=True)
class Schedule:
    """When a routine is due: daily, weekly on weekdays or N times, or monthly N times."""

    frequency: Frequency
    days: frozenset[int] | None = None
    times: int | None = None

    def __post_init__(self) -> None:
        """Reject a schedule that breaks the rules for its frequency."""
        if self.frequency not in _FREQUENCIES:
            raise InvalidSchedule(
                f"unknown frequency {self.frequency!r}: expected one of {', '.join(_FREQUENCIES)}"
            )
        if self.times is not None and not _is_int(self.times):
            raise InvalidSchedule(f"times must be an integer, got {self.times!r}")
        if self.days is not None:
            if not isinstance(self.days, frozenset):
                raise InvalidSchedule(f"days must be a frozenset of 0..6, got {self.days!r}")
            bad = sorted(repr(d) for d in self.days if not (_is_int(d) and 0 <= d <= 6))
            if bad:
                raise InvalidSchedule(f"weekday numbers must be 0..6, got {', '.join(bad)}")
        if self.frequency == "daily":
            self._check_daily()
        elif self.frequency == "weekly":
            self._check_weekly()
        else:
            self._check_monthly()

    def _check_daily(self) -> None:
        if self.days is not None:
            raise InvalidSchedule("a daily schedule takes no days")
        if self.times is not None:
            raise InvalidSchedule("a daily schedule takes no times")

    def _check_weekly(self) -> None:
        if self.days is None and self.times is None:
            raise InvalidSchedule("a weekly schedule needs either days or times")
        if self.days is not None and self.times is not None:
            raise InvalidSchedule("a weekly schedule takes days or times, not both")
        if self.days is not None and not self.days:
            raise InvalidSchedule("a weekly schedule's days must not be empty")
        if self.times is not None and not 1 <= self.times <= 7:
            raise InvalidSchedule(f"a weekly schedule's times must be 1..7, got {self.times}")

    def _check_monthly(self) -> None:
        if self.days is not None:
            raise InvalidSchedule("a monthly schedule takes no days")
        if self.times is None:
            raise InvalidSchedule("a monthly schedule needs times")
        if not 1 <= self.times <= 31:
            raise InvalidSchedule(f"a monthly schedule's times must be 1..31, got {self.times}")

    @classmethod
    def from_parts(cls, frequency: str, days: Sequence[str] | None, times: int | None) -> Schedule:
        """Build a schedule from its wire form (weekday codes), raising InvalidSchedule."""
        if not _is_frequency(frequency):
            raise InvalidSchedule(
                f"unknown frequency {frequency!r}: expected one of {', '.join(_FREQUENCIES)}"
            )
        numbers: frozenset[int] | None = None
        if days is not None:
            if isinstance(days, str):
                raise InvalidSchedule(f"days must be a list of weekday codes, got {days!r}")
            seen: set[int] = set()
            for code in days:
                number = weekday_number(code)
                if number in seen:
                    raise InvalidSchedule(f"weekday {code!r} is listed more than once")
                seen.add(number)
            numbers = frozenset(seen)
        return cls(frequency, numbers, times)

    @classmethod
    def daily(cls) -> Schedule:
        """Return a schedule due every day."""
        return cls("daily")

    @classmethod
    def weekly_on(cls, *codes: str) -> Schedule:
        """Return a schedule due on the given weekdays ("mon".."sun")."""
        return cls.from_parts("weekly", list(codes), None)

    @classmethod
    def weekly_times(cls, times: int) -> Schedule:
        """Return a schedule due until done `times` times in an ISO week."""
        return cls("weekly", None, times)

    @classmethod
    def monthly_times(cls, times: int) -> Schedule:
        """Return a schedule due until done `times` times in a calendar month."""
        return cls("monthly", None, times)

    def day_codes(self) -> list[str] | None:
        """Return the weekday codes in week order ("mon" first), or None when not by weekday."""
        if self.days is None:
            return None
        return [WEEKDAY_CODES[number] for number in sorted(self.days)]


@dataclass(frozen=True, slots=True)
class Action:
    """An action of a grid as the due rules see it."""

    id: str
    type: ActionType
    schedule: Schedule | None
    added_on: date
    due_date: date | None = None

    def __post_init__(self) -> None:
        """Reject a routine without a schedule, or a schedule or due date where none belongs."""
        if self.type not in _ACTION_TYPES:
            raise InvalidAction(
                f"unknown action type {self.type!r}: expected one of {', '.join(_ACTION_TYPES)}"
            )
        fault = shape_fault(self.type, self.schedule is not None, self.due_date is not None)
        if fault is not None:
            raise InvalidAction(f"{self.type} {self.id!r} {fault[1]}")


def shape_fault(
    type_: str, has_schedule: bool, has_due_date: bool
) -> tuple[Literal["schedule", "due_date"], str] | None:
    """What an action of this type gets wrong (the field and "needs …"/"takes no …"), if any.

    A routine needs a schedule; only a routine takes one; only a mission takes a due date.
    """
    if type_ == "routine" and not has_schedule:
        return "schedule", "needs a schedule"
    if type_ != "routine" and has_schedule:
        return "schedule", "takes no schedule"
    if type_ != "mission" and has_due_date:
        return "due_date", "takes no due date"
    return None


# --- due rules ---------------------------------------------------------------------------------


def is_checkable(action: Action) -> bool:
    """An action can be checked off unless it is a reference."""
    return action.type != "reference"


def _done_before(done_dates: Collection[date], first: date, day: date) -> int:
    return sum(1 for done in done_dates if first <= done < day)


def _routine_is_due(schedule: Schedule, day: date, done_dates: Collection[date]) -> bool:
    if schedule.frequency == "daily":
        return True
    if schedule.days is not None:
        return day.weekday() in schedule.days
    assert schedule.times is not None  # guaranteed by Schedule validation
    bounds = week_bounds if schedule.frequency == "weekly" else month_bounds
    first, _ = bounds(day)
    return _done_before(done_dates, first, day) < schedule.times


def is_due(action: Action, day: date, done_dates: Collection[date]) -> bool:
    """Return whether `action` is on the checklist of `day`, given the dates it was done on."""
    if not is_checkable(action) or day < action.added_on:
        return False
    if action.type == "mission":
        return not any(done < day for done in done_dates)
    assert action.schedule is not None  # guaranteed by Action validation
    return _routine_is_due(action.schedule, day, done_dates)


# --- checklist ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChecklistItem:
    """A due action on a day's checklist, and whether it was done that day."""

    action_id: str
    done: bool


@dataclass(frozen=True, slots=True)
class Checklist:
    """A local date's due actions with their done flags."""

    day: date
    items: tuple[ChecklistItem, ...]

    @property
    def due_count(self) -> int:
        """Number of actions due that day."""
        return len(self.items)

    @property
    def done_count(self) -> int:
        """Number of due actions done that day."""
        return sum(1 for item in self.items if item.done)

    @property
    def perfect(self) -> bool:
        """A day is perfect when something was due and everything due was done."""
        return bool(self.items) and all(item.done for item in self.items)


def checklist(
    actions: Iterable[Action], day: date, done: Mapping[str, Collection[date]]
) -> Checklist:
    """Return the checklist of `day`: the due actions, in the given order, with done flags.

    `done` maps an action id to the local dates it has a check-in on (missing = never).
    """
    items: list[ChecklistItem] = []
    for action in actions:
        done_dates = done.get(action.id, ())
        if is_due(action, day, done_dates):
            items.append(ChecklistItem(action.id, day in done_dates))
    return Checklist(day, tuple(items))


def due_and_done(
    actions: Iterable[Action], days: Iterable[date], done: Mapping[str, Collection[date]]
) -> dict[date, tuple[int, int]]:
    """Return (due count, done count) for each of `days`, e.g. the seven days of a week."""
    action_list = list(actions)
    result: dict[date, tuple[int, int]] = {}
    for day in days:
        day_list = checklist(action_list, day, done)
        result[day] = (day_list.due_count, day_list.done_count)
    return result


def action_due_and_done(
    action: Action, days: Iterable[date], done_dates: Collection[date]
) -> tuple[int, int]:
    """Return on how many of `days` the action was due, and on how many of those it was done."""
    due = done_count = 0
    for day in days:
        if is_due(action, day, done_dates):
            due += 1
            if day in done_dates:
                done_count += 1
    return due, done_count
