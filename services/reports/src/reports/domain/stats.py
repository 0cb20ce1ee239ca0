"""The weekly fold's fields, derived from compact per-week facts (see docs/reports.md).

Due counts follow the checklist rules (`mandaact_common.domain.schedule`): a week's due and done
counts need the grids as they stood at the end of that week and the done dates that the
weekly/monthly targets and missions look back on, which is why the caller passes the facts of the
weeks back to the first day of the month (`context_weeks`) and the user's mission states.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from mandaact_common.domain.calendar import iso_week, month_bounds, parse_iso_week, week_bounds
from mandaact_common.domain.schedule import WEEKDAY_CODES, action_due_and_done, due_and_done
from reports.domain.facts import CheckinState, Grid, GridBucket, UserFacts, WeekFacts

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
RATE_DIGITS = 4
"""Rates are fractions 0..1 rounded to 4 decimal places (0.7143 = 71.43 %)."""


def time_of_day(hour: int) -> Literal["morning", "afternoon", "evening", "night"]:
    """Morning 05–12, afternoon 12–17, evening 17–21, night 21–05 (local hour, end exclusive)."""
    if 5 <= hour < 12:
        return "morning"
    if 12 <= hour < 17:
        return "afternoon"
    if 17 <= hour < 21:
        return "evening"
    return "night"


def rate(done: int, due: int) -> float | None:
    """done / due rounded to RATE_DIGITS; None when nothing was due (not the same as 0 %)."""
    return round(done / due, RATE_DIGITS) if due else None


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class WeekdayCounts(_Model):
    """Check-ins per weekday of the ISO week."""

    mon: int = 0
    tue: int = 0
    wed: int = 0
    thu: int = 0
    fri: int = 0
    sat: int = 0
    sun: int = 0


class TimeOfDay(_Model):
    """Check-ins by the local hour they were made at (ranges in `time_of_day`)."""

    morning: int = 0
    afternoon: int = 0
    evening: int = 0
    night: int = 0


class SubGoalStat(_Model):
    """One sub-goal's week: its check-ins (`done`), its due actions (`due`, unpaused dates
    only) and the share of those done (`rate`, None when nothing was due)."""

    mandalart_id: str
    position: int = Field(ge=1, le=8)
    title: str
    due: int
    done: int
    rate: float | None


class VsPreviousWeek(_Model):
    """This week minus the previous week (a rate delta is None when either rate is)."""

    checkins_total: int
    completion_rate: float | None
    xp_gained: int


class WeeklyStats(_Model):
    """The fold of one user's ISO week (SPEC §2 "Weekly report", §4)."""

    days_active: int = Field(ge=0, le=7)
    checkins_total: int = Field(ge=0)
    checkins_by_weekday: WeekdayCounts
    due_total: int = Field(ge=0)
    done_total: int = Field(ge=0)
    completion_rate: float | None
    by_sub_goal: list[SubGoalStat]
    best_sub_goal: SubGoalStat | None
    worst_sub_goal: SubGoalStat | None
    best_day: Weekday | None
    worst_day: Weekday | None
    time_of_day: TimeOfDay
    routine_checkins: int = Field(ge=0)
    mission_checkins: int = Field(ge=0)
    streak_current: int = Field(ge=0)
    streak_best: int = Field(ge=0)
    xp_gained: int
    levels_gained: int = Field(ge=0)
    badges_unlocked: list[str]
    vs_previous_week: VsPreviousWeek


@dataclass(frozen=True, slots=True)
class _Core:
    """The week's own figures, before the comparison with the previous week."""

    checkins_total: int
    completion_rate: float | None
    xp_gained: int


def previous_week(week: str) -> str:
    """The ISO week before `week`."""
    monday, _ = parse_iso_week(week)
    return iso_week(monday - timedelta(days=7))


def next_week(week: str) -> str:
    """The ISO week after `week`."""
    monday, _ = parse_iso_week(week)
    return iso_week(monday + timedelta(days=7))


def context_weeks(week: str, monthly: bool = True) -> list[str]:
    """The weeks a report for `week` reads (back to the 1st of the month for monthly targets)."""
    # The previous week is always read (vs_previous_week); monthly N-times targets count done
    # dates from the 1st of the month, so with one the weeks back to it are read too.
    monday, _ = parse_iso_week(week)
    if not monthly:
        return [previous_week(week), week]
    first, _ = month_bounds(monday - timedelta(days=7))
    start, _ = week_bounds(first)
    count = (monday - start).days // 7 + 1
    return [iso_week(start + timedelta(days=7 * i)) for i in range(count)]


