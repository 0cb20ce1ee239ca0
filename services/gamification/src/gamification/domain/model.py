"""The XP fold: a user's check-in changes, replayed in canonical order, give their desired state.

`derive` is a pure function of the *set* of changes it is given (plus the user's current actions),
so shuffled or repeated delivery gives the same ledger, level, streaks and badges. The rules are
written out in docs/gamification-rules.md; every rule below reads as a sentence of that document.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final, Literal, NamedTuple, cast

from gamification.domain.badges import Badge, BadgeFamily, by_family, monthly_target
from gamification.domain.levels import is_milestone, level_for_xp
from gamification.domain.streaks import NO_RULES, DayRules, StreakState, walk
from mandaact_common import codecs
from mandaact_common.domain.calendar import month_bounds, week_bounds
from mandaact_common.domain.schedule import Action, checklist, is_checkable, is_due

__all__ = [
    "BASE_XP",
    "BONUS_DAYS",
    "COMEBACK_DAYS",
    "COMEBACK_GAP_DAYS",
    "PERFECT_DAY_XP",
    "PERFECT_WEEK_SHARE",
    "STREAK_BONUS_DAYS",
    "STREAK_BONUS_XP",
    "BadgeUnlock",
    "CheckinChange",
    "DerivedState",
    "LedgerLine",
    "LevelUp",
    "LineReason",
    "canonical_order",
    "derive",
]

LineReason = Literal["checkin", "perfect_day", "badge"]

BASE_XP: Final = 10
STREAK_BONUS_XP: Final = 5
STREAK_BONUS_DAYS: Final = 7
PERFECT_DAY_XP: Final = 50
PERFECT_WEEK_SHARE: Final = (4, 5)  # at least 80 % of the week's due actions done
COMEBACK_GAP_DAYS: Final = 3
COMEBACK_DAYS: Final = 3
BONUS_DAYS: Final = 7

# Multipliers in tenths, so 10 × 3.5 is exactly 35 and never 34.999….
_WEEKEND: Final = 15
_COMEBACK: Final = 15
_LEVEL_MILESTONE: Final = 20
_PERFECT_WEEK: Final = 20
_NO_MULTIPLIER: Final = 10
_ONE_WEEK: Final = timedelta(days=7)


def _utc(instant: datetime) -> datetime:
    """Return the instant in UTC; a naive value is taken as UTC, as MongoDB stores it."""
    if instant.tzinfo is None or instant.utcoffset() is None:
        return instant.replace(tzinfo=UTC)
    return instant.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class CheckinChange:
    """A check (done=True) or undo (done=False) of an action for a local date, as received."""

    event_id: str
    action_id: str
    local_date: date
    seq: int
    done: bool
    occurred_at: datetime
    local_time: time | None = None

    def __post_init__(self) -> None:
        """Reject a sequence number below 1 and keep `occurred_at` in UTC."""
        if isinstance(self.seq, bool) or not isinstance(self.seq, int) or self.seq < 1:
            raise ValueError(f"seq must be an integer ≥ 1, got {self.seq!r}")
        object.__setattr__(self, "occurred_at", _utc(self.occurred_at))


@dataclass(frozen=True, slots=True)
class LedgerLine:
    """One desired XP ledger entry; `key` is stable, so stored and desired lines can be diffed."""

    key: str
    amount: int
    reason: LineReason
    action_id: str | None
    local_date: date | None
    badge: str | None
    source_event_id: str | None
    multiplier: float | None
    occurred_at: datetime | None = None


class LevelUp(NamedTuple):
    """A level reached going up, and the key of the ledger line that crossed into it."""

    level: int
    key: str


class BadgeUnlock(NamedTuple):
    """A badge unlocked, the key of the line whose replay unlocked it, and that line's date."""

    code: str
    key: str
    local_date: date | None


@dataclass(frozen=True, slots=True)
class DerivedState:
    """Everything the gamification service should hold for one user, derived from the changes."""

    lines: list[LedgerLine]
    xp_total: int
    level: int
    levels_reached: list[LevelUp]
    streak_current: int
    streak_longest: int
    last_active_date: date | None
    perfect_days: int
    badges: list[BadgeUnlock]


# --- canonical order ---------------------------------------------------------------------------


def _preference(change: CheckinChange) -> tuple[datetime, str, bool, str]:
    local_time = change.local_time.isoformat() if change.local_time is not None else ""
    return change.occurred_at, change.event_id, not change.done, local_time


