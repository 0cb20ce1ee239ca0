"""Gamification's MongoDB adapter.

One document per user (`user_state`) holds everything the fold needs — the user's grids'
actions, every check-in change received, the ledger sums per key — and the progress projection
the API reads. A batch therefore costs one read and one bulk write for all the users it touches,
whatever their history; the append-only `ledger` collection holds the entries for the API.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from pymongo import ASCENDING, DESCENDING, InsertOne, ReplaceOne
from pymongo.asynchronous.database import AsyncDatabase

from gamification.store.ports import PROGRESS_FIELDS
from mandaact_common.mongo import Doc
from mandaact_common.unit_of_work import MongoStore

USER_STATE = "user_state"
LEDGER = "ledger"

_PROJECTION = dict.fromkeys(PROGRESS_FIELDS, 1)


async def ensure_indexes(db: AsyncDatabase[Doc]) -> None:
    """Create the indexes reads and the idempotent projection rely on."""
    await db[LEDGER].create_index(
        [("uk", ASCENDING), ("key", ASCENDING), ("n", ASCENDING)], unique=True
    )
    await db[LEDGER].create_index([("uk", ASCENDING), ("ord", DESCENDING)])
    await db[USER_STATE].create_index(
        [("tenant_id", ASCENDING), ("xp_total", DESCENDING), ("user_id", ASCENDING)]
    )


class MongoGamificationStore(MongoStore):
    """The GamificationStore port on MongoDB (every call goes through the unit's session)."""

    async def states(self, keys: Iterable[str]) -> dict[str, Doc]:
        """The user_state documents of these users (missing ones are absent)."""
        cursor = self._db[USER_STATE].find({"_id": {"$in": list(keys)}}, session=self._session)
        return {d["_id"]: d async for d in cursor}

    async def save_states(self, docs: Sequence[Doc]) -> None:
        """Replace (or insert) whole user_state documents."""
        if docs:
            ops = [ReplaceOne({"_id": d["_id"]}, d, upsert=True) for d in docs]
            await self._db[USER_STATE].bulk_write(ops, ordered=False, session=self._session)

    async def insert_ledger(self, docs: Sequence[Doc]) -> None:
        """Append ledger entries (bulk)."""
        if docs:
            await self._db[LEDGER].bulk_write(
                [InsertOne(d) for d in docs], ordered=False, session=self._session
            )

    async def progress(self, key: str) -> Doc | None:
        """One user's progress projection."""
        return await self._db[USER_STATE].find_one({"_id": key}, _PROJECTION, session=self._session)

    async def ledger_page(self, key: str, limit: int, before: int | None) -> list[Doc]:
        """A user's ledger entries, newest first."""
        query: dict[str, Any] = {"uk": key}
        if before is not None:
            query["ord"] = {"$lt": before}
        cursor = (
            self._db[LEDGER].find(query, session=self._session).sort("ord", DESCENDING).limit(limit)
        )
        return [d async for d in cursor]

    async def leaderboard(self, tenant_id: str, week: str | None, limit: int) -> list[Doc]:
        """The tenant's users by XP (all time or one week), ties by user id."""
        field = f"xp_by_week.{week}" if week is not None else "xp_total"
        cursor = (
            self._db[USER_STATE]
            .find({"tenant_id": tenant_id, field: {"$gt": 0}}, _PROJECTION, session=self._session)
            .sort([(field, DESCENDING), ("user_id", ASCENDING)])
            .limit(limit)
        )
        return [d async for d in cursor]
