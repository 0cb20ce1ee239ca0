"""Streaks people can keep (SPEC §6): a fold over local dates with freezes, pauses and repairs.

The streak is a pure function of the set of active dates (a check-in held), the paused dates
(the user's vacation pauses), the repaired dates (a tenant's streak repairs that name the user)
and the user's today. It walks the dates in calendar order, so the order facts arrived in never
matters:

- an active date adds one to the run; when the run reaches a multiple of 7 while fewer than 2
  freezes are held, a freeze is earned;
- a date that is over (before today) with no check-in, inside a run: a paused or repaired date
  keeps the run without adding to it; otherwise a held freeze is used (the date is *frozen*),
  and with none held the run breaks;
- today without a check-in changes nothing yet: the day is not over.

`StreakState` is what the walk knows after the dates it has seen; it is small (the frozen dates
of the last 30 days at most), so a walk can stop at any date and go on later from the state
alone — the kept fold keeps the state at its floor, the user's progress the state at their last
active date.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Final

from mandaact_common.domain.calendar import today_in
from mandaact_common.domain.pauses import Pause, is_paused
from mandaact_common.errors import RuleBroken

FREEZE_EVERY: Final = 7
"""A freeze is earned each time the run reaches a multiple of this many dates."""
MAX_FREEZES: Final = 2
FROZEN_KEPT_DAYS: Final = 30
"""Frozen dates are told for the last 30 days."""


@dataclass(frozen=True, slots=True)
class DateRange:
    """Local dates `start`..`end`, both included (a streak repair's dates)."""

    start: date
    end: date

    def covers(self, day: date) -> bool:
        """Whether `day` is in the range."""
        return self.start <= day <= self.end


@dataclass(frozen=True, slots=True)
class DayRules:
    """Which dates keep a run without a check-in: paused and repaired ones."""

    pauses: tuple[Pause, ...] = ()
    repairs: tuple[DateRange, ...] = ()

    def keeps(self, day: date) -> bool:
        """Whether `day`, without a check-in, keeps a run alive without using a freeze."""
        return is_paused(day, self.pauses) or any(r.covers(day) for r in self.repairs)

    def paused(self, day: date) -> bool:
        """Whether nothing is due on `day`."""
        return is_paused(day, self.pauses)


NO_RULES: Final = DayRules()


@dataclass(frozen=True, slots=True)
class StreakState:
    """The walk after every date before `next` (None: no active date seen yet)."""

    next: date | None = None
    current: int = 0
    longest: int = 0
    freezes: int = 0
    frozen: tuple[date, ...] = ()
    last_active: date | None = None

    def to_state(self) -> dict[str, Any]:
        """Plain data."""
        return {
            "next": self.next.isoformat() if self.next else None,
            "current": self.current,
            "longest": self.longest,
            "freezes": self.freezes,
            "frozen": [d.isoformat() for d in self.frozen],
            "last_active": self.last_active.isoformat() if self.last_active else None,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any] | None) -> StreakState:
        """From `to_state` (the empty state for None)."""
        if not state:
            return cls()
        return cls(
            next=date.fromisoformat(state["next"]) if state.get("next") else None,
            current=int(state["current"]),
            longest=int(state["longest"]),
            freezes=int(state["freezes"]),
            frozen=tuple(date.fromisoformat(d) for d in state["frozen"]),
            last_active=(
                date.fromisoformat(state["last_active"]) if state.get("last_active") else None
            ),
        )

    def frozen_since(self, today: date) -> list[date]:
        """The frozen dates of the last 30 days before `today`."""
        first = today - timedelta(days=FROZEN_KEPT_DAYS)
        return [d for d in self.frozen if d >= first]