def canonical_order(changes: Iterable[CheckinChange]) -> list[CheckinChange]:
    """Return the changes once each, in replay order: occurred_at, then action_id, then seq.

    Copies of a change (same action, date and seq) collapse to one. Within one (action, date)
    a later seq never replays before an earlier one, even if its clock said so.
    """
    unique: dict[tuple[str, date, int], CheckinChange] = {}
    for change in changes:
        key = (change.action_id, change.local_date, change.seq)
        kept = unique.get(key)
        if kept is None or _preference(change) < _preference(kept):
            unique[key] = change
    ordered = sorted(unique.values(), key=lambda c: (c.action_id, c.local_date, c.seq))
    replay_at: dict[tuple[str, date, int], datetime] = {}
    chain: tuple[str, date] | None = None
    latest = ordered[0].occurred_at if ordered else None
    for change in ordered:
        pair = (change.action_id, change.local_date)
        if pair != chain or latest is None:
            chain, latest = pair, change.occurred_at
        else:
            latest = max(latest, change.occurred_at)  # a later seq replays no earlier
        replay_at[(change.action_id, change.local_date, change.seq)] = latest
    return sorted(
        ordered,
        key=lambda c: (
            replay_at[(c.action_id, c.local_date, c.seq)],
            c.action_id,
            c.seq,
            c.local_date,
            c.event_id,
        ),
    )


# --- active dates and streaks ------------------------------------------------------------------


