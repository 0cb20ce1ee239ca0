"""Local day, ISO week, month, timezone and check-in window rules."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from mandaact_common.domain.calendar import (
    DateNotAllowed,
    InvalidTimezone,
    backfill_window,
    check_date_allowed,
    day_start_offset,
    days_between,
    is_valid_timezone,
    iso_week,
    local_date,
    local_day_bounds,
    month_bounds,
    parse_iso_week,
    today_in,
    week_bounds,
    zone,
)

pytestmark = pytest.mark.unit

SEOUL = ZoneInfo("Asia/Seoul")
NEW_YORK = ZoneInfo("America/New_York")


# --- local date ---------------------------------------------------------------------------------


def test_seoul_2330_and_0030_are_two_dates() -> None:
    late = datetime(2026, 11, 16, 23, 30, tzinfo=SEOUL)
    after_midnight = late + timedelta(hours=1)
    assert local_date(late, "Asia/Seoul") == date(2026, 11, 16)
    assert local_date(after_midnight, "Asia/Seoul") == date(2026, 11, 17)


def test_local_date_converts_from_utc() -> None:
    # 14:30 UTC is 23:30 in Seoul (UTC+9), 15:30 UTC is 00:30 the next day.
    assert local_date(datetime(2026, 11, 16, 14, 30, tzinfo=UTC), "Asia/Seoul") == date(
        2026, 11, 16
    )
    assert local_date(datetime(2026, 11, 16, 15, 30, tzinfo=UTC), "Asia/Seoul") == date(
        2026, 11, 17
    )


def test_same_instant_is_a_different_date_elsewhere() -> None:
    instant = datetime(2026, 11, 16, 15, 30, tzinfo=UTC)
    assert local_date(instant, "Asia/Seoul") == date(2026, 11, 17)
    assert local_date(instant, "America/New_York") == date(2026, 11, 16)


def test_local_date_rejects_naive_instant() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        local_date(datetime(2026, 11, 16, 23, 30), "Asia/Seoul")


def test_local_date_rejects_unknown_timezone() -> None:
    with pytest.raises(InvalidTimezone, match="Mars/Olympus"):
        local_date(datetime(2026, 11, 16, tzinfo=UTC), "Mars/Olympus")


def test_today_in_is_the_local_date_of_now() -> None:
    now = datetime(2026, 11, 16, 15, 30, tzinfo=UTC)
    assert today_in("Asia/Seoul", now) == date(2026, 11, 17)
    assert today_in("UTC", now) == date(2026, 11, 16)


# --- DST days -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "utc_of_2330", "hours"),
    [
        # Spring forward: 23:30 EDT (UTC-4) on 2026-03-08 is 03:30 UTC the next day.
        (date(2026, 3, 8), datetime(2026, 3, 9, 3, 30, tzinfo=UTC), 23),
        # Fall back: 23:30 EST (UTC-5) on 2026-11-01 is 04:30 UTC the next day.
        (date(2026, 11, 1), datetime(2026, 11, 2, 4, 30, tzinfo=UTC), 25),
    ],
)
def test_new_york_dst_days(day: date, utc_of_2330: datetime, hours: int) -> None:
    late = datetime(day.year, day.month, day.day, 23, 30, tzinfo=NEW_YORK)
    assert late.astimezone(UTC) == utc_of_2330
    assert local_date(late, "America/New_York") == day
    assert local_date(utc_of_2330, "America/New_York") == day
    assert local_date(utc_of_2330 + timedelta(minutes=30), "America/New_York") == day + timedelta(
        days=1
    )

    start, end = local_day_bounds(day, "America/New_York")
    assert end - start == timedelta(hours=hours)
    assert local_date(start, "America/New_York") == day
    assert local_date(end - timedelta(microseconds=1), "America/New_York") == day
    assert local_date(end, "America/New_York") == day + timedelta(days=1)


def test_repeated_hour_on_fall_back_day_stays_on_that_date() -> None:
    # 01:30 happens twice on 2026-11-01 in New York: 05:30 UTC (EDT) and 06:30 UTC (EST).
    for utc_hour in (5, 6):
        instant = datetime(2026, 11, 1, utc_hour, 30, tzinfo=UTC)
        assert local_date(instant, "America/New_York") == date(2026, 11, 1)


def test_ordinary_day_has_24_hours() -> None:
    start, end = local_day_bounds(date(2026, 11, 16), "Asia/Seoul")
    assert start == datetime(2026, 11, 15, 15, 0, tzinfo=UTC)
    assert end - start == timedelta(hours=24)


def test_day_bounds_where_midnight_is_skipped() -> None:
    # Chile springs forward at 24:00 on Saturday 2026-09-05: 00:00 on the 6th never happens.
    start, end = local_day_bounds(date(2026, 9, 6), "America/Santiago")
    assert end - start == timedelta(hours=23)
    assert local_date(start, "America/Santiago") == date(2026, 9, 6)
    assert local_date(start - timedelta(microseconds=1), "America/Santiago") == date(2026, 9, 5)


def test_a_check_in_before_the_day_start_belongs_to_the_day_before() -> None:
    tuesday_0130 = datetime(2026, 12, 1, 1, 30, tzinfo=ZoneInfo("Asia/Seoul"))
    assert local_date(tuesday_0130, "Asia/Seoul", "04:00") == date(2026, 11, 30)
    assert local_date(tuesday_0130, "Asia/Seoul") == date(2026, 12, 1)
    assert local_date(tuesday_0130 + timedelta(hours=2, minutes=30), "Asia/Seoul", "04:00") == (
        date(2026, 12, 1)
    )


def test_day_start_on_the_new_york_spring_forward_night() -> None:
    # 2026-03-08: 02:00 EST jumps to 03:00 EDT. With a 04:00 day start the 7th runs to 04:00 EDT.
    before = datetime(2026, 3, 8, 6, 30, tzinfo=UTC)  # 01:30 EST
    after_jump = datetime(2026, 3, 8, 7, 30, tzinfo=UTC)  # 03:30 EDT
    day_start = datetime(2026, 3, 8, 8, 0, tzinfo=UTC)  # 04:00 EDT
    for instant in (before, after_jump):
        assert local_date(instant, "America/New_York", "04:00") == date(2026, 3, 7)
    assert local_date(day_start, "America/New_York", "04:00") == date(2026, 3, 8)
    start, end = local_day_bounds(date(2026, 3, 7), "America/New_York", "04:00")
    assert start == datetime(2026, 3, 7, 9, 0, tzinfo=UTC)
    assert end == day_start
    assert end - start == timedelta(hours=23)


@pytest.mark.parametrize("bad", ["12:01", "13:00", "4:00", "04:60", "0400", ""])
def test_a_day_start_outside_00_00_to_12_00_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="day start"):
        day_start_offset(bad)


# --- ISO weeks ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "week"),
    [
        (date(2026, 11, 16), "2026-W47"),
        (date(2026, 11, 22), "2026-W47"),
        (date(2026, 11, 23), "2026-W48"),
        (date(2026, 12, 31), "2026-W53"),
        (date(2027, 1, 1), "2026-W53"),  # Friday: still the last week of ISO year 2026
        (date(2027, 1, 3), "2026-W53"),
        (date(2027, 1, 4), "2027-W01"),
        (date(2025, 12, 29), "2026-W01"),  # Monday of 2026-W01 is in calendar year 2025
        (date(2026, 1, 5), "2026-W02"),
    ],
)
def test_iso_week(day: date, week: str) -> None:
    assert iso_week(day) == week


@pytest.mark.parametrize(
    ("week", "monday", "sunday"),
    [
        ("2026-W47", date(2026, 11, 16), date(2026, 11, 22)),
        ("2026-W01", date(2025, 12, 29), date(2026, 1, 4)),
        ("2026-W53", date(2026, 12, 28), date(2027, 1, 3)),
        ("2027-W01", date(2027, 1, 4), date(2027, 1, 10)),
        ("2020-W53", date(2020, 12, 28), date(2021, 1, 3)),
    ],
)
def test_parse_iso_week(week: str, monday: date, sunday: date) -> None:
    assert parse_iso_week(week) == (monday, sunday)
    assert iso_week(monday) == week
    assert iso_week(sunday) == week


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2026-W54", "2026 has weeks W01 to W53"),
        ("2027-W53", "2027 has weeks W01 to W52"),
        ("2026-W00", "has weeks W01"),
        ("2026-47", "expected the form YYYY-Www"),
        ("2026-W7", "expected the form YYYY-Www"),
        ("2026W47", "expected the form YYYY-Www"),
        ("2026-w47", "expected the form YYYY-Www"),
        (" 2026-W47", "expected the form YYYY-Www"),
        ("2026-W47\n", "expected the form YYYY-Www"),
        ("2026-W47-1", "expected the form YYYY-Www"),
        ("", "expected the form YYYY-Www"),
        ("0000-W01", "year must be 0001 or later"),
        ("２０２６-W47", "expected the form YYYY-Www"),
    ],
)
def test_parse_iso_week_rejects_bad_input(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_iso_week(text)


def test_week_bounds_are_monday_to_sunday() -> None:
    week = (date(2026, 11, 16), date(2026, 11, 22))
    for day in days_between(*week):
        assert week_bounds(day) == week
    assert week_bounds(date(2027, 1, 1)) == (date(2026, 12, 28), date(2027, 1, 3))


@pytest.mark.parametrize(
    ("day", "first", "last"),
    [
        (date(2026, 11, 16), date(2026, 11, 1), date(2026, 11, 30)),
        (date(2026, 2, 14), date(2026, 2, 1), date(2026, 2, 28)),
        (date(2028, 2, 29), date(2028, 2, 1), date(2028, 2, 29)),
        (date(2026, 12, 31), date(2026, 12, 1), date(2026, 12, 31)),
        (date(9999, 12, 5), date(9999, 12, 1), date(9999, 12, 31)),
    ],
)
def test_month_bounds(day: date, first: date, last: date) -> None:
    assert month_bounds(day) == (first, last)


def test_days_between_includes_both_ends() -> None:
    assert list(days_between(date(2026, 11, 30), date(2026, 12, 2))) == [
        date(2026, 11, 30),
        date(2026, 12, 1),
        date(2026, 12, 2),
    ]
    assert list(days_between(date(2026, 12, 2), date(2026, 11, 30))) == []


# --- timezones ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["Asia/Seoul", "America/New_York", "UTC", "Etc/GMT+5", "America/Argentina/Buenos_Aires"]
)
def test_valid_timezones(name: str) -> None:
    assert is_valid_timezone(name)
    assert zone(name) == ZoneInfo(name)


@pytest.mark.parametrize(
    "name",
    [
        "",
        " ",
        "../etc",
        "../../etc/passwd",
        "/etc/localtime",
        "Asia/../Asia/Seoul",
        "Asia//Seoul",
        "Asia/Seoul/",
        "asia/seoul",
        " Asia/Seoul",
        "Asia/Seoul\x00",
        "Asia",
        "America",
        "Mars/Olympus",
        "localtime",
        "posixrules",
        "Factory",
        "+09:00",
        "KST",
    ],
)
def test_invalid_timezones(name: str) -> None:
    assert not is_valid_timezone(name)
    with pytest.raises(InvalidTimezone):
        zone(name)


# --- check-in window ----------------------------------------------------------------------------

TODAY = date(2026, 11, 18)


def test_backfill_window() -> None:
    assert backfill_window(TODAY, 1) == (date(2026, 11, 17), TODAY)
    assert backfill_window(TODAY, 0) == (TODAY, TODAY)
    assert backfill_window(date(2026, 3, 1), 2) == (date(2026, 2, 27), date(2026, 3, 1))


def test_backfill_days_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="backfill_days"):
        backfill_window(TODAY, -1)


@pytest.mark.parametrize("backfill_days", [0, 1, 3])
def test_window_edges(backfill_days: int) -> None:
    earliest = TODAY - timedelta(days=backfill_days)
    check_date_allowed(TODAY, TODAY, backfill_days)
    check_date_allowed(earliest, TODAY, backfill_days)

    with pytest.raises(DateNotAllowed) as too_old:
        check_date_allowed(earliest - timedelta(days=1), TODAY, backfill_days)
    assert too_old.value.reason == "too_old"
    assert too_old.value.earliest == earliest

    with pytest.raises(DateNotAllowed) as future:
        check_date_allowed(TODAY + timedelta(days=1), TODAY, backfill_days)
    assert future.value.reason == "future"
    assert future.value.latest == TODAY


def test_default_backfill_allows_yesterday_only() -> None:
    check_date_allowed(date(2026, 11, 17), TODAY, 1)
    with pytest.raises(DateNotAllowed, match=r"too_old.*2026-11-16"):
        check_date_allowed(date(2026, 11, 16), TODAY, 1)


def test_date_not_allowed_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="future"):
        check_date_allowed(date(2026, 11, 19), TODAY, 1)
