"""Request and response schemas of the reports API."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel

from mandaact_common.mongo import Doc
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
    def from_doc(cls, doc: Doc) -> ReportPublic:
        """The public view of a stored report."""
        return cls(
            week=doc["week"],
            stats=WeeklyStats.model_validate(doc["stats"]),
            summary=Summary.model_validate(doc["summary"]),
            generator=doc["generator"],
            generated_at=doc["generated_at"],
        )


class ReportListItem(BaseModel):
    """One report in the list."""

    week: str
    headline: str
    generator: Literal["llm", "fallback"]
    generated_at: datetime

    @classmethod
    def from_doc(cls, doc: Doc) -> ReportListItem:
        """The list view of a stored report."""
        return cls(
            week=doc["week"],
            headline=doc["summary"]["headline"],
            generator=doc["generator"],
            generated_at=doc["generated_at"],
        )


class ReportPage(BaseModel):
    """The caller's reports, newest week first; pass `next_before` as `before` for more."""

    items: list[ReportListItem]
    next_before: str | None
