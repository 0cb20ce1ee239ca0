"""The report's summary and the rule that every number it states comes from the fold.

The number check (docs/reports.md, "Number check"): after the text is NFKC-normalised, every run
of ASCII digits (with `,` thousands separators and an optional decimal part) is a number; the
summary is rejected if one of them is not in `allowed_numbers(stats, week)`. Signs are ignored
("-3" and "3 fewer" state the same figure). Numbers written as words are not checked, which is why
the prompt asks for digits.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from mandaact_common.domain.calendar import parse_iso_week
from reports.domain.stats import WeeklyStats

_NUMBER = re.compile(r"[0-9]+(?:,[0-9]{3})*(?:\.[0-9]+)?")
DAYS_IN_WEEK = 7

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=600)]
Short = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


class Improvements(_Strict):
    """What held the week back and why."""

    problem: Text
    insight: Text


class ActionPlan(_Strict):
    """What to do next week."""

    goal: Text
    steps: list[Short] = Field(min_length=1, max_length=5)


class Summary(_Strict):
    """The report's words: in the user's locale, every number taken from the fold."""

    headline: Short
    key_metrics: list[Short] = Field(min_length=3, max_length=3)
    strengths: Text
    improvements: Improvements
    action_plan: ActionPlan

    def texts(self) -> list[str]:
        """Every piece of text the summary states."""
        return [
            self.headline,
            *self.key_metrics,
            self.strengths,
            self.improvements.problem,
            self.improvements.insight,
            self.action_plan.goal,
            *self.action_plan.steps,
        ]


def canonical(value: Decimal | float | int | str) -> str:
    """One spelling per number: no sign, no thousands separators, no trailing zeros."""
    number = value if isinstance(value, Decimal) else Decimal(str(value).replace(",", ""))
    number = abs(number).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP).normalize()
    return format(number, "f")


def numbers_in(text: str) -> list[str]:
    """The numbers a text states, canonically spelled."""
    out: list[str] = []
    for match in _NUMBER.finditer(unicodedata.normalize("NFKC", text)):
        try:
            out.append(canonical(match.group()))
        except InvalidOperation:  # pragma: no cover - the pattern only matches numbers
            continue
    return out


def _rate_forms(value: float) -> Iterator[Decimal]:
    r = Decimal(str(value))
    yield r
    yield r.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    pct = r * 100
    for exp in ("1", "0.1", "0.01"):
        yield pct.quantize(Decimal(exp), rounding=ROUND_HALF_UP)
    # A whole percentage may also be cut rather than rounded (12.5 % read as 12 % or 13 %).
    yield pct.quantize(Decimal(1), rounding=ROUND_FLOOR)
    yield pct.quantize(Decimal(1), rounding=ROUND_CEILING)


def _scalars(value: Any) -> Iterator[int | float]:
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, int | float):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _scalars(item)
    elif isinstance(value, list):
        for item in value:
            yield from _scalars(item)


def _title_numbers(stats: WeeklyStats) -> Iterator[str]:
    titles = [s.title for s in stats.by_sub_goal] + list(stats.badges_unlocked)
    for title in titles:
        yield from numbers_in(title)


def allowed_numbers(stats: WeeklyStats, week: str) -> frozenset[str]:
    """The numbers a summary of this fold may state (docs/reports.md, "Number check")."""
    # Every number in the fold; each rate as a fraction (4 and 2 places) and as a percentage
    # (0, 1 and 2 places, and a whole percentage cut down or up); readings with one subtraction
    # (missed = due - done, days without check-ins = 7 - days_active, last week's figures = this
    # week's minus the change); list lengths; 7; the ISO year and week number; and numbers
    # inside the user's own titles and badge codes.
    values: list[Decimal | int | float | str] = list(_scalars(stats.model_dump(mode="python")))
    rates = [stats.completion_rate, stats.vs_previous_week.completion_rate]
    rates += [s.rate for s in stats.by_sub_goal]
    for r in rates:
        if r is not None:
            values.extend(_rate_forms(r))
    prev = stats.vs_previous_week
    if stats.completion_rate is not None and prev.completion_rate is not None:
        values.extend(_rate_forms(round(stats.completion_rate - prev.completion_rate, 4)))
    values += [
        stats.due_total - stats.done_total,
        DAYS_IN_WEEK - stats.days_active,
        stats.checkins_total - prev.checkins_total,
        stats.xp_gained - prev.xp_gained,
        len(stats.by_sub_goal),
        len(stats.badges_unlocked),
        DAYS_IN_WEEK,
    ]
    values += [s.due - s.done for s in stats.by_sub_goal]
    monday, _ = parse_iso_week(week)
    year, number, _ = monday.isocalendar()
    values += [year, number]
    values += list(_title_numbers(stats))
    return frozenset(canonical(v) for v in values)


def invented_numbers(summary: Summary, allowed: Iterable[str]) -> list[str]:
    """The numbers the summary states that the fold does not hold (empty when it passes)."""
    allowed_set = set(allowed)
    return [n for text in summary.texts() for n in numbers_in(text) if n not in allowed_set]
