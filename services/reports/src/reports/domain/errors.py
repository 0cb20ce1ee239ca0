"""The reports service's errors: kinds of the shared hierarchy, mapped once at the HTTP edge."""

from __future__ import annotations

from mandaact_common.errors import Conflict, NotFound, RuleBroken


class WeekNotFinished(RuleBroken):
    """Only finished weeks have a report."""

    code = "week-not-finished"

    def __init__(self, week: str, timezone: str) -> None:
        super().__init__(
            f"{week} is not finished yet in your timezone ({timezone}):"
            " a weekly report can be generated from the Monday after it",
            field="path.iso_week",
            message="week not finished",
        )


class NoReport(NotFound):
    """No report exists (or can exist: no check-in that week)."""


class GenerationInProgress(Conflict):
    """Another worker is writing this report right now."""


class ReportExists(Conflict):
    """The report of a user-week is already stored (another writer got there first)."""
