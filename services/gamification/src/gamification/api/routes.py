"""Gamification HTTP routes (thin): progress, ledger, leaderboard, badge catalogue."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from gamification.api.deps import CurrentOwner, Gamification
from gamification.api.schemas import (
    BadgePublic,
    Leaderboard,
    LedgerPage,
    ProgressPublic,
    StreakRepairCreate,
    StreakRepairPage,
    StreakRepairPublic,
)
from gamification.domain.progress import Period
from gamification.service import Locale
from mandaact_common.http import AdminOwner
from mandaact_common.paging import CursorQuery, decode_cursor, encode_cursor

router = APIRouter(prefix="/v1", tags=["gamification"])

MAX_ORDINAL = 2**63 - 1
"""Ledger ordinals are stored as 64-bit integers: a larger `before` is no ordinal at all."""


@router.get("/me/progress")
async def get_progress(owner: CurrentOwner, gamification: Gamification) -> ProgressPublic:
    """The caller's XP total, level, streak, perfect days and badges."""
    return ProgressPublic.model_validate(await gamification.progress(owner))


@router.get("/me/xp-ledger")
async def get_ledger(
    owner: CurrentOwner,
    gamification: Gamification,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before: Annotated[
        int | None, Query(ge=1, le=MAX_ORDINAL, description="`next_before` of the last page.")
    ] = None,
) -> LedgerPage:
    """The caller's XP ledger, newest first."""
    return LedgerPage.model_validate(await gamification.ledger(owner, limit, before))


@router.get("/leaderboard")
async def get_leaderboard(
    owner: CurrentOwner,
    gamification: Gamification,
    period: Period = "week",
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> Leaderboard:
    """The caller's tenant ranked by XP this ISO week or month (caller's timezone) or all time.

    `me` is the caller's own rank and XP, even outside the top `limit` (null without XP).
    """
    return Leaderboard.model_validate(await gamification.leaderboard(owner, period, limit))


@router.get("/badges")
async def get_badges(
    owner: CurrentOwner, gamification: Gamification, locale: Locale = "en"
) -> list[BadgePublic]:
    """The badge catalogue with the caller's unlocks."""
    return [BadgePublic.model_validate(b) for b in await gamification.badges(owner, locale)]


# --- tenant admins -----------------------------------------------------------------------------


@router.post("/admin/streak-repairs", status_code=201, tags=["admin"])
async def create_streak_repair(
    body: StreakRepairCreate, admin: AdminOwner, gamification: Gamification
) -> StreakRepairPublic:
    """Repair the tenant's streaks over an outage (role `admin`): at most 7 local dates, none in
    the future nor more than 30 days back. The same dates for the same users are one repair:
    sending it again answers the stored one and changes nothing."""
    repair = await gamification.create_repair(admin.tenant_id, body.to_command())
    return StreakRepairPublic.model_validate(repair)


@router.get("/admin/streak-repairs", tags=["admin"])
async def list_streak_repairs(
    admin: AdminOwner,
    gamification: Gamification,
    limit: Annotated[int, Query(ge=1, le=200, description="Page size.")] = 50,
    cursor: CursorQuery = None,
) -> StreakRepairPage:
    """The tenant's streak repairs (role `admin`), newest dates first."""
    repairs = await gamification.repairs(admin.tenant_id)
    start = 0
    if cursor is not None:
        (after,) = decode_cursor(cursor, (str,), "query.cursor")
        start = next((i + 1 for i, r in enumerate(repairs) if r.id == after), len(repairs))
    page = repairs[start : start + limit]
    more = start + limit < len(repairs)
    return StreakRepairPage(
        items=[StreakRepairPublic.model_validate(r) for r in page],
        next_cursor=encode_cursor(page[-1].id) if more and page else None,
    )
