"""Use cases: fold a batch of events into facts, re-derive each touched user, append the diff.

The ledger is append-only. For every touched user the pure `derive()` computes the desired
ledger from the *set* of facts; what is stored is compared per ledger key and only the
difference is appended (and announced as `xp.awarded` / `xp.revoked`). So duplicates, reordering
and replays all converge to the same totals, levels, streaks and badges.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from gamification.domain.badges import badge as badge_of
from gamification.domain.levels import level_for_xp
from gamification.domain.model import DerivedState, LedgerLine, derive
from gamification.store.mongo import GamificationStore, actions_of, changes_of, user_key
from mandaact_common.consumer import Inbound
from mandaact_common.domain.calendar import iso_week
from mandaact_common.mongo import Doc
from mandaact_common.outbox import Transaction
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


def entry_id(uk: str, key: str, n: int) -> str:
    """A ledger entry's id: the same in a live run and in a replay."""
    return str(uuid.uuid5(ENTRY_NAMESPACE, f"{uk}|{key}|{n}"))


def _new_state(uk: str, tenant_id: str, user_id: str) -> Doc:
    return {
        "_id": uk,
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
            {
                "id": a.id,
                "type": a.type,
                "schedule": a.schedule.model_dump() if a.schedule else None,
                "added_on": a.added_on.isoformat(),
                "due_date": a.due_date.isoformat() if a.due_date else None,
            }
            for sg in grid.sub_goals
            for a in sg.actions
            if a.type != "reference"
        ],
    }


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


async def apply_batch(tx: Transaction, items: list[Inbound], now: datetime) -> None:
    """Store the batch's facts and bring every touched user's ledger and progress up to date."""
    store = GamificationStore(tx.db, tx.session)
    uks = {user_key(i.payload.tenant_id, i.payload.user_id) for i in items}
    states = await store.states(uks)
    touched: dict[str, str] = {}
    for item in items:
        p = item.payload
        uk = user_key(p.tenant_id, p.user_id)
        state = states.setdefault(uk, _new_state(uk, p.tenant_id, p.user_id))
        if _fold_fact(state, item):
            touched[uk] = item.envelope.id
    entries: list[Doc] = []
    for uk, trigger in touched.items():
        entries += _rederive(tx, states[uk], trigger, now)
    await store.insert_ledger(entries)
    await store.save_states([states[uk] for uk in touched])


def _rederive(tx: Transaction, state: Doc, trigger_event_id: str, now: datetime) -> list[Doc]:
    """Derive the user's desired state, append the ledger difference, refresh the projection."""
    derived = derive(changes_of(state), actions_of(state), has_grid=bool(state["grids"]))
    entries = _diff(state, derived, trigger_event_id, now)
    _announce(tx, state, derived, entries, now)
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
        "local_date": line.local_date.isoformat() if line.local_date else None,
        "badge": line.badge,
        "multiplier": line.multiplier,
    }


def _announce(
    tx: Transaction, prev: Doc, state: DerivedState, entries: list[Doc], now: datetime
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
            tx.emit(topics.XP_AWARDED, XpAwarded(**common), subject=e["_id"])
        else:
            tx.emit(topics.XP_REVOKED, XpRevoked(**common), subject=e["_id"])
    known_levels = set(prev.get("levels_reached", []))
    for level in sorted({up.level for up in state.levels_reached}):
        if level not in known_levels:
            tx.emit(
                topics.LEVEL_REACHED,
                LevelReached(**ids, level=level, xp_total=state.xp_total, reached_at=now),
            )
    known_badges = {b["code"] for b in prev.get("badges", [])}
    for unlock in state.badges:
        if unlock.code not in known_badges:
            reward = badge_of(unlock.code).xp_reward
            tx.emit(
                topics.BADGE_UNLOCKED,
                BadgeUnlocked(**ids, badge=unlock.code, xp_reward=reward, unlocked_at=now),
            )
    if (prev.get("streak_current"), prev.get("streak_longest")) != (
        state.streak_current,
        state.streak_longest,
    ) and ("streak_current" in prev or state.streak_longest):
        tx.emit(
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