def walk(state: StreakState, active: Iterable[date], rules: DayRules, today: date) -> StreakState:
    """Go on from `state` over the dates up to `today`: `active` are the active dates from
    `state.next` on (sorted or not; dates before `state.next` and after `today` are ignored).

    Dates before today are over; today counts only when it is active (it is not over yet).
    """
    start = state.next
    days = sorted({d for d in active if (start is None or d >= start) and d <= today})
    current, longest, freezes = state.current, state.longest, state.freezes
    frozen = list(state.frozen)
    last_active = state.last_active
    day = start if start is not None else (days[0] if days else None)
    if day is None:
        return state
    index = 0
    while day <= today:
        if index < len(days) and days[index] == day:
            index += 1
            current += 1
            longest = max(longest, current)
            last_active = day
            if current % FREEZE_EVERY == 0 and freezes < MAX_FREEZES:
                freezes += 1
        elif day == today:
            break  # today is not over: it neither keeps nor breaks the run yet
        elif current == 0 or rules.keeps(day):
            pass
        elif freezes:
            freezes -= 1
            frozen.append(day)
        else:
            current = 0
        if current == 0:
            # No run is open: nothing happens until the next active date.
            if index >= len(days):
                day = today
                break
            day = days[index]
            continue
        day += timedelta(days=1)
    kept_from = today - timedelta(days=FROZEN_KEPT_DAYS)
    return dataclasses.replace(
        state,
        next=day,
        current=current,
        longest=longest,
        freezes=freezes,
        frozen=tuple(d for d in frozen if d >= kept_from),
        last_active=last_active,
    )


def streak(active: Iterable[date], rules: DayRules, today: date) -> StreakState:
    """The streak of a whole history from scratch (the reference the kept states must equal)."""
    return walk(StreakState(), active, rules, today)


def repairs_for(user_id: str, repairs: Sequence[TenantRepair]) -> tuple[DateRange, ...]:
    """The date ranges of the tenant's repairs that apply to this user."""
    return tuple(
        DateRange(r.start, r.end) for r in repairs if r.user_ids is None or user_id in r.user_ids
    )


@dataclass(frozen=True, slots=True)
class TenantRepair:
    """A tenant's streak repair: the dates count like frozen ones without using a freeze."""

    id: str
    tenant_id: str
    start: date
    end: date
    reason: str
    user_ids: frozenset[str] | None
    """None: every user of the tenant."""
    created_at: datetime | None = None


MAX_REPAIR_DAYS: Final = 7
REPAIR_LOOKBACK_DAYS: Final = 30
"""A repair's dates are at most this far back: older dates are settled in the kept state."""
EARLIEST_ZONE: Final = "Pacific/Kiritimati"
"""The zone where a date begins first (UTC+14): a date not begun there is in everyone's future."""
LATEST_ZONE: Final = "Etc/GMT+12"
"""The zone where a date begins last (UTC-12)."""
REPAIR_NAMESPACE: Final = uuid.UUID("2b0b8f0e-5d1c-4e55-9a51-3f7d0c1e7a10")


class RepairNotAllowed(RuleBroken):
    """A streak repair outside what SPEC §6 allows (over 7 dates, ahead, too far back)."""

    code = "streak-repair-not-allowed"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}", field, message)


@dataclass(frozen=True, slots=True)
class RepairCommand:
    """An admin's request to repair the tenant's streaks over some dates."""

    start: date
    end: date
    reason: str
    user_ids: frozenset[str] | None = None


def repair_of(tenant_id: str, command: RepairCommand, now: datetime) -> TenantRepair:
    """The repair a command asks for, refusing dates in the future, spans over 7 dates and
    dates more than 30 days back. The same dates for the same users are the same repair."""
    if command.end < command.start:
        raise RepairNotAllowed("to", f"{command.end} is before 'from' {command.start}")
    days = (command.end - command.start).days + 1
    if days > MAX_REPAIR_DAYS:
        raise RepairNotAllowed("to", f"a repair covers at most {MAX_REPAIR_DAYS} dates ({days})")
    latest = today_in(EARLIEST_ZONE, now)
    if command.end > latest:
        raise RepairNotAllowed("to", f"{command.end} is in the future (no zone has reached it)")
    earliest = today_in(LATEST_ZONE, now) - timedelta(days=REPAIR_LOOKBACK_DAYS)
    if command.start < earliest:
        raise RepairNotAllowed(
            "from", f"{command.start} is more than {REPAIR_LOOKBACK_DAYS} days back ({earliest})"
        )
    users = ",".join(sorted(command.user_ids)) if command.user_ids is not None else "*"
    name = f"{tenant_id}|{command.start}|{command.end}|{users}"
    return TenantRepair(
        id=str(uuid.uuid5(REPAIR_NAMESPACE, name)),
        tenant_id=tenant_id,
        start=command.start,
        end=command.end,
        reason=command.reason,
        user_ids=command.user_ids,
        created_at=now,
    )
