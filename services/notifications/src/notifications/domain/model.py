"""What to tell a user and when (SPEC §8): pure rules, no I/O.

A user's read model is their settings, their streak and, beside it, their grids and recent
check-ins. From it the rules say when each timed kind fires next (a UTC instant computed from a
local wall-clock time), whether a kind is to be sent at a given instant, and when an
event-driven kind that arrives in quiet hours is to be sent instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Final, Literal, TypeGuard, get_args

from mandaact_common.domain.calendar import DEFAULT_TIMEZONE, local_date, zone
from mandaact_common.domain.owner import Owner as Owner
from mandaact_common.domain.pauses import Pause, is_paused

Kind = Literal[
    "daily_reminder",
    "streak_at_risk",
    "comeback",
    "report_ready",
    "badge_unlocked",
    "level_reached",
]
KINDS: Final[tuple[Kind, ...]] = get_args(Kind)
TimedKind = Literal["daily_reminder", "streak_at_risk", "comeback"]
TIMED_KINDS: Final[tuple[TimedKind, ...]] = get_args(TimedKind)
EventKind = Literal["report_ready", "badge_unlocked", "level_reached"]


def is_timed(kind: Kind) -> TypeGuard[TimedKind]:
    """Whether a kind fires at a local time (rather than when an event arrives)."""
    return kind in TIMED_KINDS


Locale = Literal["ko", "en"]

DAILY_CAP: Final = 4
"""At most this many notifications per user and local date."""
STREAK_AT_RISK_AT: Final = time(21, 0)
STREAK_AT_RISK_FROM: Final = 3
"""A streak at risk is only told from this length on."""
COMEBACK_DAYS: Final = (3, 7, 14)
"""Days after the last check-in on which a comeback notification is sent."""
DEFAULT_REMINDER: Final = time(20, 0)
DEFAULT_QUIET: Final = (time(22, 0), time(8, 0))
MISSED_AFTER: Final = timedelta(hours=2)
"""A timed kind found more than this late (the workers were down) is skipped, not sent late."""
STALE_AFTER: Final = timedelta(hours=24)
"""An event-driven kind whose event is older than this (a replay, a long outage) is dropped."""
NEVER: Final = datetime(1970, 1, 1, tzinfo=UTC)


def hhmm(text: str) -> time:
    """A wall-clock time from its `HH:MM` form."""
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def hhmm_text(value: time) -> str:
    """The `HH:MM` form of a wall-clock time."""
    return f"{value.hour:02d}:{value.minute:02d}"


@dataclass(frozen=True, slots=True)
class QuietHours:
    """Local wall-clock hours `[start, end)` without notifications; may wrap midnight."""

    start: time
    end: time

    def contains(self, moment: time) -> bool:
        """Whether a local wall-clock time falls in the quiet hours (start == end: never)."""
        if self.start == self.end:
            return False
        if self.start < self.end:
            return self.start <= moment < self.end
        return moment >= self.start or moment < self.end


@dataclass(frozen=True, slots=True)
class Preferences:
    """A user's settings as the newest `user.changed` says (defaults until one arrives)."""

    timezone: str = DEFAULT_TIMEZONE
    locale: Locale = "ko"
    day_starts_at: time = time(0, 0)
    pauses: tuple[Pause, ...] = ()
    reminder_time: time = DEFAULT_REMINDER
    quiet_hours: QuietHours = field(default_factory=lambda: QuietHours(*DEFAULT_QUIET))
    enabled: frozenset[Kind] = frozenset(KINDS)
    version: int = 0
    """0: no `user.changed` seen yet."""

    def paused_on(self, day: date) -> bool:
        """Whether `day` falls in one of the user's pauses."""
        return is_paused(day, self.pauses)

    def wants(self, kind: Kind) -> bool:
        """Whether the user wants this kind of notification."""
        return kind in self.enabled


@dataclass(frozen=True, slots=True)
class Streak:
    """The user's streak as the newest `streak.changed` says (newer `changed_at` wins)."""

    current: int
    last_active_date: date | None
    frozen_dates: frozenset[date]
    changed_at: datetime


@dataclass(frozen=True, slots=True)
class UserState:
    """The bounded per-user read model: settings, the timezone seen on events, the streak."""

    owner: Owner
    prefs: Preferences | None = None
    seen_timezone: str | None = None
    """The timezone carried by the user's grid and check-in events (used without settings)."""
    streak: Streak | None = None

    @property
    def settings(self) -> Preferences:
        """The user's settings, or the defaults (in the timezone seen on their events)."""
        if self.prefs is not None:
            return self.prefs
        return Preferences(timezone=self.seen_timezone or DEFAULT_TIMEZONE)


# --- the user's day and wall-clock times -------------------------------------------------------


