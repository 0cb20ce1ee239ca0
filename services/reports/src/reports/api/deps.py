"""FastAPI dependencies of the reports routes: the caller, the use cases, the path's week."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Path, Request

from mandaact_common.domain.calendar import parse_iso_week
from mandaact_common.errors import InvalidInput
from mandaact_common.http import AppState
from mandaact_common.http import CurrentOwner as CurrentOwner
from mandaact_common.openapi import answers
from reports.service import ReportsService

ISO_WEEK_PATTERN = r"^[0-9]{4}-W[0-9]{2}$"
"""The shape of an ISO week, as a paging bound (`before`) takes it."""
WEEK_PATTERN = (
    r"^([0-9]{3}[1-9]|[0-9]{2}[1-9][0-9]|[0-9][1-9][0-9]{2}|[1-9][0-9]{3})"
    r"-W(0[1-9]|[1-4][0-9]|5[0-3])$"
)
"""An ISO week of year 0001 or later, W01–W53 (W53 only exists in some years: else 422)."""

ServiceFactory = Callable[[AppState], ReportsService]
"""Builds the process's use cases once, when the app starts."""


@answers(503)
def reports_service(request: Request) -> ReportsService:
    """The use cases bootstrap built when the app started."""
    service: ReportsService = request.app.state.reports_service
    return service


def iso_week_param(
    iso_week: Annotated[
        str,
        Path(
            pattern=WEEK_PATTERN,
            description="ISO week, e.g. 2026-W47 (W53 only in years that have one).",
            examples=["2026-W47"],
        ),
    ],
) -> str:
    """The path's ISO week, checked (a 422 problem names it when it is not a real week)."""
    try:
        parse_iso_week(iso_week)
    except ValueError as exc:
        raise InvalidInput("path.iso_week", str(exc), detail=str(exc)) from None
    return iso_week


Reports = Annotated[ReportsService, Depends(reports_service)]
IsoWeek = Annotated[str, Depends(iso_week_param)]
