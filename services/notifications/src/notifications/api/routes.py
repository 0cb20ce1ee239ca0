"""Notifications HTTP routes (thin): the caller's recent notifications."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from mandaact_common.openapi import problems
from mandaact_common.paging import CursorQuery
from notifications.api.deps import CurrentOwner, Notifications
from notifications.api.schemas import NotificationPage
from notifications.domain.records import SentCursor

router = APIRouter(prefix="/v1", tags=["notifications"])

# 401 and 503 follow from what the route depends on (mandaact_common.openapi).
LIST_ERRORS = problems(
    422, described={422: "Invalid input, or a `cursor` this API did not return."}
)


@router.get("/me/notifications", responses=LIST_ERRORS)
async def list_notifications(
    owner: CurrentOwner,
    notifications: Notifications,
    limit: Annotated[int, Query(ge=1, le=200, description="Page size.")] = 50,
    cursor: CursorQuery = None,
) -> NotificationPage:
    """The caller's notifications, newest first, a page at a time."""
    after = SentCursor.decode(cursor) if cursor is not None else None
    page = await notifications.list_sent(owner, limit=limit, cursor=after)
    return NotificationPage.from_domain(page)
