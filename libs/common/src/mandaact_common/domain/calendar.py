"""Calendar rules: a user's day is their local date, weeks are ISO weeks (Monday–Sunday).

Pure functions over `datetime.date`; the only outside state is the IANA timezone database
(`zoneinfo`, backed by the `tzdata` package).
"""

from __future__ import annotations

import re
from calendar import monthrange
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "DEFAULT_DAY_START",
    "DEFAULT_TIMEZONE",
    "DateNotAllowed",
    "DateNotAllowedReason",
    "InvalidTimezone",
    "backfill_window",
    "check_date_allowed",
    "day_start_offset",
    "days_between",
    "is_valid_timezone",
    "iso_week",
    "local_date",
    "local_day_bounds",
    "month_bounds",
    "parse_iso_week",
    "today_in",
    "week_bounds",
    "zone",
]

DEFAULT_TIMEZONE: Final = "Asia/Seoul"
"""The timezone of a user nothing is known about yet (SPEC §2)."""

DEFAULT_DAY_START: Final = "00:00"
"""When a user's day starts unless they say otherwise (SPEC §6 `day_starts_at`)."""

DateNotAllowedReason = Literal["future", "too_old"]

_ISO_WEEK_RE: Final = re.compile(r"([0-9]{4})-W([0-9]{2})")
# Letters, digits, "_", "+", "-" in "/"-separated parts, starting with a letter ("Etc/GMT+5").
_TZ_NAME_RE: Final = re.compile(r"[A-Za-z][A-Za-z0-9_+\-]*(?:/[A-Za-z0-9_+\-]+)*")
# Files in a zoneinfo directory that load but are not IANA zone names.
_NOT_ZONES: Final = frozenset({"localtime", "posixrules", "Factory"})
_NOT_ZONE_PREFIXES: Final = ("posix/", "right/")


class InvalidTimezone(ValueError):
    """The name is not an IANA timezone."""


class DateNotAllowed(ValueError):
    """A check-in date outside the allowed window (in the future, or older than the backfill)."""

    def __init__(self, reason: DateNotAllowedReason, target: date, earliest: date, latest: date):
        self.reason: DateNotAllowedReason = reason
        self.target = target
        self.earliest = earliest
        self.latest = latest
        if reason == "future":
            detail = f"{target.isoformat()} is in the future (today is {latest.isoformat()})"
        else:
            detail = f"{target.isoformat()} is before the earliest allowed date {earliest}"
        super().__init__(f"date not allowed ({reason}): {detail}")


# --- timezones ---------------------------------------------------------------------------------


def is_valid_timezone(name: str) -> bool:
    """Return whether `name` is an IANA timezone name such as "Asia/Seoul" or "UTC"."""
    if not _TZ_NAME_RE.fullmatch(name) or name in _NOT_ZONES:
        return False
    if name.startswith(_NOT_ZONE_PREFIXES):
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


def zone(tz: str) -> ZoneInfo:
    """Return the ZoneInfo for an IANA name, raising InvalidTimezone for anything else."""
    if not is_valid_timezone(tz):
        raise InvalidTimezone(f"not an IANA timezone: {tz!r}")
    return ZoneInfo(tz)


# --- the user's day ----------------------------------------------------------------------------


def day_start_offset(day_starts_at: str) -> timedelta:
    """Return the offset "HH:MM" (00:00-12:00) a user's day starts after local midnight."""
    hours, sep, minutes = day_starts_at.partition(":")
    if not (sep and hours.isdigit() and minutes.isdigit() and len(hours) == len(minutes) == 2):
        raise ValueError(f"day start must be HH:MM, got {day_starts_at!r}")
    offset = timedelta(hours=int(hours), minutes=int(minutes))
    if int(minutes) > 59 or offset > timedelta(hours=12):
        raise ValueError(f"day start must be 00:00-12:00, got {day_starts_at!r}")
    return offset


