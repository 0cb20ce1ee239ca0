"""Gamification HTTP routes (thin): progress, ledger, leaderboard, badge catalogue."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query
from pydantic import BaseModel

from gamification.domain.badges import catalogue
from gamification.domain.levels import progress as level_progress
from gamification.service import current_streak
from gamification.store.mongo import GamificationStore, user_key
from mandaact_common.domain.calendar import iso_week
from mandaact_common.http import CurrentPrincipal, State

router = APIRouter(prefix="/v1", tags=["gamification"])
DEFAULT_TIMEZONE = "Asia/Seoul"


class StreakPublic(BaseModel):
    """Consecutive local dates with at least one check-in."""

    current: int
    longest: int


class BadgeEarned(BaseModel):
    """A badge the user has unlocked."""

    code: str
    unlocked_at: datetime


class ProgressPublic(BaseModel):
    """A user's XP, level, streak, perfect days and badges."""

    xp_total: int
    level: int
    xp_into_level: int
    xp_for_next_level: int
    streak: StreakPublic
    perfect_days: int
    badges: list[BadgeEarned]


class LedgerEntryPublic(BaseModel):
    """One XP award or take-back."""

    id: str
    amount: int
    reason: Literal["checkin", "perfect_day", "badge"]
    action_id: str | None
    local_date: date | None
    badge: str | None
    source_event_id: str
    created_at: datetime


class LedgerPage(BaseModel):
    """Ledger entries, newest first."""

    items: list[LedgerEntryPublic]
    next_before: int | None


class LeaderboardRow(BaseModel):
    """One user's place on the tenant's leaderboard."""

    rank: int
    user_id: str
    xp: int
    level: int


class Leaderboard(BaseModel):
    """The caller's tenant only; ties broken by user id so the order is stable."""

    period: Literal["week", "all"]
    week: str | None
    items: list[LeaderboardRow]


class BadgePublic(BaseModel):
    """A catalogue badge; secret ones hide their description until unlocked."""

    code: str
    family: str
    title: str
    description: str | None
    xp_reward: int
    secret: bool
    unlocked_at: datetime | None


def _today(tz: str) -> date:
    return datetime.now(UTC).astimezone(ZoneInfo(tz)).date()


@router.get("/me/progress")
async def get_progress(principal: CurrentPrincipal, state: State) -> ProgressPublic:
    """The caller's XP total, level, streak, perfect days and badges."""
    store = GamificationStore(state.db, None)
    doc = await store.progress(user_key(principal.tenant_id, principal.user_id)) or {}
    xp = int(doc.get("xp_total", 0))
    level, into, needed = level_progress(xp)
    return ProgressPublic(
        xp_total=xp,
        level=level,
        xp_into_level=into,
        xp_for_next_level=needed,
        streak=StreakPublic(
            current=current_streak(doc, _today(doc.get("timezone") or DEFAULT_TIMEZONE))
            if doc
            else 0,
            longest=int(doc.get("streak_longest", 0)),
        ),
        perfect_days=int(doc.get("perfect_days", 0)),
        badges=[BadgeEarned(**b) for b in doc.get("badges", [])],
    )


@router.get("/me/xp-ledger")
async def get_ledger(
    principal: CurrentPrincipal,
    state: State,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before: Annotated[int | None, Query(ge=1, description="`next_before` of the last page")] = None,
) -> LedgerPage:
    """The caller's XP ledger, newest first."""
    store = GamificationStore(state.db, None)
    docs = await store.ledger_page(user_key(principal.tenant_id, principal.user_id), limit, before)
    items = [
        LedgerEntryPublic(
            id=d["_id"],
            amount=d["amount"],
            reason=d["reason"],
            action_id=d.get("action_id"),
            local_date=d.get("local_date"),
            badge=d.get("badge"),
            source_event_id=d["source_event_id"],
            created_at=d["created_at"],
        )
        for d in docs
    ]
    next_before = docs[-1]["ord"] if len(docs) == limit else None
    return LedgerPage(items=items, next_before=next_before)


@router.get("/leaderboard")
async def get_leaderboard(
    principal: CurrentPrincipal,
    state: State,
    period: Literal["week", "all"] = "week",
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> Leaderboard:
    """The caller's tenant ranked by XP this ISO week (caller's timezone) or all time."""
    store = GamificationStore(state.db, None)
    week: str | None = None
    if period == "week":
        me = await store.progress(user_key(principal.tenant_id, principal.user_id)) or {}
        week = iso_week(_today(me.get("timezone") or DEFAULT_TIMEZONE))
        field = f"xp_by_week.{week}"
    else:
        field = "xp_total"
    docs = await store.leaderboard(principal.tenant_id, field, limit)
    rows = []
    for rank, d in enumerate(docs, start=1):
        xp = int(d["xp_by_week"].get(week, 0)) if week else int(d["xp_total"])
        rows.append(LeaderboardRow(rank=rank, user_id=d["user_id"], xp=xp, level=d["level"]))
    return Leaderboard(period=period, week=week, items=rows)


@router.get("/badges")
async def get_badges(
    principal: CurrentPrincipal, state: State, locale: Literal["ko", "en"] = "en"
) -> list[BadgePublic]:
    """The badge catalogue with the caller's unlocks."""
    store = GamificationStore(state.db, None)
    doc = await store.progress(user_key(principal.tenant_id, principal.user_id)) or {}
    unlocked = {b["code"]: b["unlocked_at"] for b in doc.get("badges", [])}
    ko = locale == "ko"
    out = []
    for badge in catalogue():
        earned = unlocked.get(badge.code)
        hidden = badge.secret and earned is None
        out.append(
            BadgePublic(
                code=badge.code,
                family=badge.family,
                title="???" if hidden else (badge.title_ko if ko else badge.title_en),
                description=None
                if hidden
                else (badge.description_ko if ko else badge.description_en),
                xp_reward=badge.xp_reward,
                secret=badge.secret,
                unlocked_at=earned,
            )
        )
    return out
