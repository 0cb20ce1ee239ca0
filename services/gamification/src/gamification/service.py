"""Use cases: fold a batch of events into facts, re-derive each touched user, append the diff;
and the reads of the API (progress, ledger, leaderboard, badges).

The ledger is append-only. For every touched user the pure `derive()` computes the desired
ledger from the *set* of facts; what is stored is compared per ledger key and only the
difference is appended (and announced as `xp.awarded` / `xp.revoked`). So duplicates, reordering
and replays all converge to the same totals, levels, streaks and badges.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from gamification.domain.badges import badge as badge_of
from gamification.domain.badges import catalogue
from gamification.domain.levels import level_for_xp
from gamification.domain.levels import progress as level_progress
from gamification.domain.model import CheckinChange, DerivedState, LedgerLine, LineReason, derive
from gamification.store.ports import GamificationStore
from mandaact_common.clock import Clock, utc_now
from mandaact_common.codecs import action_doc, action_from, date_from, iso_date
from mandaact_common.consumer import Inbound
from mandaact_common.domain.calendar import DEFAULT_TIMEZONE, iso_week, today_in
from mandaact_common.domain.owner import Owner
from mandaact_common.domain.schedule import Action
from mandaact_common.grid_events import placed_actions
from mandaact_common.keys import owner_key
from mandaact_common.mongo import Doc
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

ENTRY_NAMESPACE = uuid.UUID("6f1c2d3e-8a7b-4c5d-9e0f-112233445566")

Period = Literal["week", "all"]
Locale = Literal["ko", "en"]


# --- what the reads return ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EarnedBadge:
    """A badge the user has unlocked, and when."""

    code: str
    unlocked_at: datetime


@dataclass(frozen=True, slots=True)
class Streak:
    """Consecutive local dates with a check-in: the run as seen today, and the longest one."""

    current: int
    longest: int


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
class LedgerEntry:
    """One XP award or take-back."""

    id: str
    amount: int
    reason: LineReason
    action_id: str | None
    local_date: date | None
    badge: str | None
    source_event_id: str
    created_at: datetime


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
    xp: int
    level: int


@dataclass(frozen=True, slots=True)
class Leaderboard:
    """The tenant's users by XP in the period (`week` is the ISO week when it is one)."""

    period: Period
    week: str | None
    items: list[Standing]


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


class GamificationService:
    """The gamification use cases over a unit of work."""

    def __init__(self, uow: UnitOfWork[GamificationStore], clock: Clock = utc_now) -> None:
        self._uow = uow
        self._clock = clock

    async def apply_batch(self, store: GamificationStore, items: Sequence[Inbound]) -> None:
        """Store the batch's facts and bring every touched user's ledger and progress up to date."""
        now = self._clock()
        keys = {owner_key(i.payload.tenant_id, i.payload.user_id) for i in items}
        states = await store.states(keys)
        touched: dict[str, str] = {}
        for item in items:
            p = item.payload
            key = owner_key(p.tenant_id, p.user_id)
            state = states.setdefault(key, _new_state(key, p.tenant_id, p.user_id))
            if _fold_fact(state, item):
                touched[key] = item.envelope.id
        entries: list[Doc] = []
        for key, trigger in touched.items():
            entries += _rederive(store, states[key], trigger, now)
        await store.insert_ledger(entries)
        await store.save_states([states[key] for key in touched])

    async def progress(self, owner: Owner) -> Progress:
        """The user's XP total, level, streak, perfect days and badges."""
        doc = await self._uow.read(lambda store: store.progress(owner.key)) or {}
        xp = int(doc.get("xp_total", 0))
        level, into, needed = level_progress(xp)
        return Progress(
            xp_total=xp,
            level=level,
            xp_into_level=into,
            xp_for_next_level=needed,
            streak=Streak(
                current=current_streak(doc, self._today(doc)),
                longest=int(doc.get("streak_longest", 0)),
            ),
            perfect_days=int(doc.get("perfect_days", 0)),
            badges=[EarnedBadge(b["code"], b["unlocked_at"]) for b in doc.get("badges", [])],
        )

    async def ledger(self, owner: Owner, limit: int, before: int | None) -> LedgerPage:
        """The user's XP ledger, newest first, `limit` entries older than `before`."""
        docs = await self._uow.read(lambda store: store.ledger_page(owner.key, limit, before))
        items = [
            LedgerEntry(
                id=d["_id"],
                amount=d["amount"],
                reason=d["reason"],
                action_id=d.get("action_id"),
                local_date=date_from(d.get("local_date")),
                badge=d.get("badge"),
                source_event_id=d["source_event_id"],
                created_at=d["created_at"],
            )
            for d in docs
        ]
        return LedgerPage(items, docs[-1]["ord"] if len(docs) == limit else None)

    async def leaderboard(self, owner: Owner, period: Period, limit: int) -> Leaderboard:
        """The user's tenant ranked by XP this ISO week (the user's timezone) or all time."""

        async def work(store: GamificationStore) -> tuple[str | None, list[Doc]]:
            week: str | None = None
            if period == "week":
                week = iso_week(self._today(await store.progress(owner.key) or {}))
            return week, await store.leaderboard(owner.tenant_id, week, limit)

        week, docs = await self._uow.read(work)
        rows = [
            Standing(
                rank=rank,
                user_id=d["user_id"],
                xp=int(d["xp_by_week"].get(week, 0)) if week else int(d["xp_total"]),
                level=d["level"],
            )
            for rank, d in enumerate(docs, start=1)
        ]
        return Leaderboard(period, week, rows)

    async def badges(self, owner: Owner, locale: Locale) -> list[CatalogueBadge]:
        """The badge catalogue with the user's unlocks, in their language."""
        doc = await self._uow.read(lambda store: store.progress(owner.key)) or {}
        unlocked = {b["code"]: b["unlocked_at"] for b in doc.get("badges", [])}
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

    def _today(self, progress: Doc) -> date:
        """The user's local date now (their timezone, else the default one)."""
        return today_in(progress.get("timezone") or DEFAULT_TIMEZONE, self._clock())