def local_date(instant: datetime, tz: str, day_starts_at: str = DEFAULT_DAY_START) -> date:
    """Return the user's date of `instant` (timezone-aware) in `tz`: (local time - day start).

    The day start is taken off the wall-clock time, so a check-in at 01:30 with a 04:00 start
    belongs to the day before whatever the zone's DST does that night.
    """
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"instant must be timezone-aware, got naive {instant.isoformat()}")
    wall = instant.astimezone(zone(tz)).replace(tzinfo=None)
    return (wall - day_start_offset(day_starts_at)).date()


def today_in(tz: str, now: datetime, day_starts_at: str = DEFAULT_DAY_START) -> date:
    """Return the user's date today in timezone `tz` at the moment `now` (timezone-aware)."""
    return local_date(now, tz, day_starts_at)


def local_day_bounds(
    d: date, tz: str, day_starts_at: str = DEFAULT_DAY_START
) -> tuple[datetime, datetime]:
    """Return the UTC instants [start, end) of local date `d` in `tz` (23 or 25 hours on DST days).

    A day runs from its day start to the next date's day start, wall-clock. Where a zone skips
    the start (e.g. America/Santiago at midnight), the day starts at the transition, which is
    where `fold=0` places the missing time.
    """
    tzinfo = zone(tz)
    offset = day_start_offset(day_starts_at)
    start = (datetime.combine(d, time(0)) + offset).replace(tzinfo=tzinfo).astimezone(UTC)
    next_day = datetime.combine(d + timedelta(days=1), time(0)) + offset
    end = next_day.replace(tzinfo=tzinfo).astimezone(UTC)
    return start, end


def days_between(first: date, last: date) -> Iterator[date]:
    """Yield every date from `first` to `last`, both included (nothing if last < first)."""
    for offset in range((last - first).days + 1):
        yield first + timedelta(days=offset)


# --- weeks and months --------------------------------------------------------------------------


def iso_week(d: date) -> str:
    """Return the ISO week `d` belongs to, as "YYYY-Www" (2027-01-01 is in "2026-W53")."""
    year, week, _ = d.isocalendar()
    return f"{year:04d}-W{week:02d}"


def _weeks_in_iso_year(year: int) -> int:
    return date(year, 12, 28).isocalendar().week


def parse_iso_week(s: str) -> tuple[date, date]:
    """Return the Monday and Sunday of ISO week "YYYY-Www", raising ValueError for anything else."""
    match = _ISO_WEEK_RE.fullmatch(s)
    if match is None:
        raise ValueError(f"invalid ISO week {s!r}: expected the form YYYY-Www, e.g. 2026-W47")
    year, week = int(match.group(1)), int(match.group(2))
    if year < 1:
        raise ValueError(f"invalid ISO week {s!r}: year must be 0001 or later")
    weeks = _weeks_in_iso_year(year)
    if not 1 <= week <= weeks:
        raise ValueError(f"invalid ISO week {s!r}: {year} has weeks W01 to W{weeks:02d}")
    monday = date.fromisocalendar(year, week, 1)
    return monday, monday + timedelta(days=6)


def week_bounds(d: date) -> tuple[date, date]:
    """Return the Monday and Sunday of the ISO week containing `d`."""
    monday = d - timedelta(days=d.weekday())
    return monday, monday + timedelta(days=6)


def month_bounds(d: date) -> tuple[date, date]:
    """Return the first and last day of the calendar month containing `d`."""
    return d.replace(day=1), d.replace(day=monthrange(d.year, d.month)[1])


# --- check-in window ---------------------------------------------------------------------------


def backfill_window(today_local: date, backfill_days: int) -> tuple[date, date]:
    """Return the earliest and latest dates a check-in may be for: today back `backfill_days`."""
    if backfill_days < 0:
        raise ValueError(f"backfill_days must be >= 0, got {backfill_days}")
    return today_local - timedelta(days=backfill_days), today_local


def check_date_allowed(target: date, today_local: date, backfill_days: int) -> None:
    """Raise DateNotAllowed unless `target` is today or one of the `backfill_days` days before."""
    earliest, latest = backfill_window(today_local, backfill_days)
    if target > latest:
        raise DateNotAllowed("future", target, earliest, latest)
    if target < earliest:
        raise DateNotAllowed("too_old", target, earliest, latest)
