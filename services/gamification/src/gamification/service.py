"""Use cases: fold a batch of events into each touched user's kept fold, append what it adds to
the ledger and the leaderboards; and the reads of the API (progress, ledger, leaderboard, badges).

A batch costs the same whatever a user's history: their fold is kept between batches, bounded
(`UserFold`), and extended by the new facts. When a fact belongs before what the fold already
holds (late across topics, a replay, a redriven dead letter), the user's fold is rebuilt from the
archived facts and the ledger is brought to it by the difference per line key — so duplicates,
reordering and replays all converge to the same ledger, totals, levels, streaks and badges.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal
from zoneinfo import ZoneInfo

from gamification.domain.badges import badge as badge_of
from gamification.domain.badges import catalogue
from gamification.domain.levels import progress as level_progress
from gamification.domain.model import CheckinChange, LedgerLine
from gamification.domain.progress import (
    PERIODS,
    BoardDelta,
    KeySum,
    LedgerEntry,
    Period,
    StreakTold,
    UserProgress,
    held_in,
    window_of,
)
from gamification.domain.streaks import RepairCommand, TenantRepair, repair_of
from gamification.domain.user_fold import Fact, GridFact, NeedsRebuild, UserFold
from gamification.store.ports import GamificationStore
from mandaact_common.clock import Clock, utc_now
from mandaact_common.consumer import Inbound
from mandaact_common.domain.calendar import (
    iso_week,
    local_date,
    month_bounds,
    week_bounds,
)
from mandaact_common.domain.owner import Owner
from mandaact_common.domain.pauses import Pause
from mandaact_common.grid_events import placed_actions
from mandaact_common.unit_of_work import UnitOfWork
from mandaact_contracts import topics
from mandaact_contracts.events import (
    ActionCompleted,
    ActionUncompleted,
    BadgeUnlocked,
    GoalChanged,
    LevelReached,
    StreakChanged,
    UserChanged,
    XpAwarded,
    XpRevoked,
)

Locale = Literal["ko", "en"]
SWEEP_BATCH = 200
"""Users one streak sweep (or one step of a repair) looks at in one transaction."""


# --- what the reads return ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EarnedBadge:
    """A badge the user has unlocked, and when."""

    code: str
    unlocked_at: datetime


@dataclass(frozen=True, slots=True)
class Streak:
    """Consecutive local dates with a check-in (frozen, paused and repaired dates keep it): the
    run as seen today, the longest one, the freezes held and the dates frozen in 30 days."""

    current: int
    longest: int
    freezes: int = 0
    frozen_dates: tuple[date, ...] = ()


@dataclass(frozen=True, slots=True)
class Progress:
    """A user's XP, level, streak, perfect days and badges."""

    xp_total: int
    level: int
    xp_into_level: int
    xp_for_next_level: int
    streak: Streak
    perfect_days: int
    badges: list[EarnedBadge]


@dataclass(frozen=True, slots=True)
class LedgerPage:
    """Ledger entries, newest first, and the `before` of the next page (None at the end)."""

    items: list[LedgerEntry]
    next_before: int | None


@dataclass(frozen=True, slots=True)
class Standing:
    """One user's place on the tenant's leaderboard."""

    rank: int
    user_id: str
    display_name: str | None
    xp: int
    level: int


@dataclass(frozen=True, slots=True)
class MyStanding:
    """The caller's own place, even outside the top rows."""

    rank: int
    xp: int


@dataclass(frozen=True, slots=True)
class Window:
    """The local dates a week or month leaderboard covers, both included."""

    start: date
    end: date


@dataclass(frozen=True, slots=True)
class Leaderboard:
    """The tenant's users by XP in the period (`week` is the ISO week when it is one)."""

    period: Period
    week: str | None
    window: Window | None
    items: list[Standing]
    me: MyStanding | None


@dataclass(frozen=True, slots=True)
class CatalogueBadge:
    """A catalogue badge as the user sees it: a secret one is hidden until unlocked."""

    code: str
    family: str
    title: str
    description: str | None
    xp_reward: int
    secret: bool
    unlocked_at: datetime | None


