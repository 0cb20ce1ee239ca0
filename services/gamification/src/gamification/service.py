"""Use cases: fold a batch of events into facts, re-derive each touched user, append the diff.

The ledger is append-only. For every touched user the pure `derive()` computes the desired
ledger from the *set* of facts; what is stored is compared per ledger key and only the
difference is appended (and announced as `xp.awarded` / `xp.revoked`). So duplicates, reordering
and replays all converge to the same totals, levels, streaks and badges.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from gamification.domain.badges import badge as badge_of
from gamification.domain.levels import level_for_xp
from gamification.domain.model import DerivedState, LedgerLine, derive
from gamification.store.mongo import (
    CHANGES,
    GRIDS,
    USERS,
    GamificationStore,
    user_key,
)
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


@dataclass
class _Facts:
    users: dict[str, Doc]
    grids: dict[str, Doc]
    changes: list[Doc]
    touched: dict[str, str]  # uk -> ce_id of the last event that touched it


def _collect(items: Iterable[Inbound]) -> _Facts:
    facts = _Facts(users={}, grids={}, changes=[], touched={})
    for item in items:
        p = item.payload
        uk = user_key(p.tenant_id, p.user_id)
        base = {"uk": uk, "tenant_id": p.tenant_id, "user_id": p.user_id}
        if isinstance(p, UserChanged):
            if p.version > facts.users.get(uk, {}).get("version", 0):
                facts.users[uk] = {
                    "_id": uk,
                    **base,
                    "version": p.version,
                    "timezone": p.timezone,
                    "display_name": p.display_name,
                }
        elif isinstance(p, GoalChanged):
            grid = p.mandalart
            gid = f"{p.tenant_id}:{grid.id}"
            if grid.version > facts.grids.get(gid, {}).get("version", 0):
                facts.grids[gid] = {
                    "_id": gid,
                    **base,
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
        elif isinstance(p, ActionCompleted | ActionUncompleted):
            local = p.occurred_at.astimezone(ZoneInfo(p.timezone))
            facts.changes.append(
                {
                    "_id": f"{uk}:{p.action_id}:{p.local_date.isoformat()}:{p.seq}",
                    **base,
                    "event_id": item.envelope.id,
                    "action_id": p.action_id,
                    "local_date": p.local_date.isoformat(),
                    "seq": p.seq,
                    "done": isinstance(p, ActionCompleted),
                    "occurred_at": p.occurred_at,
                    "local_time": local.time().replace(microsecond=0).isoformat(),
                    "timezone": p.timezone,
                }
            )
        else:
            continue
        facts.touched[uk] = item.envelope.id
    return facts


async def apply_batch(tx: Transaction, items: list[Inbound], now: datetime) -> None:
    """Store the batch's facts and bring every touched user's ledger and progress up to date."""
    store = GamificationStore(tx.db, tx.session)
    facts = _collect(items)
    newer_users = await store.newer_versions(
        USERS, {k: d["version"] for k, d in facts.users.items()}
    )
    await store.upsert_docs(USERS, [facts.users[k] for k in newer_users])
    newer_grids = await store.newer_versions(
        GRIDS, {k: d["version"] for k, d in facts.grids.items()}
    )
    await store.upsert_docs(GRIDS, [facts.grids[k] for k in newer_grids])
    await store.add_changes(facts.changes)
    if facts.touched:
        await _recompute(tx, store, facts.touched, now)


async def _recompute(
    tx: Transaction, store: GamificationStore, touched: dict[str, str], now: datetime
) -> None:
    uks = list(touched)
    changes = await store.changes_by_user(uks)
    actions = await store.actions_by_user(uks)
    ledgers = await store.ledger_entries(uks)
    progress = await store.progress_by_user(uks)
    timezones = await store.timezones(uks)
    new_entries: list[Doc] = []
    new_progress: list[Doc] = []
    for uk in uks:
        user_actions, has_grid = actions[uk]
        state = derive(changes[uk], user_actions, has_grid=has_grid)
        prev = progress.get(uk, {})
        tenant_id, user_id = uk.split(":", 1)
        entries = _diff(uk, state, ledgers[uk], int(prev.get("entries", 0)), touched[uk], now)
        new_entries += entries
        _announce(tx, tenant_id, user_id, prev, state, entries, now)
        new_progress.append(
            _progress_doc(uk, tenant_id, user_id, state, prev, entries, timezones.get(uk), now)
        )
    await store.insert_ledger(new_entries)
    await store.save_progress(new_progress)


def _diff(
    uk: str,
    state: DerivedState,
    stored: dict[str, list[Doc]],
    ord_start: int,
    trigger_event_id: str,
    now: datetime,
) -> list[Doc]:
    """Ledger entries that make the stored sums per key equal the desired ones."""
    tenant_id, user_id = uk.split(":", 1)
    desired: dict[str, LedgerLine] = {line.key: line for line in state.lines}
    out: list[Doc] = []
    ordinal = ord_start
    running = sum(int(e["amount"]) for entries in stored.values() for e in entries)

    def add(line_like: Doc, amount: int, key: str, source: str) -> None:
        nonlocal ordinal, running
        n = len(stored.get(key, []))
        ordinal += 1
        running += amount
        out.append(
            {
                "_id": entry_id(uk, key, n),
                "uk": uk,
                "tenant_id": tenant_id,
                "user_id": user_id,
                "key": key,
                "n": n,
                "ord": ordinal,
                "amount": amount,
                "reason": line_like["reason"],
                "action_id": line_like.get("action_id"),
                "local_date": line_like.get("local_date"),
                "badge": line_like.get("badge"),
                "multiplier": line_like.get("multiplier"),
                "source_event_id": source,
                "xp_total": running,
                "created_at": now,
            }
        )

    for key, line in desired.items():
        have = sum(int(e["amount"]) for e in stored.get(key, []))
        if line.amount != have:
            add(_line_doc(line), line.amount - have, key, line.source_event_id or trigger_event_id)
    for key, entries in stored.items():
        have = sum(int(e["amount"]) for e in entries)
        if key not in desired and have != 0:
            add(entries[0], -have, key, trigger_event_id)
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
    tx: Transaction,
    tenant_id: str,
    user_id: str,
    prev: Doc,
    state: DerivedState,
    entries: list[Doc],
    now: datetime,
) -> None:
    """Emit the events the new entries and the changed progress cause (outbox)."""
    ids = {"tenant_id": tenant_id, "user_id": user_id}
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
    ) and (prev or state.streak_longest):
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


def _progress_doc(
    uk: str,
    tenant_id: str,
    user_id: str,
    state: DerivedState,
    prev: Doc,
    entries: list[Doc],
    timezone: str | None,
    now: datetime,
) -> Doc:
    by_week: dict[str, int] = {}
    for line in state.lines:
        if line.local_date is not None:
            week = iso_week(line.local_date)
            by_week[week] = by_week.get(week, 0) + line.amount
    unlocked = {b["code"]: b["unlocked_at"] for b in prev.get("badges", [])}
    badges = [{"code": b.code, "unlocked_at": unlocked.get(b.code, now)} for b in state.badges]
    return {
        "_id": uk,
        "tenant_id": tenant_id,
        "user_id": user_id,
        "timezone": timezone or prev.get("timezone") or "Asia/Seoul",
        "xp_total": state.xp_total,
        "level": state.level,
        "levels_reached": sorted(
            set(prev.get("levels_reached", [])) | {up.level for up in state.levels_reached}
        ),
        "streak_current": state.streak_current,
        "streak_longest": state.streak_longest,
        "last_active_date": (
            state.last_active_date.isoformat() if state.last_active_date else None
        ),
        "perfect_days": state.perfect_days,
        "badges": badges,
        "xp_by_week": by_week,
        "entries": int(prev.get("entries", 0)) + len(entries),
        "updated_at": now,
    }


def current_streak(progress: Doc, today: date) -> int:
    """The streak as seen today: it lapses when neither today nor yesterday was active."""
    last = progress.get("last_active_date")
    if not last or date.fromisoformat(last) < today - timedelta(days=1):
        return 0
    return int(progress.get("streak_current", 0))


__all__ = ["CHANGES", "apply_batch", "current_streak", "entry_id"]
