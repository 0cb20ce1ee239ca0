"""Reports HTTP routes (thin): list, read, and generate a weekly report."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from mandaact_common.idempotency import (
    IdempotencyKeyHeader,
    IdempotentRequest,
    StoredResponse,
)
from mandaact_common.openapi import problems
from reports.api.deps import ISO_WEEK_PATTERN, CurrentOwner, IsoWeek, Reports
from reports.api.schemas import ReportListItem, ReportPage, ReportPublic
from reports.service import Generated

router = APIRouter(prefix="/v1", tags=["reports"])

GENERATE_OPERATION = "reports.generate_weekly"

# 401, 422 and 503 follow from what a route depends on (mandaact_common.openapi).
_NO_REPORT = "No report of that week for the caller (none generated, or no check-in that week)."


def present_generated(generated: Generated) -> StoredResponse:
    """The answer to a generate: 201 when this request wrote the report, else 200 (it existed;
    rewritten by this request when it was stale)."""
    report = generated.report
    return StoredResponse(
        status_code=201 if generated.created else 200,
        body=ReportPublic.from_domain(generated.view).model_dump(mode="json"),
        headers={"Location": f"/v1/reports/weekly/{report.week}"},
    )


@router.get("/reports")
async def list_reports(
    owner: CurrentOwner,
    reports: Reports,
    limit: Annotated[int, Query(ge=1, le=100, description="Page size.")] = 20,
    before: Annotated[
        str | None,
        Query(pattern=ISO_WEEK_PATTERN, description="Only weeks before this one (paging)."),
    ] = None,
) -> ReportPage:
    """The caller's weekly reports, newest week first."""
    found = await reports.list_reports(owner, limit, before)
    items = [ReportListItem.from_domain(r) for r in found]
    return ReportPage(items=items, next_before=items[-1].week if len(items) == limit else None)


@router.get("/reports/weekly/{iso_week}", responses=problems(404, described={404: _NO_REPORT}))
async def get_weekly_report(week: IsoWeek, owner: CurrentOwner, reports: Reports) -> ReportPublic:
    """The caller's report of one ISO week, with the stats of its latest fold (404 until it is
    generated)."""
    return ReportPublic.from_domain(await reports.report(owner, week))


@router.post(
    "/reports/weekly/{iso_week}/generate",
    status_code=201,
    response_model=ReportPublic,
    responses={
        200: {
            "model": ReportPublic,
            "description": "the report already existed (rewritten now if it was stale)",
        },
        **problems(
            404,
            409,
            422,
            described={
                404: "No check-in that week: there is nothing to report.",
                409: "Another request is writing this report right now; retry.",
                422: "Invalid input, or a week that has not finished yet in the caller's"
                " timezone (`week-not-finished`).",
            },
        ),
    },
)
async def generate_weekly_report(
    week: IsoWeek,
    owner: CurrentOwner,
    reports: Reports,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """Generate the report of a finished week: 201 when written now, 200 when it existed
    (a stale one is rewritten first)."""
    if idempotency_key is None:
        stored = present_generated(await reports.generate(owner, week))
    else:
        request = IdempotentRequest.of(owner, GENERATE_OPERATION, idempotency_key, week.encode())
        stored = await reports.generate_once(owner, week, request, present_generated)
    return JSONResponse(stored.body, stored.status_code, headers=dict(stored.headers))
