"""Checkins HTTP routes (thin): translate the request into a command, call the use case, present."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from checkins.api.deps import Checkins, CurrentOwner
from checkins.api.schemas import CheckinPage, CheckinPublic, ChecklistPublic, IsoDate
from checkins.domain.model import MAX_CHANGES_PER_DATE, MAX_RANGE_DAYS, CheckinCursor
from mandaact_common.openapi import problems
from mandaact_common.paging import CursorQuery

# 401, 422 and 503 follow from what a route depends on (mandaact_common.openapi).
CHANGE_ERRORS = problems(
    404,
    409,
    422,
    429,
    described={
        404: "No such action for this user (unknown, another user's, or its grid was deleted).",
        409: "Another request changed the same check-in at the same moment; retry.",
        422: "Invalid input, or a broken check-in rule (`type` names it: `date-in-future`,"
        " `date-too-old`, `not-checkable`, `grid-inactive`, `mission-already-done`).",
        429: f"The action already had {MAX_CHANGES_PER_DATE} check/undo changes on that date.",
    },
)
RANGE_ERRORS = problems(
    422,
    described={
        422: f"Invalid input, or `from` after `to`, or a range of more than {MAX_RANGE_DAYS} days,"
        " or a `cursor` this API did not return.",
    },
)

router = APIRouter(prefix="/v1", tags=["checkins"])

ActionId = Annotated[uuid.UUID, Path(description="The action's id (a UUID).")]
CheckinDate = Annotated[
    IsoDate | None,
    Query(
        alias="date",
        description="The local date (default: today in the user's timezone); today or up to"
        " MANDAACT_BACKFILL_DAYS days before.",
    ),
]


@router.get("/checklist")
async def get_checklist(
    owner: CurrentOwner,
    checkins: Checkins,
    day: Annotated[
        IsoDate | None,
        Query(alias="date", description="The local date (default: today, user's timezone)."),
    ] = None,
) -> ChecklistPublic:
    """The due actions of a local date with their done flags and the day's counts."""
    return ChecklistPublic.from_domain(await checkins.checklist(owner, day))


@router.put(
    "/checkins/{action_id}",
    status_code=201,
    responses={
        200: {"model": CheckinPublic, "description": "Already checked: nothing changed."},
        **CHANGE_ERRORS,
    },
)
async def put_checkin(
    action_id: ActionId,
    owner: CurrentOwner,
    checkins: Checkins,
    response: Response,
    day: CheckinDate = None,
) -> CheckinPublic:
    """Mark the action done for a date: 201 and `action.completed` when new, else 200."""
    result = await checkins.check(owner, str(action_id), day)
    response.status_code = 201 if result.created else 200
    return CheckinPublic.from_domain(result.slot, MAX_CHANGES_PER_DATE)


@router.delete(
    "/checkins/{action_id}",
    status_code=204,
    response_class=Response,
    responses=CHANGE_ERRORS,
)
async def delete_checkin(
    action_id: ActionId, owner: CurrentOwner, checkins: Checkins, day: CheckinDate = None
) -> Response:
    """Undo the date's check-in (`action.uncompleted`); 204 also when there was none."""
    await checkins.uncheck(owner, str(action_id), day)
    return Response(status_code=204)


@router.get("/checkins", responses=RANGE_ERRORS)
async def list_checkins(
    owner: CurrentOwner,
    checkins: Checkins,
    since: Annotated[
        IsoDate | None, Query(alias="from", description="First date (default: `to` − 6 days).")
    ] = None,
    until: Annotated[
        IsoDate | None, Query(alias="to", description="Last date (default: today, local).")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200, description="Page size.")] = 50,
    cursor: CursorQuery = None,
) -> CheckinPage:
    """The caller's check-ins between two local dates (both included, at most 92 days), a page
    at a time in date, time and action order."""
    after = CheckinCursor.decode(cursor) if cursor is not None else None
    found = await checkins.list_checkins(owner, since, until, limit=limit, cursor=after)
    return CheckinPage.from_domain(found, MAX_CHANGES_PER_DATE)
