"""Request and response schemas of the reports API."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from reports.domain.report import FallbackReason, Report
from reports.domain.stats import WeeklyStats
from reports.domain.summary import Summary

FALLBACK_REASON = (
    "Why the summary is the deterministic fallback (null when the LLM wrote it):"
    " `llm_not_configured`, `monthly_llm_budget_exhausted` (the tenant's LLM calls this month"
    " reached MANDAACT_LLM_MONTHLY_CALLS_PER_TENANT), `llm_unavailable` (timeout, error),"
    " `llm_answer_rejected` (refused, malformed, cut off, or stated a number not in the stats)."
)


class ReportPublic(BaseModel):
    """A weekly report: the fold, its summary and which generator wrote the summary."""

    week: str
    stats: WeeklyStats
    summary: Summary
    generator: Literal["llm", "fallback"]
    fallback_reason: FallbackReason | None = Field(description=FALLBACK_REASON)
    generated_at: datetime

    @classmethod
    def from_domain(cls, report: Report) -> ReportPublic:
        """The public view of a report."""
        return cls(
            week=report.week,
            stats=report.stats,
            summary=report.summary,
            generator=report.generator,
            fallback_reason=report.fallback_reason,
            generated_at=report.generated_at,
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
