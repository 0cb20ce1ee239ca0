"""A user's gamification state, typed: who they are, their kept fold and what the API reads.

One small document per user, bounded by the kept window of the fold (not by the history); the
ledger, the archived facts and the leaderboard windows live in their own collections.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Final, Literal

from gamification.domain.levels import level_for_xp
from gamification.domain.model import DerivedState, LedgerLine, LineReason
from gamification.domain.streaks import (
    DayRules,
    StreakState,
    TenantRepair,
    repairs_for,
    walk,
)
from gamification.domain.user_fold import UserFold
from mandaact_common.domain.calendar import (
    DEFAULT_DAY_START,
    DEFAULT_TIMEZONE,
    iso_week,
    local_day_bounds,
    today_in,
)
from mandaact_common.domain.owner import Owner
from mandaact_common.domain.pauses import Pause

ENTRY_NAMESPACE: Final = uuid.UUID("6f1c2d3e-8a7b-4c5d-9e0f-112233445566")

Period = Literal["week", "month", "all"]
PERIODS: Final[tuple[Period, ...]] = ("week", "month", "all")


def entry_id(owner_key: str, line_key: str, n: int) -> str:
    """A ledger entry's id: the same in a live run and in a replay."""
    return str(uuid.uuid5(ENTRY_NAMESPACE, f"{owner_key}|{line_key}|{n}"))


def window_of(period: Period, day: date) -> str:
    """The leaderboard window a local date falls in: its ISO week, its month, or all time."""
    if period == "week":
        return iso_week(day)
    if period == "month":
        return f"{day.year:04d}-{day.month:02d}"
    return "all"


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One stored XP award or take-back (append-only; `n` counts the entries of its key)."""

    id: str
    owner: Owner
    key: str
    n: int
    ord: int
    amount: int
    reason: LineReason
    action_id: str | None
    local_date: date | None
    badge: str | None
    multiplier: float | None
    source_event_id: str
    xp_total: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class KeySum:
    """What the ledger holds for one line key: the sum, the number of entries, and the sum per
    local date (the dates decide which leaderboard windows the XP counts in)."""

    total: int
    count: int
    reason: LineReason
    action_id: str | None
    local_date: date | None
    badge: str | None
    by_date: dict[date | None, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BoardDelta:
    """XP to add to a user's standing in one leaderboard window."""

    owner: Owner
    period: Period
    window: str
    xp: int
    before: int | None = None
    """The XP the user held in the window before, when the caller already knows it (all time:
    the stored total); None lets the store read it."""


def held_in(
    windows: dict[Period, tuple[str, int]] | None, period: Period, window: str
) -> int | None:
    """The user's XP in a week or month window as far as their latest windows tell (None: the
    row has to be read: an older window, or latest windows not known)."""
    if windows is None:
        return None
    latest = windows.get(period)
    if latest is None or window > latest[0]:
        return 0  # no row of this period yet, or a window after every row the user has
    return latest[1] if window == latest[0] else None


@dataclass(frozen=True, slots=True)
class StreakTold:
    """A streak as `streak.changed` tells it."""

    current: int
    longest: int
    freezes: int
    frozen_dates: tuple[date, ...]


NOTHING_TOLD: Final = StreakTold(0, 0, 0, ())


