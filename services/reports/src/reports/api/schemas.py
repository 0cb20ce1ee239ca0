"""Request and response schemas of the reports API."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel

from reports.domain.report import Report
from reports.domain.stats import WeeklyStats
from reports.domain.summary import Summary


class ReportPublic(BaseModel):
    """A weekly report: the fold, its summary and which generator wrote the summary."""

    week: str
    stats: WeeklyStats
    summary: Summary
    generator: Literal["llm", "fallback"]
    generated_at: datetime

    @classmethod
    def from_domain(cls, report: Report) -> ReportPublic:
        """The public view of a report."""
        return cls(
            week=report.week,
            stats=report.stats,
            summary=report.summary,
            generator=report.generator,
            generated_at=report.generated_at,
        )


class ReportListItem(BaseModel):
    """One report in the list."""

    week: str
    headline: str
    generator: Literal["llm", "fallback"]
    generated_at: datetime

    @classmethod
    def from_domain(cls, report: Report) -> ReportListItem:
        """The list view of a report."""
        return cls(
            week=report.week,
            headline=report.summary.headline,
            generator=report.generator,
            generated_at=report.generated_at,
        )


class ReportPage(BaseModel):
    """The caller's reports, newest week first; pass `next_before` as `before` for more."""

    items: list[ReportListItem]
    next_before: str | None