# --- the per-user state document ---------------------------------------------------------------


def entry_id(key: str, line_key: str, n: int) -> str:
    """A ledger entry's id: the same in a live run and in a replay."""
    return str(uuid.uuid5(ENTRY_NAMESPACE, f"{key}|{line_key}|{n}"))


def _new_state(key: str, tenant_id: str, user_id: str) -> Doc:
    return {
        "_id": key,
        "tenant_id": tenant_id,
        "user_id": user_id,
        "user_version": 0,
        "timezone": None,
        "grids": [],
        "changes": [],
        "ledger": [],
        "entries": 0,
    }


def _grid_doc(event: GoalChanged) -> Doc:
    grid = event.mandalart
    return {
        "id": grid.id,
        "version": grid.version,
        "active": grid.active,
        "deleted": grid.deleted,
        "actions": [
            action_doc(a.rule) for a in placed_actions(event) if a.rule.type != "reference"
        ],
    }


def changes_of(state: Doc) -> list[CheckinChange]:
    """The check-in changes stored in a user's state."""
    return [
        CheckinChange(
            event_id=c["event_id"],
            action_id=c["action_id"],
            local_date=date.fromisoformat(c["local_date"]),
            seq=int(c["seq"]),
            done=bool(c["done"]),
            occurred_at=c["occurred_at"],
            local_time=time.fromisoformat(c["local_time"]) if c.get("local_time") else None,
        )
        for c in state.get("changes", [])
    ]


def actions_of(state: Doc) -> list[Action]:
    """The checkable actions of the user's active grids."""
    return [
        action_from(a)
        for g in state.get("grids", [])
        if g.get("active", True) and not g.get("deleted", False)
        for a in g.get("actions", [])
    ]


def _fold_fact(state: Doc, item: Inbound) -> bool:
    """Record one event's fact in the user's state; False when it carries nothing new."""
    p = item.payload
    if isinstance(p, UserChanged):
        if p.version <= state["user_version"]:
            return False
        state.update(user_version=p.version, timezone=p.timezone)
        return True
    if isinstance(p, GoalChanged):
        current = next((g for g in state["grids"] if g["id"] == p.mandalart.id), None)
        if current is not None and current["version"] >= p.mandalart.version:
            return False
        state["grids"] = [g for g in state["grids"] if g["id"] != p.mandalart.id]
        state["grids"].append(_grid_doc(p))
        if state["user_version"] == 0:  # until user.changed arrives, the grid tells the zone
            state["timezone"] = p.timezone
        return True
    if isinstance(p, ActionCompleted | ActionUncompleted):
        day = p.local_date.isoformat()
        if any(
            c["action_id"] == p.action_id and c["local_date"] == day and c["seq"] == p.seq
            for c in state["changes"]
        ):
            return False
        local = p.occurred_at.astimezone(ZoneInfo(p.timezone))
        state["changes"].append(
            {
                "event_id": item.envelope.id,
                "action_id": p.action_id,
                "local_date": day,
                "seq": p.seq,
                "done": isinstance(p, ActionCompleted),
                "occurred_at": p.occurred_at,
                "local_time": local.time().replace(microsecond=0).isoformat(),
            }
        )
        if state["timezone"] is None or state["user_version"] == 0:
            state["timezone"] = p.timezone
        return True
    return False


def _rederive(
    store: GamificationStore, state: Doc, trigger_event_id: str, now: datetime
) -> list[Doc]:
    """Derive the user's desired state, append the ledger difference, refresh the projection."""
    derived = derive(changes_of(state), actions_of(state), has_grid=bool(state["grids"]))
    entries = _diff(state, derived, trigger_event_id, now)
    _announce(store, state, derived, entries, now)
    _project(state, derived, now)
    return entries


