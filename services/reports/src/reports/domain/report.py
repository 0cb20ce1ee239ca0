"""A weekly report, the job that schedules it, and when it is due."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Literal

from mandaact_common.domain.calendar import (
    DEFAULT_DAY_START,
    local_day_bounds,
    parse_iso_week,
    zone,
)
from mandaact_common.domain.owner import Owner
from mandaact_common.keys import sub_key
from reports.domain.facts import Locale
from reports.domain.stats import WeeklyStats
from reports.domain.summary import Summary

REPORT_TIME = time(6, 0)
"""Reports are due on the Monday after the week at 06:00 in the user's timezone."""
REPORT_NAMESPACE = uuid.UUID("3b0f5d0e-7f5e-4a57-9a43-6f2c1c0d4e21")

Generator = Literal["llm", "fallback"]
Outcome = Literal[
    "ok",
    "cached",
    "no_key",
    "cached_failure",
    "in_flight",
    "timeout",
    "error",
    "refused",
    "malformed",
    "invented_number",
    "truncated",
    "budget_exhausted",
    "week_cap_reached",
]
"""What the LLM step gave: a summary (`ok`, `cached`) or why the fallback was written."""

MAX_LLM_CALLS_PER_WEEK = 3
"""A user-week's report costs at most this many LLM calls over all its rewrites (SPEC §12)."""

_CALLS: frozenset[Outcome] = frozenset(
    {"ok", "timeout", "error", "refused", "malformed", "invented_number", "truncated"}
)
"""Outcomes of a request actually sent to the LLM (a cache hit, no key or no budget is none)."""


def made_a_call(outcome: Outcome) -> bool:
    """Whether the LLM step that gave this outcome sent a request to the LLM."""
    return outcome in _CALLS


def may_call_llm(calls_so_far: int) -> bool:
    """Whether a user-week that has cost `calls_so_far` LLM calls may cost one more."""
    return calls_so_far < MAX_LLM_CALLS_PER_WEEK


def is_stale(written_from: int, current: int) -> bool:
    """A report is stale while the week's fold has changed since the version it was written
    from."""
    return current > written_from


FallbackReason = Literal[
    "llm_not_configured",
    "monthly_llm_budget_exhausted",
    "llm_unavailable",
    "llm_answer_rejected",
    "weekly_llm_calls_exhausted",
]
"""Why a report's summary is the fallback, as the report tells its reader."""

_FALLBACK_REASONS: dict[Outcome, FallbackReason] = {
    "no_key": "llm_not_configured",
    "budget_exhausted": "monthly_llm_budget_exhausted",
    "timeout": "llm_unavailable",
    "error": "llm_unavailable",
    "in_flight": "llm_unavailable",
    "cached_failure": "llm_unavailable",
    "refused": "llm_answer_rejected",
    "malformed": "llm_answer_rejected",
    "invented_number": "llm_answer_rejected",
    "truncated": "llm_answer_rejected",
    "week_cap_reached": "weekly_llm_calls_exhausted",
}


def fallback_reason(outcome: Outcome) -> FallbackReason | None:
    """Why the fallback was written for this outcome of the LLM step (None: the LLM wrote it)."""
    return _FALLBACK_REASONS.get(outcome)


def budget_month(at: datetime) -> str:
    """The calendar month (UTC) an LLM call is counted in, e.g. `2026-11`."""
    return at.astimezone(UTC).strftime("%Y-%m")


def report_due_at(week: str, timezone: str, day_starts_at: str = DEFAULT_DAY_START) -> datetime:
    """The instant (UTC) the report of `week` is due: the next Monday 06:00 local, or when the
    user's Monday begins if their day starts later (their Sunday is not over before)."""
    _, sunday = parse_iso_week(week)
    local = datetime.combine(sunday + timedelta(days=1), REPORT_TIME, zone(timezone))
    monday_begins, _ = local_day_bounds(sunday + timedelta(days=1), timezone, day_starts_at)
    return max(local.astimezone(UTC), monday_begins)


def report_id(uk: str, week: str) -> str:
    """A report's public id: the same for a user-week however often it is attempted."""
    return str(uuid.uuid5(REPORT_NAMESPACE, sub_key(uk, week)))


@dataclass(frozen=True, slots=True)
class Written:
    """A summary and who wrote it."""

    summary: Summary
    generator: Generator
    outcome: Outcome


@dataclass(frozen=True, slots=True)
class ReportJob:
    """A user-week that had a check-in: whether one still stands, and when its report is due."""

    owner: Owner
    week: str
    active: bool
    due_at: datetime

    @property
    def key(self) -> str:
        """The key of the user-week: its facts, its job and its report."""
        return sub_key(self.owner.key, self.week)


@dataclass(frozen=True, slots=True)
class Report:
    """The weekly report of one user: the fold, its summary, who wrote it and when, and from
    which version of the fold."""

    owner: Owner
    week: str
    stats: WeeklyStats
    summary: Summary
    generator: Generator
    llm_outcome: Outcome
    locale: Locale
    prompt_version: str
    generated_at: datetime
    fold_version: int = 0
    """The version of the week's fold this report was written from."""
    llm_calls: int = 0
    """LLM calls this user-week's report has cost so far, its rewrites included."""

    @property
    def key(self) -> str:
        """The key of the user-week."""
        return sub_key(self.owner.key, self.week)

    @property
    def id(self) -> str:
        """The report's public id."""
        return report_id(self.owner.key, self.week)

    @property
    def fallback_reason(self) -> FallbackReason | None:
        """Why the summary is the fallback, or None when the LLM wrote it."""
        return fallback_reason(self.llm_outcome) if self.generator == "fallback" else None