def local_date_at(instant: datetime, prefs: Preferences) -> date:
    """The user's local date of an instant: the calendar date of (local time - day start)."""
    return local_date(instant, prefs.timezone, hhmm_text(prefs.day_starts_at))


def local_time_at(instant: datetime, prefs: Preferences) -> time:
    """The user's local wall-clock time of an instant (minutes)."""
    local = instant.astimezone(zone(prefs.timezone))
    return time(local.hour, local.minute)


def fire_on(day: date, at: time, prefs: Preferences) -> datetime:
    """The UTC instant of local wall-clock time `at` that belongs to the user's local date `day`.

    With a day start of 04:00, 01:30 belongs to the day before: its wall clock reads the
    next calendar date. A time a DST gap skips is taken at the offset before the gap.
    """
    calendar_day = day + timedelta(days=1) if at < prefs.day_starts_at else day
    return datetime.combine(calendar_day, at, zone(prefs.timezone)).astimezone(UTC)


def next_daily(now: datetime, at: time, prefs: Preferences) -> tuple[datetime, date]:
    """The first instant after `now` at local time `at`, and the local date it belongs to."""
    today = local_date_at(now, prefs)
    for offset in range(-1, 3):
        day = today + timedelta(days=offset)
        instant = fire_on(day, at, prefs)
        if instant > now:
            return instant, day
    raise AssertionError("a local time recurs within two days")  # pragma: no cover


def quiet_end_after(now: datetime, prefs: Preferences) -> datetime:
    """The first instant after `now` at which the user's quiet hours end."""
    local = now.astimezone(zone(prefs.timezone))
    for offset in range(0, 3):
        instant = datetime.combine(
            local.date() + timedelta(days=offset), prefs.quiet_hours.end, local.tzinfo
        ).astimezone(UTC)
        if instant > now:
            return instant
    raise AssertionError("a local time recurs within two days")  # pragma: no cover


# --- what the rules read besides the user's state ----------------------------------------------


@dataclass(frozen=True, slots=True)
class DayFacts:
    """What the user did by a local date: the day's checklist counts and check-in dates."""

    due_count: int
    done_count: int
    checked_in: bool
    """Any check-in on the date (an action not due counts too)."""
    last_checkin: date | None
    """The latest local date with a check-in, on or before the date."""


def last_active(state: UserState, latest_checkin: date | None) -> date | None:
    """The user's last check-in date: the later of the streak's and the check-ins seen."""
    dates = [d for d in (latest_checkin, state.streak and state.streak.last_active_date) if d]
    return max(dates) if dates else None


def streak_alive_on(streak: Streak | None, day: date, prefs: Preferences) -> bool:
    """Whether a streak of at least 3 days still stands on `day` and was not extended on it.

    It stands when every date between its last active date and `day` was frozen or paused.
    """
    if streak is None or streak.current < STREAK_AT_RISK_FROM or streak.last_active_date is None:
        return False
    if streak.last_active_date >= day:
        return False
    gap = streak.last_active_date + timedelta(days=1)
    while gap < day:
        if gap not in streak.frozen_dates and not prefs.paused_on(gap):
            return False
        gap += timedelta(days=1)
    return True


# --- when the timed kinds fire -----------------------------------------------------------------


def next_fire(
    kind: TimedKind, state: UserState, latest_checkin: date | None, now: datetime
) -> datetime | None:
    """When the timed `kind` fires next for the user (None: not until something changes)."""
    prefs = state.settings
    if not prefs.wants(kind):
        return None
    if kind == "daily_reminder":
        return next_daily(now, prefs.reminder_time, prefs)[0]
    if kind == "streak_at_risk":
        instant, day = next_daily(now, STREAK_AT_RISK_AT, prefs)
        streak = state.streak
        last = last_active(state, latest_checkin)
        if last is not None and last >= day:  # checked in that day already: the next one
            instant, day = next_daily(instant, STREAK_AT_RISK_AT, prefs)
        return instant if streak_alive_on(streak, day, prefs) else None
    last = last_active(state, latest_checkin)
    if last is None:
        return None
    for days in COMEBACK_DAYS:
        instant = fire_on(last + timedelta(days=days), prefs.reminder_time, prefs)
        if instant > now:
            return instant
    return None


def timed_day(kind: TimedKind, fire_at: datetime, prefs: Preferences) -> date:
    """The local date a timed kind's fire time belongs to."""
    return local_date_at(fire_at, prefs)


# --- what is sent ------------------------------------------------------------------------------


Detail = str | None
"""What tells two notifications of one kind and date apart: the badge code (badge_unlocked)."""


@dataclass(frozen=True, slots=True)
class Decision:
    """A notification to send: its kind, the local date it is for and what fills its text."""

    kind: Kind
    local_date: date
    badge: str | None = None
    level: int | None = None
    week: str | None = None
    streak: int | None = None
    left: int | None = None
    """Due actions still undone (daily_reminder)."""
    days: int | None = None
    """Days since the last check-in (comeback)."""