def has_monthly_target(buckets: Iterable[GridBucket]) -> bool:
    """Whether any version of the user's grids has a monthly N-times routine."""
    return any(
        a.schedule is not None and a.schedule.frequency == "monthly"
        for b in buckets
        for sg in b.grid.sub_goals
        for a in sg.actions
    )


def grids_as_of(buckets: Iterable[GridBucket], week: str) -> list[Grid]:
    """Each grid as it stood at the end of `week`: its last version changed in or before it."""
    latest: dict[str, GridBucket] = {}
    for bucket in buckets:
        if bucket.week > week:  # "YYYY-Www" strings sort chronologically
            continue
        seen = latest.get(bucket.grid.id)
        if seen is None or (bucket.week, bucket.grid.version) > (seen.week, seen.grid.version):
            latest[bucket.grid.id] = bucket
    return sorted((b.grid for b in latest.values()), key=lambda g: g.id)


def _done_dates(weeks: Mapping[str, WeekFacts], user: UserFacts) -> dict[str, set[date]]:
    out = user.mission_done_dates()
    for facts in weeks.values():
        for c in facts.done():
            out.setdefault(c.action_id, set()).add(c.local_date)
    return out


def _pick_days(
    days: Sequence[date], counts: Mapping[date, int], due_done: Mapping[date, tuple[int, int]]
) -> tuple[Weekday | None, Weekday | None]:
    def day_rate(day: date) -> float:
        due, done = due_done[day]
        return done / due if due else 0.0

    best = max(days, key=lambda d: (counts.get(d, 0), day_rate(d), -d.toordinal()))
    worst = min(days, key=lambda d: (counts.get(d, 0), day_rate(d), d.toordinal()))
    if counts.get(best, 0) == 0:
        return None, None
    best_code: Weekday = _weekday(best)
    worst_code: Weekday | None = _weekday(worst) if worst != best else None
    return best_code, worst_code


_WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _weekday(day: date) -> Weekday:
    return _WEEKDAYS[day.weekday()]


def _pick_sub_goals(
    stats: Sequence[SubGoalStat],
) -> tuple[SubGoalStat | None, SubGoalStat | None]:
    rated = [(i, s) for i, s in enumerate(stats) if s.rate is not None]
    if not rated:
        return None, None
    best = max(rated, key=lambda p: (p[1].rate or 0.0, p[1].done, -p[0]))[1]
    if len(rated) < 2:
        return best, None
    worst = min(rated, key=lambda p: (p[1].rate or 0.0, p[1].done, p[0]))[1]
    return best, (worst if worst is not best else None)


def _xp_gained(week: str, facts: WeekFacts | None, user: UserFacts) -> int:
    dated = sum(facts.xp.values()) if facts else 0
    undated = sum(amount for amount, at in user.undated_xp.values() if user.week_of(at) == week)
    return dated + undated


LAST_WEEK: Final = "9999-W52"
"""Later than every week: `grids_as_of` it gives every grid as it stands now."""


def _by_sub_goal(
    counted: Sequence[Grid],
    due_days: Sequence[date],
    done_dates: Mapping[str, set[date]],
    checkins: Sequence[CheckinState],
    latest: Sequence[Grid],
) -> list[SubGoalStat]:
    """Every sub-goal with a due action or a check-in in the week: `done` counts its check-ins,
    `due` its due actions, `rate` the due actions done over `due` (None when nothing was due).

    A sub-goal checked in on but with nothing due that week (a grid written after the week, its
    check-ins backfilled onto it) is named by the grid as it stands now, else by the check-in.
    """
    due_of: dict[tuple[str, int], tuple[int, int]] = {}
    title_of: dict[tuple[str, int], str] = {}
    order: list[tuple[str, int]] = []
    for grid in counted:
        for sg in sorted(grid.sub_goals, key=lambda s: s.position):
            due = done = 0
            for action in sg.actions:
                a_due, a_done = action_due_and_done(
                    action, due_days, done_dates.get(action.id, set())
                )
                due, done = due + a_due, done + a_done
            key = (grid.id, sg.position)
            title_of[key] = sg.title
            if due:
                due_of[key] = (due, done)
                order.append(key)
    checked: dict[tuple[str, int], int] = {}
    for c in checkins:
        key = (c.mandalart_id, c.sub_goal_position)
        checked[key] = checked.get(key, 0) + 1
    named = {(g.id, sg.position): sg.title for g in latest for sg in g.sub_goals}
    for key in sorted(checked, key=lambda k: (k not in title_of, k)):
        if key not in due_of:
            order.append(key)
            if key not in title_of:
                told = (c for c in checkins if (c.mandalart_id, c.sub_goal_position) == key)
                fallback = next((c.sub_goal_title for c in told), "")
                title_of[key] = named.get(key) or fallback
    out = []
    for key in order:
        due, due_done = due_of.get(key, (0, 0))
        out.append(
            SubGoalStat(
                mandalart_id=key[0],
                position=key[1],
                title=title_of.get(key, ""),
                due=due,
                done=checked.get(key, 0),
                rate=rate(due_done, due),
            )
        )
    return out


