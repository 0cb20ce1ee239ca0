"""The compact facts the weekly fold keeps, and the order-independent rules that update them.

Every rule is a merge that gives the same result whatever the order or repetition of events:
- a check-in state per (action, local date) is the one with the highest `seq`;
- an XP entry is kept by its `entry_id` (entries are immutable);
- a grid is kept per (grid, ISO week of the change) at its highest `version`;
- the user's settings at their highest `version`;
- a badge or a level at its earliest instant; a week's streak at its latest `changed_at`.
Nothing here reads a clock or does I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal

from mandaact_common.domain.calendar import (
    DEFAULT_DAY_START,
    DEFAULT_TIMEZONE,
    iso_week,
    local_date,
)
from mandaact_common.domain.pauses import Pause, is_paused
from mandaact_common.domain.schedule import Action

DEFAULT_LOCALE: Literal["ko"] = "ko"

Locale = Literal["ko", "en"]
CheckableType = Literal["routine", "mission"]


@dataclass(frozen=True, slots=True)
class CheckinState:
    """The latest known state of one action on one local date."""

    action_id: str
    local_date: date
    seq: int
    done: bool
    action_type: CheckableType
    mandalart_id: str
    sub_goal_position: int
    local_hour: int
    sub_goal_title: str = ""
    """The sub-goal's title at the check-in (names it when no grid version of the week does)."""


@dataclass(frozen=True, slots=True)
class StreakFact:
    """The user's streak as last announced for a week."""

    changed_at: datetime
    current: int
    longest: int

    def sort_key(self) -> tuple[datetime, int, int]:
        """Later announcements win; equal instants are broken deterministically."""
        return (self.changed_at, self.current, self.longest)


@dataclass
class WeekFacts:
    """What one user did in one ISO week (their timezone): check-in states, XP, streak."""

    tenant_id: str
    user_id: str
    week: str
    checkins: dict[tuple[str, date], CheckinState] = field(default_factory=dict)
    xp: dict[str, int] = field(default_factory=dict)
    streak: StreakFact | None = None
    fold_version: int = field(default=0, compare=False)
    """Counts the changes of the week's fold (a report records the one it was written from);
    not a fact: the same events folded in other batches give the same facts, another count."""

    def record_checkin(self, state: CheckinState) -> bool:
        """Keep the state with the highest seq; a late lower seq never overrides."""
        key = (state.action_id, state.local_date)
        current = self.checkins.get(key)
        if current is not None and current.seq >= state.seq:
            return False
        self.checkins[key] = state
        return True

    def record_xp(self, entry_id: str, amount: int) -> bool:
        """Keep an XP ledger entry once."""
        if entry_id in self.xp:
            return False
        self.xp[entry_id] = amount
        return True

    def record_streak(self, fact: StreakFact) -> bool:
        """Keep the latest streak announcement of the week."""
        if self.streak is not None and self.streak.sort_key() >= fact.sort_key():
            return False
        self.streak = fact
        return True

    def done(self) -> list[CheckinState]:
        """The check-ins that stand (latest state is done)."""
        return [c for c in self.checkins.values() if c.done]

    @property
    def has_checkins(self) -> bool:
        """Whether at least one check-in of the week stands."""
        return any(c.done for c in self.checkins.values())


@dataclass(frozen=True, slots=True)
class GridSubGoal:
    """A sub-goal of a grid with its checkable actions."""

    position: int
    title: str
    actions: tuple[Action, ...]


@dataclass(frozen=True, slots=True)
class Grid:
    """A grid as it stood after one version."""

    id: str
    title: str
    version: int
    active: bool
    deleted: bool
    sub_goals: tuple[GridSubGoal, ...]

    @property
    def counts(self) -> bool:
        """Whether the grid's actions are on the checklist (active and not deleted)."""
        return self.active and not self.deleted


