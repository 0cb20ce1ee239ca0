"""The badge catalogue: data in `badges.json`, the rules that read it here.

Each badge unlocks once, when its family's count first reaches its threshold, and is never revoked.
"""

from __future__ import annotations

import json
from calendar import monthrange
from dataclasses import dataclass
from datetime import date, time
from functools import cache
from importlib.resources import files
from typing import Any, Final, Literal, TypeGuard, get_args

__all__ = [
    "Badge",
    "BadgeFamily",
    "InvalidCatalogue",
    "badge",
    "by_family",
    "catalogue",
    "monthly_target",
    "parse_catalogue",
]

BadgeFamily = Literal[
    "first_checkin",
    "first_grid",
    "streak",
    "volume",
    "monthly",
    "perfect_days",
    "level",
    "time_of_day",
]

_FAMILIES: Final[tuple[str, ...]] = get_args(BadgeFamily)
_CATALOGUE_PACKAGE: Final = "gamification.domain"
_CATALOGUE_FILE: Final = "badges.json"


class InvalidCatalogue(ValueError):
    """The badge data file breaks the catalogue's rules."""


@dataclass(frozen=True, slots=True)
class Badge:
    """A badge of the catalogue; what `threshold` counts depends on the family."""

    code: str
    family: BadgeFamily
    title_en: str
    title_ko: str
    description_en: str
    description_ko: str
    threshold: int
    xp_reward: int
    secret: bool
    window_start: time | None = None
    window_end: time | None = None

    def in_window(self, moment: time) -> bool:
        """Return whether a local time is in this badge's [start, end) window, which may wrap."""
        if self.window_start is None or self.window_end is None:
            return False
        if self.window_start <= self.window_end:
            return self.window_start <= moment < self.window_end
        return moment >= self.window_start or moment < self.window_end


@cache
def _days_in_month(year: int, month: int) -> int:
    return monthrange(year, month)[1]


def monthly_target(threshold: int, day: date) -> int:
    """Return the active days a monthly badge needs in `day`'s month ("every day" is 31, capped)."""
    return min(threshold, _days_in_month(day.year, day.month))


def _is_family(value: object) -> TypeGuard[BadgeFamily]:
    return isinstance(value, str) and value in _FAMILIES


def _text(raw: dict[str, Any], field: str, code: str) -> str:
    value = raw.get(field)
    if not isinstance(value, str) or not value.strip():
        raise InvalidCatalogue(f"badge {code!r}: {field} must be a non-empty string")
    return value


def _count(raw: dict[str, Any], field: str, code: str, minimum: int) -> int:
    value = raw.get(field)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise InvalidCatalogue(f"badge {code!r}: {field} must be an integer ≥ {minimum}")
    return value


def _clock(raw: dict[str, Any], field: str, code: str) -> time | None:
    value = raw.get(field)
    if value is None:
        return None
    try:
        return time.fromisoformat(value)
    except (TypeError, ValueError):
        raise InvalidCatalogue(f"badge {code!r}: {field} must be a time like 04:00") from None


def _parse(raw: dict[str, Any]) -> Badge:
    code = raw.get("code")
    if not isinstance(code, str) or not code:
        raise InvalidCatalogue(f"badge without a code: {raw!r}")
    family = raw.get("family")
    if not _is_family(family):
        raise InvalidCatalogue(f"badge {code!r}: unknown family {family!r}")
    secret = raw.get("secret")
    if not isinstance(secret, bool):
        raise InvalidCatalogue(f"badge {code!r}: secret must be true or false")
    found = Badge(
        code=code,
        family=family,
        title_en=_text(raw, "title_en", code),
        title_ko=_text(raw, "title_ko", code),
        description_en=_text(raw, "description_en", code),
        description_ko=_text(raw, "description_ko", code),
        threshold=_count(raw, "threshold", code, 1),
        xp_reward=_count(raw, "xp_reward", code, 0),
        secret=secret,
        window_start=_clock(raw, "window_start", code),
        window_end=_clock(raw, "window_end", code),
    )
    has_window = found.window_start is not None and found.window_end is not None
    if (family == "time_of_day") != has_window:
        raise InvalidCatalogue(f"badge {code!r}: only time_of_day badges have a window")
    return found


def parse_catalogue(text: str) -> tuple[Badge, ...]:
    """Parse and check a catalogue document ({"badges": [...]}), raising InvalidCatalogue."""
    document = json.loads(text)
    raws = document.get("badges") if isinstance(document, dict) else None
    if not isinstance(raws, list):
        raise InvalidCatalogue('a catalogue is an object with a "badges" list')
    badges = tuple(_parse(raw) for raw in raws)
    codes = [b.code for b in badges]
    duplicates = sorted({c for c in codes if codes.count(c) > 1})
    if duplicates:
        raise InvalidCatalogue(f"badge codes must be unique, repeated: {', '.join(duplicates)}")
    return badges


@cache
def catalogue() -> tuple[Badge, ...]:
    """Return every badge of the packaged catalogue, in file order."""
    text = files(_CATALOGUE_PACKAGE).joinpath(_CATALOGUE_FILE).read_text(encoding="utf-8")
    return parse_catalogue(text)


@cache
def _by_code() -> dict[str, Badge]:
    return {b.code: b for b in catalogue()}


def badge(code: str) -> Badge:
    """Return the badge with this code, raising KeyError for an unknown code."""
    return _by_code()[code]


@cache
def _ladders() -> dict[BadgeFamily, tuple[Badge, ...]]:
    return {
        family: tuple(sorted((b for b in catalogue() if b.family == family), key=_threshold))
        for family in get_args(BadgeFamily)
    }


def _threshold(b: Badge) -> int:
    return b.threshold


def by_family(family: BadgeFamily) -> tuple[Badge, ...]:
    """Return the badges of a family, lowest threshold first."""
    return _ladders()[family]
