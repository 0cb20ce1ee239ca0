"""Response bodies of the gamification API (pydantic), read from what the use cases return.

Each body mirrors a result of `gamification.service` field for field, so a route validates the
result's attributes (`from_attributes`) instead of copying them one by one.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from gamification.domain.streaks import RepairCommand
from mandaact_common.wire import IsoDate


class _FromResult(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class StreakPublic(_FromResult):
    """Consecutive local dates with at least one check-in; frozen, paused and repaired dates
    keep a streak alive without adding to it."""

    current: int
    longest: int
    freezes: int = Field(ge=0, le=2, description="Streak freezes held (0-2).")
    frozen_dates: list[date] = Field(
        description="Local dates of the last 30 days on which a freeze kept the streak."
    )


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


# --- tenant admins: streak repairs ----------------------------------------------------------


class StreakRepairCreate(BaseModel):
    """Repair the tenant's streaks over an outage: the dates count like frozen ones for every
    listed user (default: every user of the tenant) without using a freeze."""

    model_config = ConfigDict(extra="forbid")

    from_: IsoDate = Field(alias="from", description="The first local date repaired.")
    to: IsoDate = Field(description="The last local date repaired (at most 7 dates, none ahead).")
    reason: str = Field(min_length=1, max_length=200, description="Why, for the audit trail.")
    user_ids: list[Annotated[str, StringConstraints(min_length=1, max_length=128)]] | None = Field(
        default=None,
        min_length=1,
        max_length=1000,
        description="Only these users of the tenant (default: all of them).",
    )

    def to_command(self) -> RepairCommand:
        """The domain command."""
        users = frozenset(self.user_ids) if self.user_ids is not None else None
        return RepairCommand(self.from_, self.to, self.reason, users)


class StreakRepairPublic(_FromResult):
    """A stored streak repair."""

    model_config = ConfigDict(from_attributes=True, serialize_by_alias=True)

    id: str
    from_: date = Field(alias="from", validation_alias="start")
    to: date = Field(validation_alias="end")
    reason: str
    user_ids: list[str] | None
    created_at: datetime | None


class StreakRepairPage(BaseModel):
    """The tenant's streak repairs, newest dates first."""

    items: list[StreakRepairPublic]
    next_cursor: str | None = None
