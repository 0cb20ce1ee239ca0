"""Due rules and the daily checklist, with worked examples on real dates.

The week used throughout is ISO week 2026-W47: Monday 2026-11-16 to Sunday 2026-11-22.
November 2026 starts on a Sunday and ends on Monday the 30th.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mandaact_common.domain.calendar import days_between, month_bounds, week_bounds
from mandaact_common.domain.schedule import (
    WEEKDAY_CODES,
    WEEKDAY_NUMBERS,
    Action,
    Checklist,
    ChecklistItem,
    InvalidAction,
    InvalidSchedule,
    Schedule,
    action_due_and_done,
    checklist,
    due_and_done,
    is_checkable,
    is_due,
    weekday_code,
    weekday_number,
)

pytestmark = pytest.mark.unit

MON, TUE, WED, THU, FRI, SAT, SUN = (date(2026, 11, 16) + timedelta(days=i) for i in range(7))
WEEK = [MON, TUE, WED, THU, FRI, SAT, SUN]
LONG_AGO = date(2026, 1, 1)


def d(month: int, day: int, year: int = 2026) -> date:
    return date(year, month, day)


def routine(schedule: Schedule, added_on: date = LONG_AGO, id: str = "a") -> Action:
    return Action(id=id, type="routine", schedule=schedule, added_on=added_on)


def mission(added_on: date = LONG_AGO, due_date: date | None = None, id: str = "m") -> Action:
    return Action(id=id, type="mission", schedule=None, added_on=added_on, due_date=due_date)


def reference(id: str = "r") -> Action:
    return Action(id=id, type="reference", schedule=None, added_on=LONG_AGO)


def due_days(action: Action, days: list[date], done: Collection[date] = ()) -> list[date]:
    return [day for day in days if is_due(action, day, done)]


# --- weekday codes ------------------------------------------------------------------------------


def test_weekday_codes_match_date_weekday() -> None:
    assert WEEKDAY_CODES == ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    for day in WEEK:
        assert WEEKDAY_NUMBERS[weekday_code(day.weekday())] == day.weekday()
    assert weekday_number("mon") == MON.weekday() == 0
    assert weekday_number("sun") == SUN.weekday() == 6


def test_weekday_lookups_reject_unknown_values() -> None:
    with pytest.raises(InvalidSchedule, match="unknown weekday 'Mon'"):
        weekday_number("Mon")
    with pytest.raises(ValueError, match=r"0\.\.6"):
        weekday_code(7)


# --- schedule validation ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frequency", "days", "times", "expected"),
    [
        ("daily", None, None, Schedule("daily")),
        ("weekly", ["fri", "mon", "wed"], None, Schedule("weekly", frozenset({0, 2, 4}))),
        ("weekly", ["sun"], None, Schedule("weekly", frozenset({6}))),
        ("weekly", None, 1, Schedule("weekly", None, 1)),
        ("weekly", None, 7, Schedule("weekly", None, 7)),
        ("monthly", None, 1, Schedule("monthly", None, 1)),
        ("monthly", None, 31, Schedule("monthly", None, 31)),
    ],
)
def test_valid_schedules(
    frequency: str, days: list[str] | None, times: int | None, expected: Schedule
) -> None:
    assert Schedule.from_parts(frequency, days, times) == expected


@pytest.mark.parametrize(
    ("frequency", "days", "times", "message"),
    [
        ("hourly", None, None, "unknown frequency 'hourly'"),
        ("daily", ["mon"], None, "daily schedule takes no days"),
        ("daily", [], None, "daily schedule takes no days"),
        ("daily", None, 1, "daily schedule takes no times"),
        ("weekly", None, None, "weekly schedule needs either days or times"),
        ("weekly", ["mon"], 2, "weekly schedule takes days or times, not both"),
        ("weekly", [], None, "weekly schedule's days must not be empty"),
        ("weekly", ["mon", "mon"], None, "weekday 'mon' is listed more than once"),
        ("weekly", ["monday"], None, "unknown weekday 'monday'"),
        ("weekly", "mon", None, "days must be a list of weekday codes"),
        ("weekly", None, 0, r"weekly schedule's times must be 1\.\.7, got 0"),
        ("weekly", None, 8, r"weekly schedule's times must be 1\.\.7, got 8"),
        ("monthly", None, None, "monthly schedule needs times"),
        ("monthly", ["mon"], 2, "monthly schedule takes no days"),
        ("monthly", None, 0, r"monthly schedule's times must be 1\.\.31, got 0"),
        ("monthly", None, 32, r"monthly schedule's times must be 1\.\.31, got 32"),
        ("monthly", None, True, "times must be an integer"),
    ],
)
def test_invalid_schedules(
    frequency: str, days: list[str] | None, times: int | None, message: str
) -> None:
    with pytest.raises(InvalidSchedule, match=message):
        Schedule.from_parts(frequency, days, times)


def test_schedule_constructor_validates_too() -> None:
    with pytest.raises(InvalidSchedule, match=r"0\.\.6"):
        Schedule("weekly", frozenset({7}))
    with pytest.raises(InvalidSchedule, match="not both"):
        Schedule("weekly", frozenset({0}), 3)


def test_invalid_schedule_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="needs times"):
        Schedule.from_parts("monthly", None, None)


def test_day_codes_round_trip_in_week_order() -> None:
    schedule = Schedule.weekly_on("sun", "wed", "mon")
    assert schedule.day_codes() == ["mon", "wed", "sun"]
    assert Schedule.from_parts("weekly", schedule.day_codes(), None) == schedule
    assert Schedule.weekly_times(3).day_codes() is None


def test_action_type_and_schedule_must_fit() -> None:
    with pytest.raises(InvalidAction, match="routine 'a' needs a schedule"):
        Action("a", "routine", None, LONG_AGO)
    with pytest.raises(InvalidAction, match="mission 'm' takes no schedule"):
        Action("m", "mission", Schedule.daily(), LONG_AGO)
    with pytest.raises(InvalidAction, match="reference 'r' takes no schedule"):
        Action("r", "reference", Schedule.daily(), LONG_AGO)
    with pytest.raises(InvalidAction, match="routine 'a' takes no due date"):
        Action("a", "routine", Schedule.daily(), LONG_AGO, due_date=SUN)


# --- each schedule across a week ----------------------------------------------------------------


def test_daily_routine_is_due_every_day() -> None:
    assert due_days(routine(Schedule.daily()), WEEK) == WEEK


def test_weekly_routine_on_weekdays_is_due_on_those_days() -> None:
    action = routine(Schedule.weekly_on("mon", "wed", "fri"))
    assert due_days(action, WEEK) == [MON, WED, FRI]
    # Being done (or not) does not change which weekdays it is due on.
    assert due_days(action, WEEK, {MON, TUE, WED}) == [MON, WED, FRI]


def test_weekly_on_weekdays_across_a_month() -> None:
    action = routine(Schedule.weekly_on("sun"))
    november = list(days_between(*month_bounds(d(11, 1))))
    assert due_days(action, november) == [d(11, 1), d(11, 8), d(11, 15), d(11, 22), d(11, 29)]


def test_weekly_n_times_is_due_all_week_until_target_met() -> None:
    action = routine(Schedule.weekly_times(3))
    assert due_days(action, WEEK) == WEEK
    # Only two of three done: still due every day, including the days after.
    assert due_days(action, WEEK, {MON, WED}) == WEEK


def test_weekly_target_met_midweek_stays_on_completion_day_then_leaves() -> None:
    action = routine(Schedule.weekly_times(2))
    done = {TUE, THU}
    assert due_days(action, WEEK, done) == [MON, TUE, WED, THU]
    # Thursday is on the checklist, ticked; Friday to Sunday it is not listed.
    assert checklist([action], THU, {"a": done}).items == (ChecklistItem("a", True),)
    assert checklist([action], FRI, {"a": done}).items == ()
    # The next ISO week starts over.
    next_week = [day + timedelta(days=7) for day in WEEK]
    assert due_days(action, next_week, done) == next_week


def test_weekly_target_counts_the_iso_week_across_a_year_boundary() -> None:
    # ISO week 2026-W53 runs Monday 2026-12-28 to Sunday 2027-01-03.
    action = routine(Schedule.weekly_times(1))
    days = list(days_between(d(12, 28), d(1, 5, 2027)))
    done = {d(12, 29)}
    assert due_days(action, days, done) == [d(12, 28), d(12, 29), d(1, 4, 2027), d(1, 5, 2027)]


def test_extra_check_in_after_target_does_not_count_as_done() -> None:
    action = routine(Schedule.weekly_times(1))
    done = {MON, WED}
    assert action_due_and_done(action, WEEK, done) == (1, 1)


# --- monthly ------------------------------------------------------------------------------------


def test_monthly_n_times_is_due_until_target_met_in_the_month() -> None:
    action = routine(Schedule.monthly_times(2))
    november = list(days_between(*month_bounds(d(11, 1))))
    done = {d(11, 10), d(11, 20)}
    assert due_days(action, november, done) == list(days_between(d(11, 1), d(11, 20)))


def test_monthly_target_starts_over_with_the_month() -> None:
    action = routine(Schedule.monthly_times(2))
    days = list(days_between(d(11, 28), d(12, 3)))
    # Done on the last two days of November: met on the 30th, due again from 1 December
    # even though 30 Nov and 1 Dec are in the same ISO week.
    done = {d(11, 29), d(11, 30)}
    assert due_days(action, days, done) == days
    assert checklist([action], d(11, 30), {"a": done}).items == (ChecklistItem("a", True),)
    # Met on 1 and 2 December: not due on the 3rd.
    done = {d(11, 30), d(12, 1), d(12, 2)}
    assert due_days(action, days, done) == days[:-1]


def test_monthly_once_across_a_whole_month() -> None:
    action = routine(Schedule.monthly_times(1))
    december = list(days_between(*month_bounds(d(12, 15))))
    assert action_due_and_done(action, december, {d(12, 15)}) == (15, 1)
    assert action_due_and_done(action, december, ()) == (31, 0)


# --- missions -----------------------------------------------------------------------------------


def test_mission_leaves_the_list_the_day_after_it_is_done() -> None:
    action = mission()
    done = {WED}
    assert due_days(action, WEEK, done) == [MON, TUE, WED]
    assert checklist([action], WED, {"m": done}).items == (ChecklistItem("m", True),)
    assert checklist([action], THU, {"m": done}).items == ()


def test_mission_never_done_stays_due_after_its_due_date() -> None:
    action = mission(due_date=TUE)
    assert due_days(action, WEEK) == WEEK


def test_undone_mission_comes_back() -> None:
    action = mission()
    assert not is_due(action, THU, {WED})
    assert is_due(action, THU, set())


def test_mission_done_before_it_was_added_is_never_due() -> None:
    action = mission(added_on=WED)
    assert due_days(action, WEEK, {TUE}) == []


# --- added_on -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "schedule",
    [Schedule.daily(), Schedule.weekly_times(7), Schedule.monthly_times(31)],
)
def test_nothing_is_due_before_it_was_added(schedule: Schedule) -> None:
    assert due_days(routine(schedule, added_on=WED), WEEK) == [WED, THU, FRI, SAT, SUN]


def test_weekdays_before_added_on_are_cut() -> None:
    action = routine(Schedule.weekly_on("mon", "wed", "fri"), added_on=TUE)
    assert due_days(action, WEEK) == [WED, FRI]
    assert due_days(mission(added_on=FRI), WEEK) == [FRI, SAT, SUN]


def test_check_ins_before_added_on_count_towards_the_target() -> None:
    # Added on Thursday, checked in (backfilled) on Wednesday and then on Thursday: target met.
    action = routine(Schedule.weekly_times(2), added_on=THU)
    assert due_days(action, WEEK, {WED, THU}) == [THU]


# --- references ---------------------------------------------------------------------------------


def test_reference_is_never_due_nor_checkable() -> None:
    action = reference()
    assert not is_checkable(action)
    assert due_days(action, WEEK, set(WEEK)) == []
    assert checklist([action], MON, {"r": {MON}}).items == ()
    assert is_checkable(mission())
    assert is_checkable(routine(Schedule.daily()))


# --- checklist ----------------------------------------------------------------------------------


ACTIONS = [
    routine(Schedule.daily(), id="run"),
    routine(Schedule.weekly_on("mon", "thu"), id="gym"),
    routine(Schedule.weekly_times(2), id="read"),
    mission(id="book", due_date=FRI),
    reference(id="mindset"),
]


def test_checklist_lists_due_actions_in_order_with_done_flags() -> None:
    done = {"run": {MON}, "read": {MON}, "mindset": {MON}}
    result = checklist(ACTIONS, MON, done)
    assert result == Checklist(
        MON,
        (
            ChecklistItem("run", True),
            ChecklistItem("gym", False),
            ChecklistItem("read", True),
            ChecklistItem("book", False),
        ),
    )
    assert (result.due_count, result.done_count, result.perfect) == (4, 2, False)


def test_checklist_is_perfect_when_all_due_done() -> None:
    done = {"run": {TUE}, "read": {MON, TUE}, "book": {TUE}}
    result = checklist(ACTIONS, TUE, done)
    assert [item.action_id for item in result.items] == ["run", "read", "book"]
    assert (result.due_count, result.done_count, result.perfect) == (3, 3, True)
    # Wednesday: the book and the reading target are done, only the run is left.
    wednesday = checklist(ACTIONS, WED, done)
    assert [item.action_id for item in wednesday.items] == ["run"]
    assert not wednesday.perfect


def test_check_in_on_a_day_it_is_not_due_does_not_count() -> None:
    result = checklist(ACTIONS[1:2], TUE, {"gym": {TUE}})
    assert (result.due_count, result.done_count) == (0, 0)


def test_a_day_with_nothing_due_is_never_perfect() -> None:
    assert not checklist([], MON, {}).perfect
    assert not checklist([reference()], MON, {"r": {MON}}).perfect
    nothing_due_yet = checklist([routine(Schedule.daily(), added_on=TUE)], MON, {"a": {MON}})
    assert (nothing_due_yet.due_count, nothing_due_yet.perfect) == (0, False)


def test_due_and_done_for_a_week() -> None:
    done = {"run": {MON, TUE, SUN}, "gym": {MON, THU}, "read": {WED, SAT}, "book": {FRI}}
    assert due_and_done(iter(ACTIONS), WEEK, done) == {
        MON: (4, 2),  # run, gym, read, book
        TUE: (3, 1),  # run, read, book
        WED: (3, 1),  # run, read (done 1st time), book
        THU: (4, 1),  # run, gym, read, book
        FRI: (3, 1),  # run, read, book (done)
        SAT: (2, 1),  # run, read (done: target met)
        SUN: (1, 1),  # run
    }


# --- properties ---------------------------------------------------------------------------------

FIRST, LAST = d(10, 1), d(2, 28, 2027)
dates = st.dates(min_value=FIRST, max_value=LAST)
schedules = st.one_of(
    st.just(Schedule.daily()),
    st.frozensets(st.integers(0, 6), min_size=1).map(lambda days: Schedule("weekly", days)),
    st.integers(1, 7).map(Schedule.weekly_times),
    st.integers(1, 31).map(Schedule.monthly_times),
)


@st.composite
def actions_and_done(draw: st.DrawFn) -> tuple[list[Action], dict[str, frozenset[date]]]:
    actions: list[Action] = []
    done: dict[str, frozenset[date]] = {}
    for index in range(draw(st.integers(0, 6))):
        id = f"a{index}"
        kind = draw(st.sampled_from(["routine", "mission", "reference"]))
        added_on = draw(dates)
        if kind == "routine":
            actions.append(routine(draw(schedules), added_on, id=id))
        elif kind == "mission":
            actions.append(mission(added_on, draw(st.none() | dates), id=id))
        else:
            actions.append(Action(id, "reference", None, added_on))
        done[id] = draw(st.frozensets(dates, max_size=40))
    return actions, done


@given(actions_and_done(), dates)
def test_checklist_counts_are_consistent(
    case: tuple[list[Action], Mapping[str, frozenset[date]]], day: date
) -> None:
    actions, done = case
    result = checklist(actions, day, done)
    assert 0 <= result.done_count <= result.due_count
    assert result.perfect == (result.due_count > 0 and result.done_count == result.due_count)
    listed = {item.action_id: item.done for item in result.items}
    for action in actions:
        assert (action.id in listed) == is_due(action, day, done[action.id])
        if action.id in listed:
            assert listed[action.id] == (day in done[action.id])
            assert is_checkable(action)
            assert day >= action.added_on


@given(schedules, dates, st.frozensets(dates, max_size=60))
def test_targets_are_never_counted_more_than_n_times(
    schedule: Schedule, added_on: date, done: frozenset[date]
) -> None:
    action = routine(schedule, added_on)
    for bounds, frequency in ((week_bounds, "weekly"), (month_bounds, "monthly")):
        if schedule.frequency != frequency or schedule.times is None:
            continue
        first, last = bounds(added_on)
        period = list(days_between(first, last))
        due, done_count = action_due_and_done(action, period, done)
        assert done_count <= schedule.times
        # Not met before the last day of the period means due every day since it was added.
        if sum(1 for day in done if first <= day < last) < schedule.times:
            assert due == sum(1 for day in period if day >= added_on)


@given(dates, st.frozensets(dates, max_size=10))
def test_a_mission_is_done_at_most_once(added_on: date, done: frozenset[date]) -> None:
    days = list(days_between(FIRST, LAST))
    _, done_count = action_due_and_done(mission(added_on), days, done)
    assert done_count <= 1