Skip = Literal[
    "disabled",
    "paused",
    "quiet_hours",
    "missed",
    "nothing_due",
    "checked_in",
    "streak_not_at_risk",
    "not_a_comeback_day",
]


def timed_decision(
    kind: TimedKind, state: UserState, fire_at: datetime, now: datetime, facts: DayFacts
) -> Decision | Skip:
    """Whether the timed `kind`, due at `fire_at`, is sent when a worker takes it at `now`."""
    prefs = state.settings
    day = timed_day(kind, fire_at, prefs)
    gate = _gate(kind, prefs, day)
    if gate is not None:
        return gate
    if now - fire_at > MISSED_AFTER:
        return "missed"
    if prefs.quiet_hours.contains(local_time_at(fire_at, prefs)):
        return "quiet_hours"
    if kind == "daily_reminder":
        left = facts.due_count - facts.done_count
        return Decision(kind, day, left=left) if left > 0 else "nothing_due"
    if kind == "streak_at_risk":
        if facts.checked_in:
            return "checked_in"
        if not streak_alive_on(state.streak, day, prefs):
            return "streak_not_at_risk"
        assert state.streak is not None
        return Decision(kind, day, streak=state.streak.current)
    last = last_active(state, facts.last_checkin)
    days = (day - last).days if last is not None else None
    if days not in COMEBACK_DAYS:
        return "not_a_comeback_day"
    return Decision(kind, day, days=days)


def _gate(kind: Kind, prefs: Preferences, day: date) -> Skip | None:
    if not prefs.wants(kind):
        return "disabled"
    if prefs.paused_on(day):
        return "paused"
    return None


@dataclass(frozen=True, slots=True)
class EventNotice:
    """An event that asks for a notification: its kind, what it says, and when it happened."""

    owner: Owner
    kind: EventKind
    happened_at: datetime
    badge: str | None = None
    level: int | None = None
    week: str | None = None

    @property
    def detail(self) -> str:
        """What tells two such events apart (the pending row's key)."""
        return self.badge or (str(self.level) if self.level is not None else self.week or "")


EventOutcome = Decision | Skip | Literal["stale"] | datetime
"""Send now, skip, drop a stale event, or wait until this instant (the end of quiet hours)."""


def event_decision(notice: EventNotice, state: UserState, now: datetime) -> EventOutcome:
    """What becomes of an event-driven notification arriving (or coming due) at `now`."""
    prefs = state.settings
    if now - notice.happened_at > STALE_AFTER:
        return "stale"
    return event_decision_at(notice, prefs, now)


def event_decision_at(notice: EventNotice, prefs: Preferences, now: datetime) -> EventOutcome:
    """As `event_decision`, without the staleness check (a row that waited out quiet hours)."""
    day = local_date_at(now, prefs)
    gate = _gate(notice.kind, prefs, day)
    if gate is not None:
        return gate
    if prefs.quiet_hours.contains(local_time_at(now, prefs)):
        return quiet_end_after(now, prefs)
    return Decision(notice.kind, day, badge=notice.badge, level=notice.level, week=notice.week)


def dedupe_parts(decision: Decision) -> tuple[str, ...]:
    """The (kind, local date[, badge]) a notification is sent at most once for."""
    parts = (decision.kind, decision.local_date.isoformat())
    return (*parts, decision.badge) if decision.badge is not None else parts


# --- the read model's convergence ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CheckinChange:
    """One check/undo of an action on a local date; a higher `seq` wins."""

    owner: Owner
    action_id: str
    local_date: date
    done: bool
    seq: int
    mission: bool
    timezone: str


def newest_changes(changes: Iterable[CheckinChange]) -> list[CheckinChange]:
    """The highest `seq` of each (user, action, date) among `changes`."""
    best: dict[tuple[Owner, str, date], CheckinChange] = {}
    for change in changes:
        key = (change.owner, change.action_id, change.local_date)
        if key not in best or change.seq > best[key].seq:
            best[key] = change
    return list(best.values())


def merged(
    state: UserState,
    prefs: Preferences | None = None,
    streak: Streak | None = None,
    seen_timezone: str | None = None,
) -> UserState:
    """The state after newer settings, a newer streak or a timezone seen on an event."""
    if prefs is not None and (state.prefs is None or prefs.version > state.prefs.version):
        state = UserState(state.owner, prefs, state.seen_timezone, state.streak)
    if streak is not None and (state.streak is None or streak.changed_at > state.streak.changed_at):
        state = UserState(state.owner, state.prefs, state.seen_timezone, streak)
    if seen_timezone is not None and seen_timezone != state.seen_timezone:
        state = UserState(state.owner, state.prefs, seen_timezone, state.streak)
    return state
