"""Request and response schemas of the reports API."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from reports.domain.report import FallbackReason, Report
from reports.domain.stats import WeeklyStats
from reports.domain.summary import Summary
from reports.service import ReportView

FALLBACK_REASON = (
    "Why the summary is the deterministic fallback (null when the LLM wrote it):"
    " `llm_not_configured`, `monthly_llm_budget_exhausted` (the tenant's LLM calls this month"
    " reached MANDAACT_LLM_MONTHLY_CALLS_PER_TENANT), `llm_unavailable` (timeout, error),"
    " `llm_answer_rejected` (refused, malformed, cut off, or stated a number not in the stats),"
    " `weekly_llm_calls_exhausted` (the week's report, rewritten after late events, has had"
    " its 3 LLM calls)."
)
FOLD_VERSION = (
    "The current version of the week's fold: it counts up each time the week's facts change"
    " (a backfilled check-in, late XP)."
)
STALE = (
    "True while the summary was written from an older fold than `fold_version` (the stats are"
    " always the latest fold's): a rewrite is pending, once the fold has been quiet for"
    " MANDAACT_REPORT_SETTLE_S, or now by `POST …/generate`."
)


class ReportPublic(BaseModel):
    """A weekly report: the latest fold, its summary, which generator wrote the summary, and
    whether the summary is still to be rewritten for the latest fold."""

    week: str
    stats: WeeklyStats
    summary: Summary
    generator: Literal["llm", "fallback"]
    fallback_reason: FallbackReason | None = Field(description=FALLBACK_REASON)
    generated_at: datetime
    fold_version: int = Field(description=FOLD_VERSION)
    stale: bool = Field(description=STALE)

    @classmethod
    def from_domain(cls, view: ReportView) -> ReportPublic:
        """The public view of a report as read now."""
        report = view.report
        return cls(
            week=report.week,
            stats=view.stats,
            summary=report.summary,
            generator=report.generator,
            fallback_reason=report.fallback_reason,
            generated_at=report.generated_at,
            fold_version=view.fold_version,
            stale=view.stale,
        )


class ReportListItem(BaseModel):
    """One report in the list."""

    week: str
    headline: str
    generator: Literal["llm", "fallback"]
    fallback_reason: FallbackReason | None = Field(description=FALLBACK_REASON)
    generated_at: datetime

    @classmethod
    def from_domain(cls, report: Report) -> ReportListItem:
        """The list view of a report."""
        return cls(
            week=report.week,
            headline=report.summary.headline,
            generator=report.generator,
            fallback_reason=report.fallback_reason,
            generated_at=report.generated_at,
        )


class ReportPage(BaseModel):
    """The caller's reports, newest week first; pass `next_before` as `before` for more."""

    items: list[ReportListItem]
    next_before: str | None
