"""Response bodies of the gamification API (pydantic), read from what the use cases return.

Each body mirrors a result of `gamification.service` field for field, so a route validates the
result's attributes (`from_attributes`) instead of copying them one by one.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _FromResult(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class StreakPublic(_FromResult):
    """Consecutive local dates with at least one check-in."""

    current: int
    longest: int


class BadgeEarned(_FromResult):
    """A badge the user has unlocked."""

    code: str
    unlocked_at: datetime


class ProgressPublic(_FromResult):
    """A user's XP, level, streak, perfect days and badges."""

    xp_total: int
    level: int
    xp_into_level: int
    xp_for_next_level: int
    streak: StreakPublic
    perfect_days: int
    badges: list[BadgeEarned]


class LedgerEntryPublic(_FromResult):
    """One XP award or take-back."""

    id: str
    amount: int
    reason: Literal["checkin", "perfect_day", "badge"]
    action_id: str | None
    local_date: date | None
    badge: str | None
    source_event_id: str
    created_at: datetime


class LedgerPage(_FromResult):
    """Ledger entries, newest first."""

    items: list[LedgerEntryPublic]
    next_before: int | None


class LeaderboardRow(_FromResult):
    """One user's place on the tenant's leaderboard."""

    rank: int
    user_id: str
    display_name: str | None
    xp: int
    level: int


class MyStanding(_FromResult):
    """The caller's own rank and XP in the window."""

    rank: int
    xp: int


class WindowPublic(BaseModel):
    """The local dates a week or month covers, both included."""

    model_config = ConfigDict(from_attributes=True, populate_by_name=True)

    start: date = Field(serialization_alias="from", validation_alias="start")
    end: date = Field(serialization_alias="to", validation_alias="end")


class Leaderboard(_FromResult):
    """The caller's tenant only; ties broken by user id so the order is stable."""

    period: Literal["week", "month", "all"]
    week: str | None
    window: WindowPublic | None
    items: list[LeaderboardRow]
    me: MyStanding | None


class BadgePublic(_FromResult):
    """A catalogue badge; secret ones hide their description until unlocked."""

    code: str
    family: str
    title: str
    description: str | None
    xp_reward: int
    secret: bool
    unlocked_at: datetime | None
