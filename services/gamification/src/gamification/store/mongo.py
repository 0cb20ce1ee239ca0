"""Gamification's MongoDB adapter.

One document per user (`user_state`) holds everything the fold needs — the user's grids'
actions, every check-in change received, the ledger sums per key — and the progress projection
the API reads. A batch therefore costs one read and one bulk write for all the users it touches,
whatever their history; the append-only `ledger` collection holds the entries for the API.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, time
from typing import Any

from pymongo import ASCENDING, DESCENDING, InsertOne, ReplaceOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from gamification.domain.model import CheckinChange
from mandaact_common.domain.schedule import Action, Schedule
from mandaact_common.mongo import Doc

USER_STATE = "user_state"
LEDGER = "ledger"

# Fields of a user_state document that are the projection (what reads need).
PROGRESS_FIELDS = {
    "_id": 1,
    "tenant_id": 1,
    "user_id": 1,
    "timezone": 1,
    "xp_total": 1,
    "level": 1,
    "streak_current": 1,
    "streak_longest": 1,
    "last_active_date": 1,
    "perfect_days": 1,
    "badges": 1,
    "xp_by_week": 1,
}


def user_key(tenant_id: str, user_id: str) -> str:
    """The per-user key every document is filed under (tenant first)."""
    return f"{tenant_id}:{user_id}"


async def ensure_indexes(db: AsyncDatabase[Doc]) -> None:
    """Create the indexes reads and the idempotent projection rely on."""
    await db[LEDGER].create_index(
        [("uk", ASCENDING), ("key", ASCENDING), ("n", ASCENDING)], unique=True
    )
    await db[LEDGER].create_index([("uk", ASCENDING), ("ord", DESCENDING)])
    await db[USER_STATE].create_index(
        [("tenant_id", ASCENDING), ("xp_total", DESCENDING), ("user_id", ASCENDING)]
    )


def changes_of(state: Doc) -> list[CheckinChange]:
    """The check-in changes stored in a user_state document."""
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
        _action_from_doc(a)
        for g in state.get("grids", [])
        if g.get("active", True) and not g.get("deleted", False)
        for a in g.get("actions", [])
    ]


def _action_from_doc(d: Doc) -> Action:
    sched = d.get("schedule")
    schedule = (
        Schedule.from_parts(sched["frequency"], sched.get("days"), sched.get("times"))
        if sched
        else None
    )
    return Action(
        id=d["id"],
        type=d["type"],
        schedule=schedule,
        added_on=date.fromisoformat(d["added_on"]),
        due_date=date.fromisoformat(d["due_date"]) if d.get("due_date") else None,
    )


class GamificationStore:
    """Reads and writes of one transaction (every call goes through its session)."""

    def __init__(self, db: AsyncDatabase[Doc], session: AsyncClientSession | None) -> None:
        self._db = db
        self._s = session

    async def states(self, uks: Iterable[str]) -> dict[str, Doc]:
        """The user_state documents of these users (missing ones are absent)."""
        cursor = self._db[USER_STATE].find({"_id": {"$in": list(uks)}}, session=self._s)
        return {d["_id"]: d async for d in cursor}

    async def save_states(self, docs: Sequence[Doc]) -> None:
        """Replace (or insert) whole user_state documents."""
        if docs:
            ops = [ReplaceOne({"_id": d["_id"]}, d, upsert=True) for d in docs]
            await self._db[USER_STATE].bulk_write(ops, ordered=False, session=self._s)

    async def insert_ledger(self, docs: Sequence[Doc]) -> None:
        """Append ledger entries (bulk)."""
        if docs:
            await self._db[LEDGER].bulk_write(
                [InsertOne(d) for d in docs], ordered=False, session=self._s
            )

    # -- reads for the API --

    async def progress(self, uk: str) -> Doc | None:
        """One user's progress projection."""
        return await self._db[USER_STATE].find_one({"_id": uk}, PROGRESS_FIELDS)

    async def ledger_page(self, uk: str, limit: int, before: int | None) -> list[Doc]:
        """A user's ledger entries, newest first."""
        query: dict[str, Any] = {"uk": uk}
        if before is not None:
            query["ord"] = {"$lt": before}
        cursor = self._db[LEDGER].find(query).sort("ord", DESCENDING).limit(limit)
        return [d async for d in cursor]

    async def leaderboard(self, tenant_id: str, field: str, limit: int) -> list[Doc]:
        """The tenant's users by XP (all time or one week), ties by user id."""
        cursor = (
            self._db[USER_STATE]
            .find({"tenant_id": tenant_id, field: {"$gt": 0}}, PROGRESS_FIELDS)
            .sort([(field, DESCENDING), ("user_id", ASCENDING)])
            .limit(limit)
        )
        return [d async for d in cursor]
