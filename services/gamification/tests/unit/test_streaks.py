"""Streaks people can keep (SPEC §6): the worked examples of docs/gamification-rules.md §14."""

from __future__ import annotations

import random
from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gamification.domain.streaks import (
    NO_RULES,
    DateRange,
    DayRules,
    StreakState,
    streak,
    walk,
)
from mandaact_common.domain.pauses import Pause

pytestmark = pytest.mark.unit

MON = date(2026, 11, 2)


def days(first: date, n: int) -> list[date]:
    return [first + timedelta(days=i) for i in range(n)]


def test_seven_days_earn_a_freeze() -> None:
    seen = streak(days(MON, 7), NO_RULES, MON + timedelta(days=6))
    assert (seen.current, seen.longest, seen.freezes, seen.frozen) == (7, 7, 1, ())


def test_one_missed_day_uses_the_freeze_and_the_streak_goes_on_at_seven() -> None:
    missed = MON + timedelta(days=7)
    seen = streak(days(MON, 7), NO_RULES, missed + timedelta(days=1))
    assert (seen.current, seen.freezes, seen.frozen) == (7, 0, (missed,))
    # Checking in the day after adds to the run: the frozen date does not.
    after = streak([*days(MON, 7), missed + timedelta(days=1)], NO_RULES, missed + timedelta(1))
    assert (after.current, after.longest, after.freezes) == (8, 8, 0)


def test_a_second_missed_day_with_no_freeze_left_breaks_it() -> None:
    seen = streak(days(MON, 7), NO_RULES, MON + timedelta(days=9))
    assert (seen.current, seen.longest, seen.freezes) == (0, 7, 0)
    assert seen.frozen == (MON + timedelta(days=7),)


def test_today_without_a_check_in_is_not_over_yet() -> None:
    today = MON + timedelta(days=7)
    seen = streak(days(MON, 7), NO_RULES, today)
    assert (seen.current, seen.freezes, seen.frozen) == (7, 1, ())


def test_a_backfilled_check_in_on_the_frozen_date_gives_the_freeze_back() -> None:
    frozen = MON + timedelta(days=7)
    today = frozen + timedelta(days=1)
    before = streak(days(MON, 7), NO_RULES, today)
    assert (before.freezes, before.frozen) == (0, (frozen,))
    after = streak([*days(MON, 7), frozen], NO_RULES, today)
    assert (after.current, after.freezes, after.frozen) == (8, 1, ())


def test_a_paused_week_keeps_a_twenty_day_streak() -> None:
    active = days(MON, 20)
    away = MON + timedelta(days=20)
    rules = DayRules(pauses=(Pause(away, away + timedelta(days=6)),))
    back = away + timedelta(days=7)
    seen = streak(active, rules, back)
    assert (seen.current, seen.freezes, seen.frozen) == (20, 2, ())
    returned = streak([*active, back], rules, back)
    assert (returned.current, returned.freezes) == (21, 2)
    # Without the pause the two freezes go on the first two dates, and the run breaks.
    assert streak(active, NO_RULES, back).current == 0


def test_a_check_in_on_a_paused_date_still_counts() -> None:
    rules = DayRules(pauses=(Pause(MON + timedelta(days=1), MON + timedelta(days=3)),))
    seen = streak([MON, MON + timedelta(days=2)], rules, MON + timedelta(days=4))
    assert (seen.current, seen.freezes) == (2, 0)


def test_a_repair_over_an_outage_keeps_the_streak_without_using_freezes() -> None:
    outage = MON + timedelta(days=7)
    active = [*days(MON, 7), *days(outage + timedelta(days=1), 3)]
    rules = DayRules(repairs=(DateRange(outage, outage),))
    seen = streak(active, rules, outage + timedelta(days=3))
    assert (seen.current, seen.freezes, seen.frozen) == (10, 1, ())
    twice = DayRules(repairs=(DateRange(outage, outage), DateRange(outage, outage)))
    assert streak(active, twice, outage + timedelta(days=3)) == seen


def test_missed_dates_before_any_run_use_nothing() -> None:
    rules = NO_RULES
    seen = streak([MON + timedelta(days=5)], rules, MON + timedelta(days=5))
    assert (seen.current, seen.freezes, seen.frozen) == (1, 0, ())


def test_freezes_are_capped_at_two() -> None:
    seen = streak(days(MON, 28), NO_RULES, MON + timedelta(days=27))
    assert seen.freezes == 2


def test_frozen_dates_older_than_thirty_days_are_not_kept() -> None:
    frozen = MON + timedelta(days=7)
    active = [*days(MON, 7), *days(frozen + timedelta(days=1), 40)]
    seen = streak(active, NO_RULES, frozen + timedelta(days=40))
    assert seen.frozen == ()
    assert seen.current == 47


# --- a walk may stop at any date and go on from its state ----------------------------------------


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[date], DayRules, date]:
    span = draw(st.integers(min_value=1, max_value=90))
    active = [MON + timedelta(days=i) for i in range(span) if draw(st.booleans())]
    pauses = []
    start = draw(st.integers(min_value=0, max_value=span))
    length = draw(st.integers(min_value=0, max_value=10))
    if length:
        pauses.append(Pause(MON + timedelta(days=start), MON + timedelta(days=start + length - 1)))
    repairs = tuple(
        DateRange(MON + timedelta(days=d), MON + timedelta(days=d))
        for d in draw(st.lists(st.integers(min_value=0, max_value=span), max_size=3))
    )
    return active, DayRules(tuple(pauses), repairs), MON + timedelta(days=span)


@settings(max_examples=200, deadline=None)
@given(histories(), st.lists(st.integers(min_value=0, max_value=90), max_size=4))
def test_walking_in_steps_equals_walking_at_once(
    history: tuple[list[date], DayRules, date], stops: list[int]
) -> None:
    active, rules, today = history
    whole = streak(active, rules, today)
    state = StreakState()
    for stop in sorted({MON + timedelta(days=s) for s in stops if MON + timedelta(s) < today}):
        state = walk(state, [d for d in active if d < stop], rules, stop)
    state = walk(state, active, rules, today)
    assert state == whole


@settings(max_examples=100, deadline=None)
@given(histories(), st.randoms(use_true_random=False))
def test_the_order_and_repetition_of_dates_do_not_matter(
    history: tuple[list[date], DayRules, date], rnd: random.Random
) -> None:
    active, rules, today = history
    shuffled = [*active, *rnd.sample(active, len(active) // 2)]
    rnd.shuffle(shuffled)
    assert streak(shuffled, rules, today) == streak(active, rules, today)
