"""FastAPI dependencies of the reports routes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Request

from mandaact_common.domain.calendar import parse_iso_week
from mandaact_common.problems import ProblemError
from reports.generation import Clock, ReportGenerator

ISO_WEEK_PATTERN = r"^[0-9]{4}-W[0-9]{2}$"


@dataclass
class ReportsRuntime:
    """What the routes use, made in the lifespan: the generator and the clock."""

    generator: ReportGenerator
    clock: Clock


def runtime(request: Request) -> ReportsRuntime:
    """The process's report generator and clock."""
    found: ReportsRuntime = request.app.state.reports_runtime
    return found


class InvalidWeek(ProblemError):
    """The path's ISO week is not a real week."""

    status, slug, title = 422, "validation", "Invalid request"


def iso_week_param(
    iso_week: Annotated[
        str, Path(max_length=16, description="ISO week, e.g. 2026-W47.", examples=["2026-W47"])
    ],
) -> str:
    """The path's ISO week, checked (a 422 problem names it when it is not a real week)."""
    try:
        parse_iso_week(iso_week)
    except ValueError as exc:
        raise InvalidWeek(
            str(exc), errors=[{"field": "path.iso_week", "message": str(exc)}]
        ) from None
    return iso_week


Runtime = Annotated[ReportsRuntime, Depends(runtime)]
IsoWeek = Annotated[str, Depends(iso_week_param)]