# --- the use cases -----------------------------------------------------------------------------


@dataclass
class _Arrivals:
    """What one batch brings for one user: settings, facts, and the event that came last."""

    owner: Owner
    facts: list[Fact] = field(default_factory=list)
    settings: UserChanged | None = None
    timezone_hint: str | None = None
    trigger: str = ""


def grid_fact(event: GoalChanged, event_id: str) -> GridFact:
    """The grid version a `goal.changed` announces, dated by the owner's local date of it."""
    grid = event.mandalart
    return GridFact(
        event_id=event_id,
        grid_id=grid.id,
        version=grid.version,
        active=grid.active,
        deleted=grid.deleted,
        actions=tuple(a.rule for a in placed_actions(event) if a.rule.type != "reference"),
        updated_at=grid.updated_at,
        local_date=local_date(grid.updated_at, event.timezone),
    )


def checkin_fact(event: ActionCompleted | ActionUncompleted, event_id: str) -> CheckinChange:
    """The check-in change a check-in event announces (with the owner's local time of it)."""
    local = event.occurred_at.astimezone(ZoneInfo(event.timezone))
    return CheckinChange(
        event_id=event_id,
        action_id=event.action_id,
        local_date=event.local_date,
        seq=event.seq,
        done=isinstance(event, ActionCompleted),
        occurred_at=event.occurred_at,
        local_time=local.time().replace(microsecond=0),
    )


def _arrivals(items: Sequence[Inbound]) -> dict[Owner, _Arrivals]:
    out: dict[Owner, _Arrivals] = {}
    for item in items:
        p = item.payload
        owner = Owner(p.tenant_id, p.user_id)
        arrivals = out.setdefault(owner, _Arrivals(owner))
        arrivals.trigger = item.envelope.id
        if isinstance(p, UserChanged):
            if arrivals.settings is None or p.version > arrivals.settings.version:
                arrivals.settings = p
        elif isinstance(p, GoalChanged):
            arrivals.facts.append(grid_fact(p, item.envelope.id))
            arrivals.timezone_hint = p.timezone
        elif isinstance(p, ActionCompleted | ActionUncompleted):
            arrivals.facts.append(checkin_fact(p, item.envelope.id))
            arrivals.timezone_hint = p.timezone
    return out


@dataclass
class _Folded:
    """One user's batch after the fold: the lines it asks for, and whether it was rebuilt."""

    progress: UserProgress
    before: UserProgress
    lines: list[LedgerLine]
    rebuilt: bool
    trigger: str


