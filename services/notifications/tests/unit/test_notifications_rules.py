"""The pure rules: quiet hours, the user's day, fire times across DST, next fire times."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest

from notifications.domain.model import (
    EventNotice,
    Owner,
    Preferences,
    QuietHours,
    Streak,
    UserState,
    event_decision,
    fire_on,
    local_date_at,
    next_fire,
)
from services.notifications.tests.support import TODAY, seoul

pytestmark = pytest.mark.unit

OWNER = Owner("acme", "alice")


@pytest.mark.parametrize(
    ("start", "end", "moment", "quiet"),
    [
        (time(22), time(8), time(22), True),
        (time(22), time(8), time(23, 59), True),
        (time(22), time(8), time(0), True),
        (time(22), time(8), time(7, 59), True),
        (time(22), time(8), time(8), False),
        (time(22), time(8), time(21, 59), False),
        (time(13), time(15), time(13), True),
        (time(13), time(15), time(15), False),
        (time(13), time(15), time(12, 59), False),
        (time(9), time(9), time(9), False),
    ],
)
def test_quiet_hours_may_wrap_midnight(start: time, end: time, moment: time, quiet: bool) -> None:
    assert QuietHours(start, end).contains(moment) is quiet


def test_a_late_night_time_belongs_to_the_previous_day_when_the_day_starts_later() -> None:
    prefs = Preferences(day_starts_at=time(4, 0), reminder_time=time(1, 30))
    assert local_date_at(seoul(TODAY, 1, 30), prefs) == TODAY - timedelta(days=1)
    # The reminder of TODAY at 01:30 is on the next calendar date's wall clock.
    assert fire_on(TODAY, time(1, 30), prefs) == seoul(TODAY + timedelta(days=1), 1, 30)
    state = UserState(OWNER, prefs)
    assert next_fire("daily_reminder", state, None, seoul(TODAY, 12)) == seoul(
        TODAY + timedelta(days=1), 1, 30
    )


def test_fire_times_follow_the_wall_clock_across_a_dst_change() -> None:
    prefs = Preferences(timezone="America/New_York")
    before = fire_on(date(2026, 10, 31), time(20), prefs)
    after = fire_on(date(2026, 11, 1), time(20), prefs)
    assert before == datetime(2026, 11, 1, 0, 0, tzinfo=UTC)  # EDT, UTC-4
    assert after == datetime(2026, 11, 2, 1, 0, tzinfo=UTC)  # EST, UTC-5
    assert after - before == timedelta(hours=25)


def test_streak_at_risk_is_only_scheduled_for_a_standing_streak_of_three() -> None:
    now = seoul(TODAY, 12)
    yesterday = TODAY - timedelta(days=1)

    def state(current: int, last: date, frozen: frozenset[date] = frozenset()) -> UserState:
        return UserState(OWNER, Preferences(), streak=Streak(current, last, frozen, now))

    assert next_fire("streak_at_risk", state(3, yesterday), None, now) == seoul(TODAY, 21)
    assert next_fire("streak_at_risk", state(2, yesterday), None, now) is None
    broken = TODAY - timedelta(days=2)
    assert next_fire("streak_at_risk", state(5, broken), None, now) is None
    assert next_fire("streak_at_risk", state(5, broken, frozenset({yesterday})), None, now) == (
        seoul(TODAY, 21)
    )
    # Checked in today: tomorrow's 21:00 is the next time the streak can be at risk.
    assert next_fire("streak_at_risk", state(4, TODAY), None, now) == seoul(
        TODAY + timedelta(days=1), 21
    )


def test_comeback_fires_on_the_3rd_7th_and_14th_day_then_stops() -> None:
    last = TODAY
    state = UserState(OWNER, Preferences())
    fires = []
    now = seoul(TODAY, 12)
    while (fire := next_fire("comeback", state, last, now)) is not None:
        fires.append(fire)
        now = fire
    assert fires == [seoul(last + timedelta(days=d), 20) for d in (3, 7, 14)]


def test_an_event_in_quiet_hours_waits_for_their_end_the_next_morning() -> None:
    state = UserState(OWNER, Preferences())
    notice = EventNotice(OWNER, "level_reached", seoul(TODAY, 23), level=2)
    assert event_decision(notice, state, seoul(TODAY, 23)) == seoul(TODAY + timedelta(days=1), 8)
    assert event_decision(notice, state, seoul(TODAY, 21, 59)) != seoul(
        TODAY + timedelta(days=1), 8
    )