@dataclass
class UserProgress:
    """Everything gamification keeps about one user, bounded whatever their history."""

    owner: Owner
    fold: UserFold | None
    """None when read for the API only (the fold is what the consumer needs)."""
    user_version: int = 0
    timezone: str | None = None
    display_name: str | None = None
    entries: int = 0
    xp_total: int = 0
    level: int = 1
    levels_reached: set[int] = field(default_factory=set)
    streak_current: int = 0
    streak_longest: int = 0
    last_active_date: date | None = None
    perfect_days: int = 0
    badges: dict[str, datetime] = field(default_factory=dict)
    updated_at: datetime | None = None
    reusable: dict[str, int] = field(default_factory=dict)
    """Line keys the ledger holds at a sum of 0 that the fold may produce again (a rebuild took
    them back), with their entry counts: the next entry of such a key is numbered after them."""
    windows: dict[Period, tuple[str, int]] | None = field(default_factory=dict)
    """The latest week and month the user has a leaderboard row in, with its XP: what a batch
    adds to, known without reading the row. None when not known (the rows are read)."""
    day_starts_at: str = DEFAULT_DAY_START
    pauses: tuple[Pause, ...] = ()
    streak: StreakState = field(default_factory=StreakState)
    """The streak walked through the last active date: a read walks on from it to today."""
    streak_told: StreakTold | None = None
    """What the last `streak.changed` said (None: nothing yet)."""
    streak_fire_at: datetime | None = None
    """When the next date that can use a freeze or break the streak ends (None: no run open)."""

    def rules(self, repairs: Sequence[TenantRepair]) -> DayRules:
        """The user's paused dates and the tenant's repairs that name them."""
        return DayRules(self.pauses, repairs_for(self.owner.user_id, repairs))

    def today(self, now: datetime) -> date:
        """The user's local date at `now` (their timezone and day start)."""
        return today_in(self.effective_timezone, now, self.day_starts_at)

    def streak_now(self, rules: DayRules, now: datetime) -> StreakState:
        """The streak as it stands at `now`: dates over since the last active one decided."""
        return walk(self.streak, (), rules, self.today(now))

    def take_streak(self, rules: DayRules, now: datetime) -> StreakTold | None:
        """Walk the kept fold's streak, set when it is next decided; what to tell, if new."""
        fold = self.fold
        assert fold is not None
        fold.rules = rules
        last = fold.last_active()
        self.streak = fold.streak(last) if last is not None else StreakState()
        self.streak_current, self.streak_longest = self.streak.current, self.streak.longest
        return self.decide_streak(rules, now)

    def decide_streak(self, rules: DayRules, now: datetime) -> StreakTold | None:
        """The streak now, compared with what was told; sets the next time a day decides it."""
        today = self.today(now)
        seen = walk(self.streak, (), rules, today)
        told = StreakTold(seen.current, seen.longest, seen.freezes, tuple(seen.frozen_since(today)))
        if seen.current and seen.next is not None:
            # The first date not decided yet is decided when it ends.
            self.streak_fire_at = local_day_bounds(
                max(seen.next, today), self.effective_timezone, self.day_starts_at
            )[1]
        else:
            self.streak_fire_at = None
        if told == (self.streak_told or NOTHING_TOLD):
            return None
        self.streak_told = told
        return told

    @property
    def effective_timezone(self) -> str:
        """The user's timezone, or the default one while none is known."""
        return self.timezone or DEFAULT_TIMEZONE

    def entry_of(
        self, line: LedgerLine, amount: int, n: int, trigger: str, now: datetime
    ) -> LedgerEntry:
        """The next ledger entry: `amount` of `line`'s key, the `n`th of that key."""
        self.entries += 1
        self.xp_total += amount
        return LedgerEntry(
            id=entry_id(self.owner.key, line.key, n),
            owner=self.owner,
            key=line.key,
            n=n,
            ord=self.entries,
            amount=amount,
            reason=line.reason,
            action_id=line.action_id,
            local_date=line.local_date,
            badge=line.badge,
            multiplier=line.multiplier,
            source_event_id=line.source_event_id or trigger,
            xp_total=self.xp_total,
            created_at=now,
        )

    def project(self, derived: DerivedState, now: datetime) -> None:
        """Take the fold's totals, streaks, perfect days and badges as the user's progress."""
        self.level = level_for_xp(self.xp_total)
        self.levels_reached |= {up.level for up in derived.levels_reached}
        self.streak_current = derived.streak_current
        self.streak_longest = derived.streak_longest
        self.last_active_date = derived.last_active_date
        self.perfect_days = derived.perfect_days
        self.badges = {b.code: self.badges.get(b.code, now) for b in derived.badges}
        self.updated_at = now


BUCKET_BITS: Final = (3, 7, 11)
"""The leaderboard's levels of XP buckets, by how many leading bits of an XP a bucket keeps:
level 0 is exact below 8, then 4 buckets per doubling; each level splits a bucket of the one
above into 16 (exact below 128, then below 2,048)."""


def bucket_at(xp: int, level: int) -> int:
    """The lowest XP of the level's bucket that holds a positive XP (the bucket's name)."""
    shift = max(xp.bit_length() - BUCKET_BITS[level], 0)
    return (xp >> shift) << shift


def bucket_end(floor: int, level: int) -> int:
    """The XP just above the level's bucket whose lowest XP is `floor`."""
    return floor + (1 << max(floor.bit_length() - BUCKET_BITS[level], 0))