class GamificationService:
    """The gamification use cases over a unit of work."""

    def __init__(
        self, uow: UnitOfWork[GamificationStore], clock: Clock = utc_now, accept_days: int = 2
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._accept_days = accept_days

    async def apply_batch(self, store: GamificationStore, items: Sequence[Inbound]) -> None:
        """Fold a batch into the touched users' progress, ledger and leaderboards, atomically."""
        now = self._clock()
        arrivals = _arrivals(items)
        stored = await store.progress_of(list(arrivals))
        repairs = await store.repairs_of({o.tenant_id for o in arrivals}, arrivals)
        await store.archive([(a.owner, f) for a in arrivals.values() for f in a.facts])
        folded: list[_Folded] = []
        for owner, came in arrivals.items():
            before = stored.get(owner) or UserProgress(owner, UserFold(self._accept_days))
            progress = _copy(before)
            changed = _take_settings(progress, came)
            rules = progress.rules(repairs.get(owner.tenant_id, ()))
            assert progress.fold is not None
            progress.fold.rules = rules
            # Pauses decide what was due, so a change of them judges the dates held again.
            repause = progress.pauses != before.pauses and progress.fold.last_active() is not None
            if not came.facts and not repause:
                if changed:
                    folded.append(_Folded(progress, before, [], False, came.trigger))
                continue
            folded.append(await self._fold(store, progress, before, came, rebuild=repause))
        entries = await self._ledger(store, folded, now)
        for f in folded:
            assert f.progress.fold is not None
            f.progress.project(f.progress.fold.summary(), now)
            rules = f.progress.rules(repairs.get(f.progress.owner.tenant_id, ()))
            told = f.progress.take_streak(rules, now)
            _announce(store, f.before, f.progress, entries.get(f.progress.owner, []), now)
            if told is not None:
                _tell_streak(store, f.progress, told, now)
        all_entries = [e for es in entries.values() for e in es]
        await store.insert_ledger(all_entries)
        await store.add_to_boards(_board_deltas(folded, entries))
        await store.save_progress([f.progress for f in folded])

    async def _fold(
        self,
        store: GamificationStore,
        progress: UserProgress,
        before: UserProgress,
        came: _Arrivals,
        *,
        rebuild: bool = False,
    ) -> _Folded:
        fold = progress.fold
        assert fold is not None
        try:
            if rebuild:
                raise NeedsRebuild("the user's pauses changed")
            lines = fold.extend(came.facts)
        except NeedsRebuild:
            # A fact belongs before what the fold holds: fold every archived fact again (this
            # batch's among them).
            archived = await store.archived(progress.owner)
            progress.fold, lines = UserFold.rebuild(archived, self._accept_days, fold.rules)
            return _Folded(progress, before, lines, True, came.trigger)
        return _Folded(progress, before, lines, False, came.trigger)

    async def _ledger(
        self, store: GamificationStore, folded: Sequence[_Folded], now: datetime
    ) -> dict[Owner, list[LedgerEntry]]:
        """The entries that make each user's stored sums per key equal what the fold asks.

        Extending a fold produces only keys the ledger does not hold (or holds at 0, after a
        rebuild: `UserProgress.reusable`), so the usual batch reads nothing of the ledger; a
        rebuild reads the user's sums per key and appends the difference.
        """
        out: dict[Owner, list[LedgerEntry]] = {}
        for f in folded:
            owner = f.progress.owner
            if f.rebuilt:
                sums = await store.all_key_sums(owner)
                out[owner] = _difference(f.progress, f.lines, sums, f.trigger, now)
            else:
                out[owner] = _fresh(f.progress, f.lines, f.trigger, now)
        return out

    # -- reads --

    async def progress(self, owner: Owner) -> Progress:
        """The user's XP total, level, streak, perfect days and badges.

        The streak is walked on from the last active date to the user's today, so a date that
        ended without a check-in has used its freeze (or broken the run) whether or not any
        event came since.
        """

        async def work(store: GamificationStore) -> tuple[UserProgress, list[TenantRepair]]:
            found = await store.progress_of([owner], with_fold=False)
            repairs = await store.repairs_of({owner.tenant_id}, [owner])
            return found.get(owner) or UserProgress(owner, None), repairs.get(owner.tenant_id, [])

        progress, repairs = await self._uow.read(work)
        level, into, needed = level_progress(progress.xp_total)
        now = self._clock()
        seen = progress.streak_now(progress.rules(repairs), now)
        return Progress(
            xp_total=progress.xp_total,
            level=level,
            xp_into_level=into,
            xp_for_next_level=needed,
            streak=Streak(
                current=seen.current,
                longest=seen.longest,
                freezes=seen.freezes,
                frozen_dates=tuple(seen.frozen_since(progress.today(now))),
            ),
            perfect_days=progress.perfect_days,
            badges=[EarnedBadge(code, at) for code, at in progress.badges.items()],
        )

    async def ledger(self, owner: Owner, limit: int, before: int | None) -> LedgerPage:
        """The user's XP ledger, newest first, `limit` entries older than `before`."""
        entries = await self._uow.read(lambda store: store.ledger_page(owner, limit, before))
        return LedgerPage(entries, entries[-1].ord if len(entries) == limit else None)

    async def leaderboard(self, owner: Owner, period: Period, limit: int) -> Leaderboard:
        """The user's tenant ranked by XP in the current week or month (their timezone), or ever.

        The store reads the top `limit` rows of the window and the caller's rank from bucket
        counts and narrow index ranges: the same work whatever the tenant's size.
        """

        async def work(store: GamificationStore) -> Leaderboard:
            mine = await store.progress_of([owner], with_fold=False)
            today = self._today(mine.get(owner) or UserProgress(owner, None))
            window = window_of(period, today)
            board = await store.standings(owner, period, window, limit)
            top, row = board.top, board.mine
            me = None
            if row is not None and row.xp > 0 and board.ahead is not None:
                me = MyStanding(board.ahead + 1, row.xp)
            people = await store.progress_of(
                [Owner(owner.tenant_id, r.user_id) for r in top], with_fold=False
            )
            items = [
                Standing(
                    rank=rank,
                    user_id=r.user_id,
                    display_name=_who(people, owner.tenant_id, r.user_id).display_name,
                    xp=r.xp,
                    level=_who(people, owner.tenant_id, r.user_id).level,
                )
                for rank, r in enumerate(top, start=1)
            ]
            return Leaderboard(
                period,
                iso_week(today) if period == "week" else None,
                _window(period, today),
                items,
                me,
            )

        return await self._uow.read(work)

    async def badges(self, owner: Owner, locale: Locale) -> list[CatalogueBadge]:
        """The badge catalogue with the user's unlocks, in their language."""
        found = await self._uow.read(lambda store: store.progress_of([owner], with_fold=False))
        unlocked = (found.get(owner) or UserProgress(owner, None)).badges
        ko = locale == "ko"
        out = []
        for badge in catalogue():
            earned = unlocked.get(badge.code)
            hidden = badge.secret and earned is None
            out.append(
                CatalogueBadge(
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

    def _today(self, progress: UserProgress) -> date:
        """The user's local date now (their timezone and day start, else the defaults)."""
        return progress.today(self._clock())

    # -- streaks decided by the end of a day, and tenants' streak repairs --

    async def sweep_streaks(self, limit: int = SWEEP_BATCH) -> int:
        """Decide the streaks of the users whose day just ended (by the `streak_fire_at`
        index): tell `streak.changed` where a freeze was used or a run broke. Returns how many
        users were looked at; the work is theirs alone."""
        now = self._clock()

        async def work(store: GamificationStore) -> int:
            due = await store.streaks_due(now, limit)
            if not due:
                return 0
            repairs = await store.repairs_of(
                {p.owner.tenant_id for p in due}, [p.owner for p in due]
            )
            for progress in due:
                rules = progress.rules(repairs.get(progress.owner.tenant_id, ()))
                told = progress.decide_streak(rules, now)
                if told is not None:
                    _tell_streak(store, progress, told, now)
            await store.mark_streaks(due)
            return len(due)

        return await self._uow.run(work)

    async def create_repair(self, tenant_id: str, command: RepairCommand) -> TenantRepair:
        """Record a tenant's streak repair (the same one twice is one); the users' streaks
        are walked again by the worker, a batch of users at a time."""
        now = self._clock()
        repair = repair_of(tenant_id, command, now)

        async def work(store: GamificationStore) -> TenantRepair:
            return await store.add_repair(repair, now)

        return await self._uow.run(work)

    async def repairs(self, tenant_id: str) -> list[TenantRepair]:
        """The tenant's streak repairs, newest dates first."""

        async def work(store: GamificationStore) -> list[TenantRepair]:
            found = await store.repairs_of({tenant_id})
            return sorted(found.get(tenant_id, []), key=lambda r: (r.start, r.id), reverse=True)

        return await self._uow.read(work)

    async def apply_repairs(self, limit: int = SWEEP_BATCH) -> int:
        """Walk again the streaks of up to `limit` users of a repair not yet applied to all of
        its tenant, and tell what changed; returns how many users were walked."""
        now = self._clock()

        async def work(store: GamificationStore) -> int:
            pending = await store.pending_repair()
            if pending is None:
                return 0
            repair, after = pending
            users = await store.tenant_users(repair.tenant_id, after, limit)
            if users:
                found = await store.repairs_of({repair.tenant_id}, [p.owner for p in users])
                repairs = found.get(repair.tenant_id, [])
                for progress in users:
                    if progress.fold is None:
                        continue
                    told = progress.take_streak(progress.rules(repairs), now)
                    if told is not None:
                        _tell_streak(store, progress, told, now)
                await store.save_progress(users)
            last = users[-1].owner.user_id if len(users) == limit else None
            await store.repair_applied(repair, last)
            return len(users)

        return await self._uow.run(work)


# --- the batch, step by step -------------------------------------------------------------------


def _copy(progress: UserProgress) -> UserProgress:
    """A working copy of the projection, so `before` stays as stored.

    The fold itself is shared, not copied: it changes only by `extend`, which changes nothing
    when it raises, and a transaction that is run again reads every user afresh.
    """
    return dataclasses.replace(
        progress,
        levels_reached=set(progress.levels_reached),
        badges=dict(progress.badges),
        reusable=dict(progress.reusable),
        windows=None if progress.windows is None else dict(progress.windows),
    )


def _take_settings(progress: UserProgress, came: _Arrivals) -> bool:
    """Take the newest user.changed; until one arrives, grids and check-ins tell the timezone."""
    settings = came.settings
    if settings is not None and settings.version > progress.user_version:
        progress.user_version = settings.version
        progress.timezone = settings.timezone
        progress.display_name = settings.display_name
        progress.day_starts_at = settings.day_starts_at
        progress.pauses = tuple(Pause(p.from_, p.to) for p in settings.pauses)
        return True
    if (
        progress.user_version == 0
        and came.timezone_hint
        and came.timezone_hint != progress.timezone
    ):
        progress.timezone = came.timezone_hint
        return True
    return False


def _fresh(
    progress: UserProgress, lines: Sequence[LedgerLine], trigger: str, now: datetime
) -> list[LedgerEntry]:
    """The entries of lines whose keys the ledger does not hold yet (or holds at 0)."""
    return [
        progress.entry_of(line, line.amount, progress.reusable.pop(line.key, 0), trigger, now)
        for line in lines
        if line.amount
    ]


def _difference(
    progress: UserProgress,
    lines: Sequence[LedgerLine],
    sums: dict[str, KeySum],
    trigger: str,
    now: datetime,
) -> list[LedgerEntry]:
    """Entries that make the stored sum of each key what `lines` — the whole ledger the rebuilt
    fold asks for — say; a stored key they no longer have is taken back to zero.

    Keys then held at 0 that the fold can still produce (badges, and dates it can still judge)
    are remembered in `progress.reusable`, so a later entry of one is numbered after them.
    """
    desired: dict[str, int] = defaultdict(int)
    first: dict[str, LedgerLine] = {}
    for line in lines:
        desired[line.key] += line.amount
        first.setdefault(line.key, line)
    out: list[LedgerEntry] = []
    for key, amount in desired.items():
        held = sums.get(key)
        line = first[key]
        count = held.count if held else 0
        placed = dict(held.by_date) if held else {}
        # XP held on another date than the rebuilt fold gives the line moves to its date, so
        # every window's board counts what the fold says it earned there.
        for day, total in placed.items():
            if day != line.local_date and total != 0:
                moved = dataclasses.replace(line, local_date=day)
                out.append(progress.entry_of(moved, -total, count, trigger, now))
                count += 1
        have = placed.get(line.local_date, 0)
        if amount != have:
            out.append(progress.entry_of(line, amount - have, count, trigger, now))
    reusable: dict[str, int] = {}
    fold = progress.fold
    accept_from = fold.accept_from if fold is not None else date.min
    for key, held in sums.items():
        if key in desired:
            continue
        count = held.count
        for day, total in held.by_date.items():
            if total != 0:
                line = LedgerLine(key, 0, held.reason, held.action_id, day, held.badge, None, None)
                out.append(progress.entry_of(line, -total, count, trigger, now))
                count += 1
        if held.reason == "badge" or (
            held.local_date is not None and held.local_date >= accept_from
        ):
            reusable[key] = count
    progress.reusable = reusable
    return out


def _board_deltas(
    folded: Sequence[_Folded], entries: dict[Owner, list[LedgerEntry]]
) -> list[BoardDelta]:
    """Each entry's XP in the week, the month and the all-time board of its local date."""
    totals: dict[tuple[Owner, Period, str], int] = defaultdict(int)
    for f in folded:
        owner = f.progress.owner
        for entry in entries.get(owner, []):
            day = entry.local_date or local_date(entry.created_at, f.progress.effective_timezone)
            for period in PERIODS:
                totals[(owner, period, window_of(period, day))] += entry.amount
    of = {f.progress.owner: f for f in folded}
    deltas = []
    for (o, p, w), xp in sorted(totals.items(), key=lambda kv: (kv[0][1], kv[0][2])):
        if not xp:
            continue
        f = of[o]
        before = f.before.xp_total if p == "all" else held_in(f.before.windows, p, w)
        deltas.append(BoardDelta(o, p, w, xp, before))
        latest = f.progress.windows
        if p != "all" and latest is not None:
            # Windows in order: the latest row of the period ends up remembered with its XP.
            mine = held_in(latest, p, w)
            if mine is not None:
                latest[p] = (w, mine + xp)
    return deltas


def _announce(
    store: GamificationStore,
    before: UserProgress,
    after: UserProgress,
    entries: Sequence[LedgerEntry],
    now: datetime,
) -> None:
    """Emit the events the new entries and the changed progress cause (outbox)."""
    ids = {"tenant_id": after.owner.tenant_id, "user_id": after.owner.user_id}
    for e in entries:
        total = max(e.xp_total, 0)
        common = {
            **ids,
            "entry_id": e.id,
            "amount": e.amount,
            "reason": e.reason,
            "action_id": e.action_id,
            "local_date": e.local_date,
            "badge": e.badge,
            "source_event_id": e.source_event_id,
            "xp_total": total,
            "level": level_progress(total)[0],
            "multiplier": e.multiplier,
            "created_at": now,
        }
        if e.amount > 0:
            store.emit(topics.XP_AWARDED, XpAwarded.model_validate(common), subject=e.id)
        else:
            store.emit(topics.XP_REVOKED, XpRevoked.model_validate(common), subject=e.id)
    for level in sorted(after.levels_reached - before.levels_reached):
        store.emit(
            topics.LEVEL_REACHED,
            LevelReached(**ids, level=level, xp_total=after.xp_total, reached_at=now),
        )
    for code in after.badges.keys() - before.badges.keys():
        store.emit(
            topics.BADGE_UNLOCKED,
            BadgeUnlocked(**ids, badge=code, xp_reward=badge_of(code).xp_reward, unlocked_at=now),
        )


def _tell_streak(
    store: GamificationStore, progress: UserProgress, told: StreakTold, now: datetime
) -> None:
    owner = progress.owner
    store.emit(
        topics.STREAK_CHANGED,
        StreakChanged(
            tenant_id=owner.tenant_id,
            user_id=owner.user_id,
            current=told.current,
            longest=told.longest,
            last_active_date=progress.streak.last_active,
            changed_at=now,
            freezes=told.freezes,
            frozen_dates=list(told.frozen_dates),
        ),
    )


def _who(people: dict[Owner, UserProgress], tenant_id: str, user_id: str) -> UserProgress:
    owner = Owner(tenant_id, user_id)
    return people.get(owner) or UserProgress(owner, None)


def _window(period: Period, today: date) -> Window | None:
    if period == "week":
        return Window(*week_bounds(today))
    if period == "month":
        return Window(*month_bounds(today))
    return None
