"""The weekly fold's fields, computed by hand for small weeks."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from mandaact_common.domain.pauses import Pause
from mandaact_common.domain.schedule import Action, Schedule
from reports.domain.facts import (
    CheckinState,
    Grid,
    GridBucket,
    GridSubGoal,
    StreakFact,
    UserFacts,
    WeekFacts,
)
from reports.domain.stats import (
    context_weeks,
    grids_as_of,
    previous_week,
    time_of_day,
    weekly_stats,
)

pytestmark = pytest.mark.unit

WEEK = "2026-W47"
MON = date(2026, 11, 16)
T, U = "acme", "alice"


def day(i: int) -> date:
    return MON + timedelta(days=i)


def routine(action_id: str, schedule: Schedule, added: date = MON) -> Action:
    return Action(action_id, "routine", schedule, added)


def mission(action_id: str, added: date = MON) -> Action:
    return Action(action_id, "mission", None, added)


def grid(version: int = 1, *, sub_goals: tuple[GridSubGoal, ...] | None = None) -> Grid:
    return Grid(
        id="m1",
        title="Core",
        version=version,
        active=True,
        deleted=False,
        sub_goals=sub_goals
        or (
            GridSubGoal(
                1,
                "Health",
                (routine("a1", Schedule.daily()), routine("a2", Schedule.weekly_on("mon", "thu"))),
            ),
            GridSubGoal(2, "Work", (routine("a3", Schedule.weekly_times(3)), mission("m1"))),
        ),
    )


def checkin(
    action_id: str,
    d: date,
    *,
    hour: int = 8,
    seq: int = 1,
    done: bool = True,
    sub_goal: int = 1,
    kind: str = "routine",
) -> CheckinState:
    return CheckinState(
        action_id=action_id,
        local_date=d,
        seq=seq,
        done=done,
        action_type="mission" if kind == "mission" else "routine",
        mandalart_id="m1",
        sub_goal_position=sub_goal,
        local_hour=hour,
    )


def week_of(week: str, *states: CheckinState) -> WeekFacts:
    facts = WeekFacts(T, U, week)
    for s in states:
        facts.record_checkin(s)
    return facts


def at(d: date, hour: int = 12) -> datetime:
    # Seoul is UTC+9: noon in Seoul is 03:00 UTC the same date.
    return datetime(d.year, d.month, d.day, hour, tzinfo=UTC) - timedelta(hours=9)


def test_a_week_computed_by_hand() -> None:
    this = week_of(
        WEEK,
        checkin("a1", day(0), hour=7),
        checkin("a1", day(1), hour=13),
        checkin("a1", day(2), hour=22),
        checkin("a2", day(0), hour=6),
        checkin("a3", day(1), hour=18, sub_goal=2),
        checkin("a3", day(2), hour=19, sub_goal=2),
        checkin("a3", day(3), hour=12, sub_goal=2),
        checkin("a3", day(4), hour=3, sub_goal=2),  # 4th of 3 a week: not due, still a check-in
        checkin("m1", day(2), hour=9, sub_goal=2, kind="mission"),
        # undone later (higher seq): no longer a check-in
        checkin("a1", day(3), seq=1),
        checkin("a1", day(3), seq=2, done=False),
    )
    this.record_xp("x1", 10)
    this.record_xp("x2", 15)
    this.record_xp("x3", -10)
    this.record_streak(StreakFact(at(day(2)), 3, 5))
    prev = week_of(previous_week(WEEK), checkin("a1", day(-1)))
    prev.record_xp("x0", 20)
    user = UserFacts(T, U, timezone="Asia/Seoul")
    user.record_mission(checkin("m1", day(2), kind="mission"))
    user.record_undated_xp("b1", 50, at(day(5)))
    user.record_undated_xp("b0", 50, at(day(-3)))  # the previous week's badge reward
    user.record_level(2, at(day(1)))
    user.record_badge("first_checkin", at(day(0)))
    user.record_badge("streak_3", at(day(2)))
    user.record_badge("old_badge", at(day(-2)))
    buckets = [GridBucket(T, U, WEEK, grid())]

    stats = weekly_stats(WEEK, {WEEK: this, prev.week: prev}, buckets, user)

    # due per day: mon a1 a2 a3 m1 | tue a1 a3 m1 | wed a1 a3 m1 | thu a1 a2 a3 | fri-sun a1
    assert (stats.due_total, stats.done_total) == (16, 8)
    assert stats.completion_rate == 0.5
    assert stats.checkins_total == 9
    assert stats.checkins_by_weekday.model_dump() == {
        "mon": 2,
        "tue": 2,
        "wed": 3,
        "thu": 1,
        "fri": 1,
        "sat": 0,
        "sun": 0,
    }
    assert stats.days_active == 5
    # `done` counts a sub-goal's check-ins (one of sub-goal 2's was not due); `rate` only
    # the due actions done.
    assert [(s.position, s.due, s.done, s.rate) for s in stats.by_sub_goal] == [
        (1, 9, 4, 0.4444),
        (2, 7, 5, 0.5714),
    ]
    assert stats.best_sub_goal is not None
    assert stats.best_sub_goal.title == "Work"
    assert stats.worst_sub_goal is not None
    assert stats.worst_sub_goal.title == "Health"
    assert (stats.best_day, stats.worst_day) == ("wed", "sat")
    assert stats.time_of_day.model_dump() == {
        "morning": 3,  # 07, 06, 09
        "afternoon": 2,  # 13, 12
        "evening": 2,  # 18, 19
        "night": 2,  # 22, 03
    }
    assert (stats.routine_checkins, stats.mission_checkins) == (8, 1)
    assert (stats.streak_current, stats.streak_best) == (3, 5)
    assert stats.xp_gained == 10 + 15 - 10 + 50
    assert stats.levels_gained == 1
    assert stats.badges_unlocked == ["first_checkin", "streak_3"]
    # The previous week: 1 check-in, nothing due yet (actions added this Monday), 20 + 50 XP.
    assert stats.vs_previous_week.model_dump() == {
        "checkins_total": 8,
        "completion_rate": None,
        "xp_gained": 65 - 70,
    }


def test_a_lower_seq_never_overrides_a_higher_one() -> None:
    late_first = week_of(WEEK, checkin("a1", day(0), seq=2, done=False), checkin("a1", day(0)))
    in_order = week_of(WEEK, checkin("a1", day(0)), checkin("a1", day(0), seq=2, done=False))
    assert late_first.checkins == in_order.checkins
    assert not late_first.has_checkins


def test_monthly_targets_count_from_the_first_of_the_month() -> None:
    # 2026-W05 runs Mon 26 Jan – Sun 1 Feb: a 2-a-month routine met in January is not due
    # again until 1 February.
    week = "2026-W05"
    assert context_weeks(week) == ["2026-W01", "2026-W02", "2026-W03", "2026-W04", "2026-W05"]
    assert context_weeks(week, monthly=False) == ["2026-W04", "2026-W05"]
    monthly = routine("r", Schedule.monthly_times(2), added=date(2026, 1, 1))
    g = Grid("m1", "Core", 1, True, False, (GridSubGoal(1, "S", (monthly,)),))
    weeks = {
        "2026-W02": week_of("2026-W02", checkin("r", date(2026, 1, 5))),
        "2026-W03": week_of("2026-W03", checkin("r", date(2026, 1, 12))),
        week: week_of(week, checkin("r", date(2026, 2, 1))),
    }
    stats = weekly_stats(week, weeks, [GridBucket(T, U, "2026-W01", g)], UserFacts(T, U))
    assert (stats.due_total, stats.done_total, stats.checkins_total) == (1, 1, 1)


def test_a_mission_done_in_an_earlier_week_is_not_due() -> None:
    user = UserFacts(T, U)
    user.record_mission(checkin("m1", date(2026, 11, 3), kind="mission"))
    g = Grid(
        "m1", "Core", 1, True, False, (GridSubGoal(2, "W", (mission("m1", date(2026, 11, 2)),)),)
    )
    weeks = {WEEK: week_of(WEEK, checkin("x", day(0)))}
    stats = weekly_stats(WEEK, weeks, [GridBucket(T, U, "2026-W45", g)], user)
    assert (stats.due_total, stats.completion_rate) == (0, None)
    # The sub-goal checked in on is listed with its check-in; nothing was due in it.
    assert [(s.position, s.due, s.done, s.rate) for s in stats.by_sub_goal] == [(1, 0, 1, None)]
    assert (stats.best_sub_goal, stats.worst_sub_goal) == (None, None)


def test_each_week_uses_its_end_of_week_grid() -> None:
    v1 = grid(1)
    v2 = grid(2, sub_goals=(GridSubGoal(1, "Renamed", (routine("a1", Schedule.daily()),)),))
    buckets = [GridBucket(T, U, "2026-W46", v1), GridBucket(T, U, "2026-W48", v2)]
    assert grids_as_of(buckets, WEEK) == [v1]
    assert grids_as_of(buckets, "2026-W48") == [v2]
    assert grids_as_of(buckets, "2026-W45") == []
    inactive = Grid("m1", "Core", 3, False, False, v1.sub_goals)
    stats = weekly_stats(
        WEEK,
        {WEEK: week_of(WEEK, checkin("a1", day(0)))},
        [GridBucket(T, U, WEEK, inactive)],
        UserFacts(T, U),
    )
    assert (stats.checkins_total, stats.due_total) == (1, 0)


def test_instant_dated_facts_are_bucketed_in_the_users_timezone() -> None:
    # Sunday 14:30 UTC is Sunday 23:30 in Seoul (this week) but Monday 04:30 in Kiritimati.
    sunday_late_seoul = datetime(2026, 11, 22, 14, 30, tzinfo=UTC)
    for tz, expected in (("Asia/Seoul", ["b"]), ("Pacific/Kiritimati", [])):
        user = UserFacts(T, U, timezone=tz)
        user.record_badge("b", sunday_late_seoul)
        stats = weekly_stats(WEEK, {WEEK: week_of(WEEK, checkin("a1", day(0)))}, [], user)
        assert stats.badges_unlocked == expected


def test_time_of_day_ranges() -> None:
    assert [time_of_day(h) for h in (4, 5, 11, 12, 16, 17, 20, 21, 0)] == [
        "night",
        "morning",
        "morning",
        "afternoon",
        "afternoon",
        "evening",
        "evening",
        "night",
        "night",
    ]


def test_best_and_worst_day_and_a_single_sub_goal() -> None:
    g = Grid(
        "m1", "Core", 1, True, False, (GridSubGoal(1, "S", (routine("a1", Schedule.daily()),)),)
    )
    everyday = week_of(WEEK, *(checkin("a1", day(i)) for i in range(7)))
    stats = weekly_stats(WEEK, {WEEK: everyday}, [GridBucket(T, U, WEEK, g)], UserFacts(T, U))
    assert (stats.best_day, stats.worst_day) == ("mon", None)  # every day alike
    assert stats.best_sub_goal is not None
    assert stats.worst_sub_goal is None
    assert stats.completion_rate == 1.0


# --- check-ins backfilled onto a week before the grid existed, and paused dates (SPEC §2, §6) --


def test_check_ins_backfilled_before_the_grid_was_written_are_listed_per_sub_goal() -> None:
    # The grid is written in the next week (its actions added then), and check-ins are
    # backfilled onto this week: nothing was due, but the user worked on both sub-goals.
    written = day(8)
    later = Grid(
        "m1",
        "Core",
        1,
        True,
        False,
        (
            GridSubGoal(1, "Health", (routine("a1", Schedule.daily(), written),)),
            GridSubGoal(2, "Work", (routine("a3", Schedule.daily(), written),)),
        ),
    )
    states = [checkin("a1", day(i)) for i in range(5)]
    states += [checkin("a3", day(i), sub_goal=2) for i in (1, 3)]
    weeks = {WEEK: week_of(WEEK, *states)}
    stats = weekly_stats(WEEK, weeks, [GridBucket(T, U, "2026-W48", later)], UserFacts(T, U))
    assert stats.checkins_total == 7
    assert (stats.due_total, stats.completion_rate) == (0, None)
    assert [(s.title, s.due, s.done, s.rate) for s in stats.by_sub_goal] == [
        ("Health", 0, 5, None),
        ("Work", 0, 2, None),
    ]
    assert (stats.best_sub_goal, stats.worst_sub_goal) == (None, None)


def test_nothing_is_due_on_paused_dates_but_their_check_ins_count() -> None:
    daily = grid(sub_goals=(GridSubGoal(1, "Health", (routine("a1", Schedule.daily()),)),))
    weeks = {WEEK: week_of(WEEK, *(checkin("a1", day(i)) for i in (0, 1, 5)))}
    user = UserFacts(T, U, pauses=(Pause(day(3), day(6)),))
    stats = weekly_stats(WEEK, weeks, [GridBucket(T, U, WEEK, daily)], user)
    # Due Monday to Wednesday only; Saturday's check-in was on a paused date.
    assert (stats.due_total, stats.done_total, stats.checkins_total) == (3, 2, 3)
    assert stats.completion_rate == 0.6667
    [health] = stats.by_sub_goal
    assert (health.due, health.done, health.rate) == (3, 3, 0.6667)
