"""Reports HTTP routes (thin): list, read, and generate a weekly report."""

from __future__ import annotations

import contextlib
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from pymongo.errors import DuplicateKeyError

from mandaact_common.http import CurrentPrincipal, State
from mandaact_common.idempotency import (
    IdempotencyKeyHeader,
    IdempotentRequest,
    StoredResponse,
    body_fingerprint,
    recall,
    remember,
)
from mandaact_common.outbox import Transaction, transact
from mandaact_common.problems import PROBLEM_JSON
from reports.api.deps import ISO_WEEK_PATTERN, IsoWeek, Runtime
from reports.api.schemas import ReportListItem, ReportPage, ReportPublic
from reports.generation import SOURCE, NoReport

router = APIRouter(prefix="/v1", tags=["reports"])

GENERATE_OPERATION = "reports.generate_weekly"


def _problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"content": {PROBLEM_JSON: {}}, "description": "problem"} for code in codes}


@router.get("/reports", responses=_problems(401, 422))
async def list_reports(
    principal: CurrentPrincipal,
    rt: Runtime,
    limit: Annotated[int, Query(ge=1, le=100, description="Page size.")] = 20,
    before: Annotated[
        str | None,
        Query(pattern=ISO_WEEK_PATTERN, description="Only weeks before this one (paging)."),
    ] = None,
) -> ReportPage:
    """The caller's weekly reports, newest week first."""
    docs = await rt.generator.list_reports(principal.tenant_id, principal.user_id, limit, before)
    items = [ReportListItem.from_doc(d) for d in docs]
    return ReportPage(items=items, next_before=items[-1].week if len(items) == limit else None)


@router.get("/reports/weekly/{iso_week}", responses=_problems(401, 404, 422))
async def get_weekly_report(
    week: IsoWeek, principal: CurrentPrincipal, rt: Runtime
) -> ReportPublic:
    """The caller's report of one ISO week (404 until it is generated)."""
    doc = await rt.generator.find(principal.tenant_id, principal.user_id, week)
    if doc is None:
        raise NoReport(f"there is no report for {week}")
    return ReportPublic.from_doc(doc)


@router.post(
    "/reports/weekly/{iso_week}/generate",
    status_code=201,
    response_model=ReportPublic,
    responses={
        200: {"model": ReportPublic, "description": "the report already existed"},
        **_problems(401, 404, 409, 422),
    },
)
async def generate_weekly_report(
    week: IsoWeek,
    principal: CurrentPrincipal,
    rt: Runtime,
    state: State,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """Generate the report of a finished week: 201 when written now, 200 when it existed."""
    request_id = (
        IdempotentRequest(
            tenant_id=principal.tenant_id,
            user_id=principal.user_id,
            operation=GENERATE_OPERATION,
            key=idempotency_key,
            fingerprint=body_fingerprint(week.encode()),
        )
        if idempotency_key is not None
        else None
    )
    if request_id is not None:

        async def replay(tx: Transaction) -> StoredResponse | None:
            return await recall(tx, request_id)

        stored = await transact(state.client, state.db, SOURCE, replay)
        if stored is not None:
            return JSONResponse(stored.body, stored.status_code, headers=dict(stored.headers))
    doc, created = await rt.generator.generate(
        principal.tenant_id, principal.user_id, week, rt.clock()
    )
    response = StoredResponse(
        status_code=201 if created else 200,
        body=ReportPublic.from_doc(doc).model_dump(mode="json"),
        headers={"Location": f"/v1/reports/weekly/{week}"},
    )
    if request_id is not None:
        # The report itself is stored once whatever happens here (the LLM call could not be
        # inside a transaction), so the key only has to remember the answer it was given.

        async def keep(tx: Transaction) -> None:
            await remember(tx, request_id, response)

        # A concurrent request with the same key may have stored its (equivalent) answer first.
        with contextlib.suppress(DuplicateKeyError):
            await transact(state.client, state.db, SOURCE, keep)
    return JSONResponse(response.body, response.status_code, headers=dict(response.headers))