class _WeekFigures:
    """Everything of one week except the comparison with the previous one."""

    def __init__(
        self,
        week: str,
        weeks: Mapping[str, WeekFacts],
        grids: Sequence[Grid],
        user: UserFacts,
        latest: Sequence[Grid] = (),
    ) -> None:
        monday, _ = parse_iso_week(week)
        self.days = [monday + timedelta(days=i) for i in range(7)]
        facts = weeks.get(week)
        self.done = [c for c in facts.done() if c.local_date in self.days] if facts else []
        done_dates = _done_dates(weeks, user)
        counted = [g for g in grids if g.counts]
        actions = [a for g in counted for sg in g.sub_goals for a in sg.actions]
        # Nothing is due on a paused date; check-ins made on one still count as check-ins.
        due_days = user.unpaused(self.days)
        self.due_done = due_and_done(actions, due_days, done_dates)
        for day in self.days:
            self.due_done.setdefault(day, (0, 0))
        self.due_total = sum(due for due, _ in self.due_done.values())
        self.done_total = sum(done for _, done in self.due_done.values())
        self.by_sub_goal = _by_sub_goal(counted, due_days, done_dates, self.done, latest)
        self.xp_gained = _xp_gained(week, facts, user)
        self.streak = facts.streak if facts else None

    @property
    def core(self) -> _Core:
        """The figures the next week compares itself with."""
        return _Core(len(self.done), rate(self.done_total, self.due_total), self.xp_gained)


def weekly_stats(
    week: str,
    weeks: Mapping[str, WeekFacts],
    buckets: Sequence[GridBucket],
    user: UserFacts,
) -> WeeklyStats:
    """Derive the fold of `week` from the facts of `context_weeks(week)`, grids and user."""
    latest = grids_as_of(buckets, LAST_WEEK)
    this = _WeekFigures(week, weeks, grids_as_of(buckets, week), user, latest)
    prev_week = previous_week(week)
    prev = _WeekFigures(prev_week, weeks, grids_as_of(buckets, prev_week), user).core

    by_weekday: dict[str, int] = dict.fromkeys(WEEKDAY_CODES, 0)
    per_day: dict[date, int] = {}
    periods = {"morning": 0, "afternoon": 0, "evening": 0, "night": 0}
    kinds = {"routine": 0, "mission": 0}
    for c in this.done:
        by_weekday[WEEKDAY_CODES[c.local_date.weekday()]] += 1
        per_day[c.local_date] = per_day.get(c.local_date, 0) + 1
        periods[time_of_day(c.local_hour)] += 1
        kinds[c.action_type] += 1
    best_day, worst_day = _pick_days(this.days, per_day, this.due_done)
    best_sg, worst_sg = _pick_sub_goals(this.by_sub_goal)
    core = this.core
    badges = sorted((at, code) for code, at in user.badges.items() if user.week_of(at) == week)
    return WeeklyStats(
        days_active=len(per_day),
        checkins_total=core.checkins_total,
        checkins_by_weekday=WeekdayCounts(**by_weekday),
        due_total=this.due_total,
        done_total=this.done_total,
        completion_rate=core.completion_rate,
        by_sub_goal=this.by_sub_goal,
        best_sub_goal=best_sg,
        worst_sub_goal=worst_sg,
        best_day=best_day,
        worst_day=worst_day,
        time_of_day=TimeOfDay(**periods),
        routine_checkins=kinds["routine"],
        mission_checkins=kinds["mission"],
        streak_current=this.streak.current if this.streak else 0,
        streak_best=this.streak.longest if this.streak else 0,
        xp_gained=core.xp_gained,
        levels_gained=sum(1 for at in user.levels.values() if user.week_of(at) == week),
        badges_unlocked=[code for _, code in badges],
        vs_previous_week=VsPreviousWeek(
            checkins_total=core.checkins_total - prev.checkins_total,
            completion_rate=(
                round(core.completion_rate - prev.completion_rate, RATE_DIGITS)
                if core.completion_rate is not None and prev.completion_rate is not None
                else None
            ),
            xp_gained=core.xp_gained - prev.xp_gained,
        ),
    )