def _diff(state: Doc, derived: DerivedState, trigger_event_id: str, now: datetime) -> list[Doc]:
    """Ledger entries that make the stored sums per key equal the desired ones."""
    uk = state["_id"]
    sums: dict[str, Doc] = {s["key"]: s for s in state["ledger"]}
    desired: dict[str, LedgerLine] = {line.key: line for line in derived.lines}
    out: list[Doc] = []
    running = sum(int(s["sum"]) for s in sums.values())

    def add(meta: Doc, amount: int, key: str, source: str) -> None:
        nonlocal running
        summary = sums.setdefault(key, {"key": key, "sum": 0, "count": 0, **meta})
        running += amount
        state["entries"] += 1
        out.append(
            {
                "_id": entry_id(uk, key, summary["count"]),
                "uk": uk,
                "tenant_id": state["tenant_id"],
                "user_id": state["user_id"],
                "key": key,
                "n": summary["count"],
                "ord": state["entries"],
                "amount": amount,
                **meta,
                "source_event_id": source,
                "xp_total": running,
                "created_at": now,
            }
        )
        summary["sum"] += amount
        summary["count"] += 1

    for key, line in desired.items():
        have = int(sums[key]["sum"]) if key in sums else 0
        if line.amount != have:
            add(_line_doc(line), line.amount - have, key, line.source_event_id or trigger_event_id)
    for key, summary in list(sums.items()):
        if key not in desired and summary["sum"] != 0:
            meta = {f: summary.get(f) for f in ("reason", "action_id", "local_date", "badge")}
            add({**meta, "multiplier": None}, -int(summary["sum"]), key, trigger_event_id)
    state["ledger"] = list(sums.values())
    return out


def _line_doc(line: LedgerLine) -> Doc:
    return {
        "reason": line.reason,
        "action_id": line.action_id,
        "local_date": iso_date(line.local_date),
        "badge": line.badge,
        "multiplier": line.multiplier,
    }


def _announce(
    store: GamificationStore, prev: Doc, state: DerivedState, entries: list[Doc], now: datetime
) -> None:
    """Emit the events the new entries and the changed progress cause (outbox)."""
    ids = {"tenant_id": prev["tenant_id"], "user_id": prev["user_id"]}
    for e in entries:
        common: dict[str, Any] = {
            **ids,
            "entry_id": e["_id"],
            "amount": e["amount"],
            "reason": e["reason"],
            "action_id": e["action_id"],
            "local_date": e["local_date"],
            "badge": e["badge"],
            "source_event_id": e["source_event_id"],
            "xp_total": max(e["xp_total"], 0),
            "level": level_for_xp(max(e["xp_total"], 0)),
            "multiplier": e["multiplier"],
            "created_at": now,
        }
        if e["amount"] > 0:
            store.emit(topics.XP_AWARDED, XpAwarded(**common), subject=e["_id"])
        else:
            store.emit(topics.XP_REVOKED, XpRevoked(**common), subject=e["_id"])
    known_levels = set(prev.get("levels_reached", []))
    for level in sorted({up.level for up in state.levels_reached}):
        if level not in known_levels:
            store.emit(
                topics.LEVEL_REACHED,
                LevelReached(**ids, level=level, xp_total=state.xp_total, reached_at=now),
            )
    known_badges = {b["code"] for b in prev.get("badges", [])}
    for unlock in state.badges:
        if unlock.code not in known_badges:
            reward = badge_of(unlock.code).xp_reward
            store.emit(
                topics.BADGE_UNLOCKED,
                BadgeUnlocked(**ids, badge=unlock.code, xp_reward=reward, unlocked_at=now),
            )
    if (prev.get("streak_current"), prev.get("streak_longest")) != (
        state.streak_current,
        state.streak_longest,
    ) and ("streak_current" in prev or state.streak_longest):
        store.emit(
            topics.STREAK_CHANGED,
            StreakChanged(
                **ids,
                current=state.streak_current,
                longest=state.streak_longest,
                last_active_date=state.last_active_date,
                changed_at=now,
            ),
        )


def _project(state: Doc, derived: DerivedState, now: datetime) -> None:
    """Refresh the projection fields the API reads."""
    by_week: dict[str, int] = {}
    for line in derived.lines:
        if line.local_date is not None:
            week = iso_week(line.local_date)
            by_week[week] = by_week.get(week, 0) + line.amount
    unlocked = {b["code"]: b["unlocked_at"] for b in state.get("badges", [])}
    state.update(
        xp_total=derived.xp_total,
        level=derived.level,
        levels_reached=sorted(
            set(state.get("levels_reached", [])) | {up.level for up in derived.levels_reached}
        ),
        streak_current=derived.streak_current,
        streak_longest=derived.streak_longest,
        last_active_date=(
            derived.last_active_date.isoformat() if derived.last_active_date else None
        ),
        perfect_days=derived.perfect_days,
        badges=[{"code": b.code, "unlocked_at": unlocked.get(b.code, now)} for b in derived.badges],
        xp_by_week=by_week,
        updated_at=now,
    )


def current_streak(progress: Doc, today: date) -> int:
    """The streak as seen today: it lapses when neither today nor yesterday was active."""
    last = progress.get("last_active_date")
    if not last or date.fromisoformat(last) < today - timedelta(days=1):
        return 0
    return int(progress.get("streak_current", 0))