@dataclass
class GridBucket:
    """The last version of a grid changed within one ISO week (the week's end-of-week grid)."""

    tenant_id: str
    user_id: str
    week: str
    grid: Grid

    def record(self, grid: Grid) -> bool:
        """Keep the higher version."""
        if grid.version <= self.grid.version:
            return False
        self.grid = grid
        return True


@dataclass
class UserFacts:
    """Per-user facts: settings, mission check-ins, and the rare instant-dated events."""

    tenant_id: str
    user_id: str
    version: int = 0
    timezone: str | None = None
    locale: Locale | None = None
    day_starts_at: str = DEFAULT_DAY_START
    pauses: tuple[Pause, ...] = ()
    checkin_timezone: str | None = None
    checkin_timezone_at: datetime | None = None
    missions: dict[tuple[str, date], tuple[int, bool]] = field(default_factory=dict)
    badges: dict[str, datetime] = field(default_factory=dict)
    levels: dict[int, datetime] = field(default_factory=dict)
    undated_xp: dict[str, tuple[int, datetime]] = field(default_factory=dict)

    def record_settings(
        self,
        version: int,
        timezone: str,
        locale: Locale,
        day_starts_at: str = DEFAULT_DAY_START,
        pauses: tuple[Pause, ...] = (),
    ) -> bool:
        """Keep the settings with the highest version."""
        if version <= self.version:
            return False
        self.version, self.timezone, self.locale = version, timezone, locale
        self.day_starts_at, self.pauses = day_starts_at, pauses
        return True

    def unpaused(self, days: Iterable[date]) -> list[date]:
        """The dates no vacation pause covers (only they have anything due)."""
        return [day for day in days if not is_paused(day, self.pauses)]

    def record_checkin_timezone(self, timezone: str, at: datetime) -> bool:
        """Remember the latest check-in's timezone while the user's settings are unknown."""
        # Once they are known it is never read, so it is not kept up to date (no rewrite of the
        # user document on every check-in).
        if self.version > 0:
            return False
        if self.checkin_timezone_at is not None and self.checkin_timezone_at >= at:
            return False
        self.checkin_timezone, self.checkin_timezone_at = timezone, at
        return True

    def record_mission(self, state: CheckinState) -> bool:
        """Missions leave the checklist once done, whenever that was: keep their states here."""
        key = (state.action_id, state.local_date)
        current = self.missions.get(key)
        if current is not None and current[0] >= state.seq:
            return False
        self.missions[key] = (state.seq, state.done)
        return True

    def record_badge(self, code: str, at: datetime) -> bool:
        """A badge unlocks once: keep its earliest instant."""
        if code in self.badges and self.badges[code] <= at:
            return False
        self.badges[code] = at
        return True

    def record_level(self, level: int, at: datetime) -> bool:
        """Keep the earliest instant a level was reached."""
        if level in self.levels and self.levels[level] <= at:
            return False
        self.levels[level] = at
        return True

    def record_undated_xp(self, entry_id: str, amount: int, at: datetime) -> bool:
        """Keep an XP entry that has no local date (bucketed by its instant when read)."""
        if entry_id in self.undated_xp:
            return False
        self.undated_xp[entry_id] = (amount, at)
        return True

    @property
    def effective_timezone(self) -> str:
        """The user's timezone: their settings, else that of their check-ins, else the default."""
        return self.timezone or self.checkin_timezone or DEFAULT_TIMEZONE

    @property
    def effective_locale(self) -> Locale:
        """The user's locale, Korean until their settings say otherwise."""
        return self.locale or DEFAULT_LOCALE

    def mission_done_dates(self) -> dict[str, set[date]]:
        """The dates each mission stands done on."""
        out: dict[str, set[date]] = {}
        for (action_id, day), (_seq, done) in self.missions.items():
            if done:
                out.setdefault(action_id, set()).add(day)
        return out

    def week_of(self, instant: datetime) -> str:
        """The ISO week an instant falls in, in the user's timezone."""
        return iso_week(local_date(instant, self.effective_timezone, self.day_starts_at))