class _ActiveDays:
    """The local dates with at least one check-in, kept as sorted runs of consecutive days."""

    def __init__(self) -> None:
        self._days: list[int] = []  # ordinals, sorted
        self._starts: list[int] = []  # runs of consecutive ordinals, sorted, disjoint
        self._ends: list[int] = []
        self._longest_before = 0  # the longest run among those compacted away

    def compact(self, floor: int) -> None:
        """Forget the days before `floor` and the runs that ended before it but the last one.

        Every run that reaches `floor` is kept whole (a streak may have started long ago), and
        so is the run before them: a return after a gap reads the end of that one.
        """
        del self._days[: bisect_left(self._days, floor)]
        first_kept = max(bisect_left(self._ends, floor) - 1, 0)
        if first_kept:
            dropped = zip(self._starts[:first_kept], self._ends[:first_kept], strict=True)
            self._longest_before = max(self._longest_before, *(e - s + 1 for s, e in dropped))
            del self._starts[:first_kept], self._ends[:first_kept]

    def to_state(self) -> dict[str, list[int] | int]:
        """The days and runs as plain data."""
        return {
            "days": list(self._days),
            "starts": list(self._starts),
            "ends": list(self._ends),
            "longest_before": self._longest_before,
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> _ActiveDays:
        """Days and runs from `to_state`."""
        days = cls()
        days._days = [int(d) for d in state["days"]]
        days._starts = [int(d) for d in state["starts"]]
        days._ends = [int(d) for d in state["ends"]]
        days._longest_before = int(state["longest_before"])
        return days

    def __contains__(self, day: int) -> bool:
        i = bisect_left(self._days, day)
        return i < len(self._days) and self._days[i] == day

    def add(self, day: int) -> None:
        insort(self._days, day)
        i = bisect_right(self._starts, day) - 1
        joins_left = i >= 0 and self._ends[i] == day - 1
        joins_right = i + 1 < len(self._starts) and self._starts[i + 1] == day + 1
        if joins_left and joins_right:
            self._ends[i] = self._ends[i + 1]
            del self._starts[i + 1], self._ends[i + 1]
        elif joins_left:
            self._ends[i] = day
        elif joins_right:
            self._starts[i + 1] = day
        else:
            self._starts.insert(i + 1, day)
            self._ends.insert(i + 1, day)

    def remove(self, day: int) -> None:
        del self._days[bisect_left(self._days, day)]
        i = bisect_right(self._starts, day) - 1
        start, end = self._starts[i], self._ends[i]
        if start == end:
            del self._starts[i], self._ends[i]
        elif start == day:
            self._starts[i] = day + 1
        elif end == day:
            self._ends[i] = day - 1
        else:
            self._ends[i] = day - 1
            self._starts.insert(i + 1, day + 1)
            self._ends.insert(i + 1, end)

    def _run_index(self, day: int) -> int | None:
        i = bisect_right(self._starts, day) - 1
        return i if i >= 0 and self._ends[i] >= day else None

    def streak_ending(self, day: int) -> int:
        """Consecutive active days ending at `day`, counting it (0 when `day` is not active)."""
        i = self._run_index(day)
        return 0 if i is None else day - self._starts[i] + 1

    def run_length(self, day: int) -> int:
        """Length of the whole run of consecutive active days that `day` is part of."""
        i = self._run_index(day)
        return 0 if i is None else self._ends[i] - self._starts[i] + 1

    def is_comeback(self, day: int) -> bool:
        """`day` is one of the first 3 days after a return from a gap of 3 or more empty days."""
        for back in range(COMEBACK_DAYS):
            i = self._run_index(day - back)
            if i is None or self._starts[i] != day - back:
                continue
            # A return needs an earlier check-in: the very first check-in is not a comeback.
            if i > 0 and self._starts[i] - self._ends[i - 1] - 1 >= COMEBACK_GAP_DAYS:
                return True
        return False

    def between(self, first: int, last: int) -> list[int]:
        """The active days from `first` to `last`, both included."""
        return self._days[bisect_left(self._days, first) : bisect_right(self._days, last)]

    def last(self) -> int | None:
        return self._days[-1] if self._days else None

    def longest(self) -> int:
        runs = (e - s + 1 for s, e in zip(self._starts, self._ends, strict=True))
        return max(self._longest_before, *runs) if self._starts else self._longest_before


# --- the replay --------------------------------------------------------------------------------


class _Award(NamedTuple):
    """What a done (action, date) was awarded, kept so its undo takes back exactly that."""

    amount: int
    multiplier: float
    local_time: time | None


class _Cause(NamedTuple):
    """The ledger line (or change) a consequence is attributed to."""

    key: str
    local_date: date | None
    event_id: str | None
    occurred_at: datetime | None


def _seconds(moment: time | None) -> int | None:
    return None if moment is None else moment.hour * 3600 + moment.minute * 60 + moment.second


def _time_of(seconds: int | None) -> time | None:
    return None if seconds is None else time(seconds // 3600, seconds // 60 % 60, seconds % 60)


def _iso(day: date | None) -> str | None:
    return None if day is None else day.isoformat()


def _monday(day: date) -> date:
    """The Monday of `day`'s ISO week."""
    return date.fromordinal(day.toordinal() - day.weekday())


def _lowest_needed(day: date) -> date:
    """The earliest date whose check-ins can decide, within their week or month, if `day` is due."""
    return min(_monday(day), day.replace(day=1))


def _share_below_perfect_week(done: int, due: int) -> bool:
    """Whether `done` of `due` is under the perfect-week share (exact integer arithmetic)."""
    numerator, denominator = PERFECT_WEEK_SHARE
    return done * denominator < due * numerator


def _judged_by_history(action: Action) -> bool:
    """Missions and N-times routines are due depending on the other days they were done on."""
    return action.type == "mission" or (
        action.schedule is not None and action.schedule.times is not None
    )


def _reach_after(action: Action, day: date) -> date | None:
    """The last date whose due list a check-in of `action` on `day` can alter (None: no other)."""
    if not _judged_by_history(action):
        return None  # daily and weekday routines are due whatever was done on other days
    if action.type == "mission":
        return date.max
    assert action.schedule is not None  # an N-times routine
    bounds = week_bounds if action.schedule.frequency == "weekly" else month_bounds
    return bounds(day)[1]


class _Fold:
    """The running state of one user's replay."""

    def __init__(self, actions: Iterable[Action], has_grid: bool) -> None:
        self._use_actions(actions)
        self.plain_done: dict[date, int] = {}
        self.has_grid = has_grid
        self.awards_before = 0  # check-ins held, on dates compacted away
        self.perfect_before = 0  # perfect dates, among those compacted away
        self.lines: list[LedgerLine] = []
        self.xp_total = 0
        self.top_level = 1
        self.levels_reached: list[LevelUp] = []
        self.milestone_windows: list[tuple[date, date]] = []  # [first day, day after the last)
        self.awards: dict[tuple[str, date], _Award] = {}
        self.done_dates: dict[str, list[date]] = {}
        self.checkins_on: dict[date, int] = {}
        self.active = _ActiveDays()
        self.active_in_month: dict[tuple[int, int], int] = {}
        self.in_window: dict[str, int] = {}
        self.perfect: set[date] = set()
        self.times_perfect: dict[date, int] = {}
        self.perfect_weeks: dict[date, bool] = {}
        self.perfect_week_keys: list[date] = []
        self.badges: dict[str, BadgeUnlock] = {}
        self.climbed: dict[BadgeFamily, int] = {}
        self.rules: DayRules = NO_RULES  # the user's pauses and repairs: given, never stored
        self.streak_carry = StreakState()  # the streak walked over the dates before the floor

    def _use_actions(self, actions: Iterable[Action]) -> None:
        self.actions = tuple(a for a in actions if is_checkable(a))
        self.by_id = {a.id: a for a in self.actions}
        self.judged_by_history = frozenset(a.id for a in self.actions if _judged_by_history(a))
        self.plain = tuple(a for a in self.actions if a.id not in self.judged_by_history)
        self.history_judged = tuple(a for a in self.actions if a.id in self.judged_by_history)
        self.plain_due: dict[date, int] = {}

    # -- applying a grid change --

    def change_grid(
        self, actions: Iterable[Action], has_grid: bool, day: date, cause: _Cause
    ) -> None:
        """From now on the dates are judged by these actions; `day` and later are judged again.

        A grid change takes nothing back from the dates before its own local date: they keep
        the judgement they had under the grid as it was then.
        """
        self._use_actions(actions)
        self.has_grid = self.has_grid or has_grid
        self.plain_done = {}
        for action_id, done_on in self.awards:
            if action_id in self.by_id and action_id not in self.judged_by_history:
                self.plain_done[done_on] = self.plain_done.get(done_on, 0) + 1
        self._forget_perfect_weeks_from(day)
        later = self.active.between(day.toordinal(), date.max.toordinal())
        self._settle_dates([date.fromordinal(d) for d in later], cause)

    # -- applying a change --

    def apply(self, change: CheckinChange) -> None:
        """A check marks the action done for its date, an undo un-marks it; repeats do nothing."""
        pair = (change.action_id, change.local_date)
        if change.done and pair not in self.awards:
            self._check(change)
        elif not change.done and pair in self.awards:
            self._undo(change)

    def _check(self, change: CheckinChange) -> None:
        """A check-in earns floor((10, or 15 on a 7-day streak) × multipliers); then the rest."""
        day = change.local_date
        self._mark(change.action_id, day, change.local_time)
        multiplier = self._multiplier_tenths(day)
        base = BASE_XP + (STREAK_BONUS_XP if self._streak_ending(day) >= STREAK_BONUS_DAYS else 0)
        amount = base * multiplier // 10
        award = _Award(amount, multiplier / 10, change.local_time)
        self.awards[(change.action_id, day)] = award
        key = f"checkin:{change.action_id}:{day.isoformat()}:{change.seq}"
        cause = _Cause(key, day, change.event_id, change.occurred_at)
        self._add(cause, amount, "checkin", change.action_id, None, award.multiplier)
        self._settle_perfect_days(change, cause)
        self._unlock_checkin_badges(day, cause)

    def _undo(self, change: CheckinChange) -> None:
        """An undo takes back exactly what its check-in was awarded, never a recomputed amount."""
        day = change.local_date
        award = self.awards.pop((change.action_id, day))
        self._unmark(change.action_id, day, award.local_time)
        key = f"undo:{change.action_id}:{day.isoformat()}:{change.seq}"
        cause = _Cause(key, day, change.event_id, change.occurred_at)
        self._add(cause, -award.amount, "checkin", change.action_id, None, award.multiplier)
        self._settle_perfect_days(change, cause)

    def _mark(self, action_id: str, day: date, local_time: time | None) -> None:
        insort(self.done_dates.setdefault(action_id, []), day)
        if action_id in self.by_id and action_id not in self.judged_by_history:
            self.plain_done[day] = self.plain_done.get(day, 0) + 1
        count = self.checkins_on.get(day, 0)
        self.checkins_on[day] = count + 1
        if count == 0:
            self.active.add(day.toordinal())
            month = (day.year, day.month)
            self.active_in_month[month] = self.active_in_month.get(month, 0) + 1
        for badge in self._windows_of(local_time):
            self.in_window[badge.code] = self.in_window.get(badge.code, 0) + 1
        self._forget_perfect_weeks_from(day)

    def _unmark(self, action_id: str, day: date, local_time: time | None) -> None:
        dates = self.done_dates[action_id]
        del dates[bisect_left(dates, day)]
        if action_id in self.by_id and action_id not in self.judged_by_history:
            self.plain_done[day] -= 1
        count = self.checkins_on[day] - 1
        if count:
            self.checkins_on[day] = count
        else:
            del self.checkins_on[day]
            self.active.remove(day.toordinal())
            self.active_in_month[(day.year, day.month)] -= 1
        for badge in self._windows_of(local_time):
            self.in_window[badge.code] -= 1
        self._forget_perfect_weeks_from(day)

    # -- XP per check-in --

    def _streak_ending(self, day: date) -> int:
        return self.active.streak_ending(day.toordinal())

    def _multiplier_tenths(self, day: date) -> int:
        """The sum of the active multipliers (in tenths) for a check-in on `day`, or 1× if none."""
        tenths = 0
        if day.weekday() >= 5:
            tenths += _WEEKEND
        if self.active.is_comeback(day.toordinal()):
            tenths += _COMEBACK
        if any(start <= day < end for start, end in self.milestone_windows):
            tenths += _LEVEL_MILESTONE
        if self._week_was_perfect(_monday(day) - _ONE_WEEK):
            tenths += _PERFECT_WEEK
        return tenths or _NO_MULTIPLIER

    # -- the ledger, levels and badges --

    def _add(
        self,
        cause: _Cause,
        amount: int,
        reason: LineReason,
        action_id: str | None,
        badge: str | None,
        multiplier: float | None,
    ) -> None:
        """Append a line, then record the levels its amount crossed going up."""
        self.lines.append(
            LedgerLine(
                key=cause.key,
                amount=amount,
                reason=reason,
                action_id=action_id,
                local_date=cause.local_date,
                badge=badge,
                source_event_id=cause.event_id,
                multiplier=multiplier,
                occurred_at=cause.occurred_at,
            )
        )
        self.xp_total += amount
        level = level_for_xp(self.xp_total)
        if level <= self.top_level:
            return
        for reached in range(self.top_level + 1, level + 1):
            self.levels_reached.append(LevelUp(reached, cause.key))
            if is_milestone(reached) and cause.local_date is not None:
                window_end = cause.local_date + timedelta(days=BONUS_DAYS)
                self.milestone_windows.append((cause.local_date, window_end))
        self.top_level = level
        for badge_ in by_family("level"):
            if self.top_level >= badge_.threshold:
                self._unlock(badge_, cause)

    def _unlock(self, badge: Badge, cause: _Cause) -> None:
        """A badge unlocks once, at the first line that meets its condition, and pays its reward."""
        if badge.code in self.badges:
            return
        self.badges[badge.code] = BadgeUnlock(badge.code, cause.key, cause.local_date)
        if badge.xp_reward:
            reward = _Cause(
                f"badge:{badge.code}", cause.local_date, cause.event_id, cause.occurred_at
            )
            self._add(reward, badge.xp_reward, "badge", None, badge.code, None)

    def _unlock_reached(self, family: BadgeFamily, count: int, cause: _Cause) -> None:
        """Unlock every badge of a family whose threshold `count` has reached."""
        ladder = by_family(family)  # lowest threshold first, so unlocked badges form a prefix
        climbed = self.climbed.get(family, 0)
        while climbed < len(ladder) and count >= ladder[climbed].threshold:
            self._unlock(ladder[climbed], cause)
            climbed += 1
        self.climbed[family] = climbed

    def _unlock_checkin_badges(self, day: date, cause: _Cause) -> None:
        """Badges a check-in can unlock, judged on the state right after it."""
        self._unlock_reached("first_checkin", self.award_count(), cause)
        if self.has_grid:
            self._unlock_reached("first_grid", 1, cause)
        self._unlock_reached("volume", self.award_count(), cause)
        self._unlock_reached("streak", self.active.run_length(day.toordinal()), cause)
        month_days = self.active_in_month[(day.year, day.month)]
        for badge in by_family("monthly"):
            if month_days < monthly_target(badge.threshold, day):
                break
            self._unlock(badge, cause)
        for badge in by_family("time_of_day"):
            if self.in_window.get(badge.code, 0) >= badge.threshold:
                self._unlock(badge, cause)

    @staticmethod
    def _windows_of(local_time: time | None) -> list[Badge]:
        if local_time is None:
            return []
        return [b for b in by_family("time_of_day") if b.in_window(local_time)]

    # -- perfect days and weeks --

    def _done_window(self, action_id: str, day: date, lowest: date) -> Collection[date]:
        """The done dates the due rules need to judge an action on `day`, from `lowest` on."""
        dates = self.done_dates.get(action_id)
        if not dates:
            return ()
        if action_id not in self.judged_by_history:
            return (day,) if (action_id, day) in self.awards else ()
        window = dates[bisect_left(dates, lowest) : bisect_right(dates, day)]
        return [dates[0], *window] if dates[0] < lowest else window

    def _done_view(self, day: date) -> dict[str, Collection[date]]:
        """The done dates the due rules need to judge `day`: that month and week, and the first."""
        lowest = _lowest_needed(day)
        return {a.id: self._done_window(a.id, day, lowest) for a in self.actions}

    def _some_history_action_left(self, day: date) -> bool:
        """Whether a mission or N-times routine is due on `day` and not done that day."""
        lowest = _lowest_needed(day)
        for action in self.history_judged:
            if (action.id, day) not in self.awards and is_due(
                action, day, self._done_window(action.id, day, lowest)
            ):
                return True
        return False

    def _plain_due_count(self, day: date) -> int:
        """How many daily and weekday routines are due on `day` (they need no history)."""
        count = self.plain_due.get(day)
        if count is None:
            count = self.plain_due[day] = sum(1 for a in self.plain if is_due(a, day, ()))
        return count

    def _is_perfect(self, day: date) -> bool:
        """A date is perfect when something was due and every due action was done."""
        if day not in self.checkins_on or self.rules.paused(day):
            return False  # on a paused date nothing is due
        if self.plain_done.get(day, 0) < self._plain_due_count(day):
            return False  # a shortcut: some daily or weekday routine is still to do
        if self._some_history_action_left(day):
            return False  # a shortcut: a mission or N-times routine is still to do
        return checklist(self.actions, day, self._done_view(day)).perfect

    def _dates_to_rejudge(self, change: CheckinChange) -> list[date]:
        """The change's own date, and the later active dates whose due list it can alter."""
        day = change.local_date
        action = self.by_id.get(change.action_id)
        reach = _reach_after(action, day) if action is not None else None
        if reach is None:
            return [day]
        later = self.active.between(day.toordinal() + 1, reach.toordinal())
        return [day, *(date.fromordinal(d) for d in later)]

    def _settle_perfect_days(self, change: CheckinChange, cause: _Cause) -> None:
        """Award +50 to each date the change made perfect, and take it back where it broke one."""
        self._settle_dates(self._dates_to_rejudge(change), cause)

    def _settle_dates(self, targets: Iterable[date], cause: _Cause) -> None:
        """Judge these dates again: +50 where one became perfect, −50 where one stopped being."""
        for target in targets:
            now, was = self._is_perfect(target), target in self.perfect
            if now == was:
                continue
            if now:
                self.perfect.add(target)
                n = self.times_perfect[target] = self.times_perfect.get(target, 0) + 1
                key, amount = f"perfect:{target.isoformat()}:{n}", PERFECT_DAY_XP
            else:
                self.perfect.remove(target)
                n = self.times_perfect[target]
                key, amount = f"perfect-undo:{target.isoformat()}:{n}", -PERFECT_DAY_XP
            line_cause = _Cause(key, target, cause.event_id, cause.occurred_at)
            self._add(line_cause, amount, "perfect_day", None, None, None)
            if now:
                self._unlock_reached("perfect_days", self.perfect_count(), line_cause)

    def _week_was_perfect(self, monday: date) -> bool:
        """A week is perfect when something was due and at least 80 % of what was due was done."""
        known = self.perfect_weeks.get(monday)
        if known is not None:
            return known
        every = (monday + timedelta(days=offset) for offset in range(7))
        days = [day for day in every if not self.rules.paused(day)]  # unpaused dates count
        checked = sum(self.checkins_on.get(day, 0) for day in days)
        at_least_due = sum(self._plain_due_count(day) for day in days)
        # A shortcut: when even every check-in counted as due and done is too few, skip the lists.
        perfect = bool(checked) and not _share_below_perfect_week(checked, at_least_due)
        perfect = perfect and self._judge_week(days)
        self.perfect_weeks[monday] = perfect
        insort(self.perfect_week_keys, monday)
        return perfect

    def _judge_week(self, days: list[date]) -> bool:
        """Whether at least 80 % of what was due on these days was done (and something was due)."""
        due = done = 0
        for day in days:
            items = checklist(self.actions, day, self._done_view(day))
            due, done = due + items.due_count, done + items.done_count
        return due > 0 and not _share_below_perfect_week(done, due)

    def _forget_perfect_weeks_from(self, day: date) -> None:
        """A change on `day` can alter the judgement of its own week and of every later week."""
        first = bisect_left(self.perfect_week_keys, _monday(day))
        for monday in self.perfect_week_keys[first:]:
            del self.perfect_weeks[monday]
        del self.perfect_week_keys[first:]

    def unlock_first_grid(self, cause: _Cause) -> None:
        """Unlock first_grid (once) at this cause."""
        self._unlock_reached("first_grid", 1, cause)

    def award_count(self) -> int:
        """How many (action, date) pairs hold a check-in now."""
        return self.awards_before + len(self.awards)

    def perfect_count(self) -> int:
        """How many dates are perfect now."""
        return self.perfect_before + len(self.perfect)

    # -- bounded state --

    def compact(self, floor: date) -> None:
        """Forget the detail of the dates before `floor`, keeping what later rules read of it.

        Counts (check-ins held, perfect dates, the longest streak) and each action's first done
        date survive as scalars; every rule applied to a date at least `LOOKBACK` after `floor`
        gives the same result as with the whole history (see `docs/gamification-rules.md`).
        """
        old = [pair for pair in self.awards if pair[1] < floor]
        self.awards_before += len(old)
        for pair in old:
            del self.awards[pair]
        for action_id, dates in list(self.done_dates.items()):
            cut = bisect_left(dates, floor)
            if cut:
                self.done_dates[action_id] = [dates[0], *dates[cut:]]
        self.checkins_on = {d: n for d, n in self.checkins_on.items() if d >= floor}
        self.plain_done = {d: n for d, n in self.plain_done.items() if d >= floor}
        self.plain_due = {d: n for d, n in self.plain_due.items() if d >= floor}
        carry = self.streak_carry
        walked_from = carry.next or date.min
        before = self.active.between(walked_from.toordinal(), floor.toordinal() - 1)
        self.streak_carry = walk(carry, map(date.fromordinal, before), self.rules, floor)
        self.active.compact(floor.toordinal())
        month = (floor.year, floor.month)
        self.active_in_month = {m: n for m, n in self.active_in_month.items() if m >= month}
        gone = {d for d in self.perfect if d < floor}
        self.perfect_before += len(gone)
        self.perfect -= gone
        self.times_perfect = {d: n for d, n in self.times_perfect.items() if d >= floor}
        first = bisect_left(self.perfect_week_keys, floor)
        for monday in self.perfect_week_keys[:first]:
            del self.perfect_weeks[monday]
        del self.perfect_week_keys[:first]
        self.milestone_windows = [(s, e) for s, e in self.milestone_windows if e > floor]

    def weight(self) -> int:
        """The detail kept: check-ins held by date, and the dates kept beside them."""
        return len(self.awards) + len(self.checkins_on) + len(self.perfect)

    # -- as plain data --

    def _hold(self, action_id: str, day: date, amount: int, tenths: int, secs: int | None) -> None:
        """Take back a stored check-in: its award and what is counted from it."""
        self.awards[(action_id, day)] = _Award(amount, tenths / 10, _time_of(secs))
        self.done_dates.setdefault(action_id, []).append(day)
        self.checkins_on[day] = self.checkins_on.get(day, 0) + 1
        if action_id in self.by_id and action_id not in self.judged_by_history:
            self.plain_done[day] = self.plain_done.get(day, 0) + 1

    def to_state(self, split: date | None = None) -> dict[str, Any]:
        """Everything later changes need, as plain data (actions referred to by index); with
        `split`, the check-ins held on dates before it are left to `cold_state`."""
        ids: dict[str, int] = {}

        def ref(action_id: str) -> int:
            return ids.setdefault(action_id, len(ids))

        held = [kv for kv in self.awards.items() if split is None or kv[0][1] >= split]
        by_day: dict[str, list[list[int | None]]] = {}
        for (action_id, day), award in sorted(held, key=lambda kv: kv[0][1]):
            secs = _seconds(award.local_time)
            tenths = round(award.multiplier * 10)
            by_day.setdefault(day.isoformat(), []).append(
                [ref(action_id), award.amount, tenths, secs]
            )
        first_before = {
            ref(action_id): dates[0].isoformat()
            for action_id, dates in self.done_dates.items()
            if dates and (action_id, dates[0]) not in self.awards
        }
        state = {
            "actions": [codecs.action_doc(a) for a in self.actions],
            "has_grid": self.has_grid,
            "awards": by_day,
            "first_before": {str(k): v for k, v in first_before.items()},
            "awards_before": self.awards_before,
            "perfect_before": self.perfect_before,
            "xp_total": self.xp_total,
            "top_level": self.top_level,
            # Which levels were reached, not which line crossed each: that would grow with them.
            "levels_reached": [lv.level for lv in self.levels_reached],
            "milestone_windows": [
                [a.isoformat(), b.isoformat()] for a, b in self.milestone_windows
            ],
            "active": self.active.to_state(),
            "active_in_month": [[y, m, n] for (y, m), n in self.active_in_month.items()],
            "in_window": dict(self.in_window),
            "perfect": sorted(d.isoformat() for d in self.perfect),
            "times_perfect": {d.isoformat(): n for d, n in self.times_perfect.items()},
            "perfect_weeks": {d.isoformat(): v for d, v in self.perfect_weeks.items()},
            "badges": [[b.code, b.key, _iso(b.local_date)] for b in self.badges.values()],
            "climbed": dict(self.climbed),
            "streak_carry": self.streak_carry.to_state(),
        }
        state["ids"] = list(ids)  # after every `ref` above
        return state

    def cold_state(self, split: date) -> dict[str, Any]:
        """The check-ins held on dates before `split`, as plain data (actions by id): what
        `to_state(split)` leaves out. They change only when compaction drops the oldest."""
        by_day: dict[str, list[list[Any]]] = {}
        for (action_id, day), award in sorted(self.awards.items(), key=lambda kv: kv[0][1]):
            if day < split:
                secs = _seconds(award.local_time)
                tenths = round(award.multiplier * 10)
                by_day.setdefault(day.isoformat(), []).append(
                    [action_id, award.amount, tenths, secs]
                )
        return {"awards": by_day}

    @classmethod
    def from_state(cls, state: Mapping[str, Any], cold: Mapping[str, Any] | None = None) -> _Fold:
        """A fold from `to_state` (and the `cold_state` it left out), ready for the changes that
        come after it."""
        fold = cls([codecs.action_from(a) for a in state["actions"]], bool(state["has_grid"]))
        ids: list[str] = list(state["ids"])
        cold_rows = (cold or {}).get("awards", {})
        for awards, named in ((cold_rows, True), (state["awards"], False)):
            for day_text, rows in awards.items():
                day = date.fromisoformat(day_text)
                for ref, amount, tenths, secs in rows:
                    fold._hold(ref if named else ids[ref], day, amount, tenths, secs)
        for index, day_text in state["first_before"].items():
            fold.done_dates.setdefault(ids[int(index)], []).append(date.fromisoformat(day_text))
        for dates in fold.done_dates.values():
            dates.sort()
        fold.awards_before = int(state["awards_before"])
        fold.perfect_before = int(state["perfect_before"])
        fold.xp_total = int(state["xp_total"])
        fold.top_level = int(state["top_level"])
        fold.levels_reached = [LevelUp(int(lv), "") for lv in state["levels_reached"]]
        fold.milestone_windows = [
            (date.fromisoformat(a), date.fromisoformat(b)) for a, b in state["milestone_windows"]
        ]
        fold.active = _ActiveDays.from_state(state["active"])
        fold.active_in_month = {(int(y), int(m)): int(n) for y, m, n in state["active_in_month"]}
        fold.in_window = {k: int(v) for k, v in state["in_window"].items()}
        fold.perfect = {date.fromisoformat(d) for d in state["perfect"]}
        fold.times_perfect = {
            date.fromisoformat(d): int(n) for d, n in state["times_perfect"].items()
        }
        fold.perfect_weeks = {
            date.fromisoformat(d): bool(v) for d, v in state["perfect_weeks"].items()
        }
        fold.perfect_week_keys = sorted(fold.perfect_weeks)
        fold.badges = {
            code: BadgeUnlock(code, key, date.fromisoformat(day) if day else None)
            for code, key, day in state["badges"]
        }
        fold.climbed = {cast(BadgeFamily, k): int(v) for k, v in state["climbed"].items()}
        fold.streak_carry = StreakState.from_state(state.get("streak_carry"))
        return fold

    def streak(self, today: date) -> StreakState:
        """The streak with freezes, pauses and repairs, walked from the carry up to `today`."""
        carry = self.streak_carry
        first = carry.next or date.min
        days = self.active.between(first.toordinal(), today.toordinal())
        return walk(carry, map(date.fromordinal, days), self.rules, today)

    # -- the result --

    def finish(self, today: date | None) -> DerivedState:
        """Unlock first_grid on its own if no check-in did, and read out the state."""
        if self.has_grid:
            cause = _Cause("badge:first_grid", None, None, None)
            self._unlock_reached("first_grid", 1, cause)
        last = self.active.last()
        last_active = date.fromordinal(last) if last is not None else None
        current = self.active.streak_ending(last) if last is not None else 0
        if today is not None and last_active is not None and last_active < today - timedelta(1):
            current = 0
        return DerivedState(
            lines=self.lines,
            xp_total=self.xp_total,
            level=level_for_xp(self.xp_total),
            levels_reached=self.levels_reached,
            streak_current=current,
            streak_longest=self.active.longest(),
            last_active_date=last_active,
            perfect_days=self.perfect_count(),
            badges=list(self.badges.values()),
        )


def derive(
    changes: Iterable[CheckinChange],
    actions: Sequence[Action],
    has_grid: bool,
    today: date | None = None,
    rules: DayRules = NO_RULES,
) -> DerivedState:
    """Replay a user's check-in changes in canonical order into their complete desired state.

    `actions` are the user's current actions (of active grids); `has_grid` says whether they ever
    made a grid; `today` (their local date) lets a streak that was not kept up read as 0.
    """
    fold = _Fold(tuple(actions), has_grid)
    fold.rules = rules
    for change in canonical_order(changes):
        fold.apply(change)
    return fold.finish(today)
