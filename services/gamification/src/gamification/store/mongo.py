"""Gamification's MongoDB adapter: facts in, ledger and progress out, batched per call."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime, time
from typing import Any

from pymongo import ASCENDING, DESCENDING, InsertOne, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from gamification.domain.model import CheckinChange
from mandaact_common.domain.schedule import Action, Schedule
from mandaact_common.mongo import Doc

USERS = "users"
GRIDS = "grids"
CHANGES = "checkin_changes"
LEDGER = "ledger"
PROGRESS = "progress"


def user_key(tenant_id: str, user_id: str) -> str:
    """The per-user key every document is filed under (tenant first)."""
    return f"{tenant_id}:{user_id}"


async def ensure_indexes(db: AsyncDatabase[Doc]) -> None:
    """Create the indexes reads and the idempotent projection rely on."""
    await db[CHANGES].create_index([("uk", ASCENDING)])
    await db[GRIDS].create_index([("uk", ASCENDING)])
    await db[LEDGER].create_index(
        [("uk", ASCENDING), ("key", ASCENDING), ("n", ASCENDING)], unique=True
    )
    await db[LEDGER].create_index([("uk", ASCENDING), ("ord", DESCENDING)])
    await db[PROGRESS].create_index([("tenant_id", ASCENDING), ("xp_total", DESCENDING)])


class GamificationStore:
    """Reads and writes of one transaction (every call goes through its session)."""

    def __init__(self, db: AsyncDatabase[Doc], session: AsyncClientSession | None) -> None:
        self._db = db
        self._s = session

    async def newer_versions(self, collection: str, versions: dict[str, int]) -> dict[str, int]:
        """The subset of {id: version} that is newer than what is stored."""
        if not versions:
            return {}
        stored = {
            d["_id"]: int(d.get("version", 0))
            async for d in self._db[collection].find(
                {"_id": {"$in": list(versions)}}, {"version": 1}, session=self._s
            )
        }
        return {k: v for k, v in versions.items() if v > stored.get(k, 0)}

    async def upsert_docs(self, collection: str, docs: Sequence[Doc]) -> None:
        """Replace (or insert) whole documents by `_id`."""
        if docs:
            ops = [UpdateOne({"_id": d["_id"]}, {"$set": d}, upsert=True) for d in docs]
            await self._db[collection].bulk_write(ops, ordered=False, session=self._s)

    async def add_changes(self, docs: Sequence[Doc]) -> None:
        """Record check-in changes; a change already known (same `_id`) is left as it is."""
        if docs:
            ops = [UpdateOne({"_id": d["_id"]}, {"$setOnInsert": d}, upsert=True) for d in docs]
            await self._db[CHANGES].bulk_write(ops, ordered=False, session=self._s)

    async def changes_by_user(self, uks: Iterable[str]) -> dict[str, list[CheckinChange]]:
        """Every recorded check-in change of these users."""
        out: dict[str, list[CheckinChange]] = {uk: [] for uk in uks}
        async for d in self._db[CHANGES].find({"uk": {"$in": list(out)}}, session=self._s):
            out[d["uk"]].append(
                CheckinChange(
                    event_id=d["event_id"],
                    action_id=d["action_id"],
                    local_date=date.fromisoformat(d["local_date"]),
                    seq=int(d["seq"]),
                    done=bool(d["done"]),
                    occurred_at=d["occurred_at"],
                    local_time=time.fromisoformat(d["local_time"]) if d.get("local_time") else None,
                )
            )
        return out

    async def actions_by_user(self, uks: Iterable[str]) -> dict[str, tuple[list[Action], bool]]:
        """Each user's checkable actions of active grids, and whether they ever made a grid."""
        out: dict[str, tuple[list[Action], bool]] = {uk: ([], False) for uk in uks}
        async for d in self._db[GRIDS].find({"uk": {"$in": list(out)}}, session=self._s):
            actions, _ = out[d["uk"]]
            if d.get("active", True) and not d.get("deleted", False):
                actions.extend(_action_from_doc(a) for a in d.get("actions", []))
            out[d["uk"]] = (actions, True)
        return out

    async def ledger_entries(self, uks: Iterable[str]) -> dict[str, dict[str, list[Doc]]]:
        """Per user, per ledger key: the stored entries."""
        out: dict[str, dict[str, list[Doc]]] = {uk: {} for uk in uks}
        async for d in self._db[LEDGER].find({"uk": {"$in": list(out)}}, session=self._s):
            out[d["uk"]].setdefault(d["key"], []).append(d)
        return out

    async def timezones(self, uks: Iterable[str]) -> dict[str, str]:
        """Each user's timezone: their settings if known, else the one their check-ins carry."""
        wanted = list(uks)
        out: dict[str, str] = {}
        cursor = self._db[CHANGES].find(
            {"uk": {"$in": wanted}}, {"uk": 1, "timezone": 1, "occurred_at": 1}, session=self._s
        )
        latest: dict[str, datetime] = {}
        async for d in cursor:
            if d["uk"] not in latest or d["occurred_at"] > latest[d["uk"]]:
                latest[d["uk"]] = d["occurred_at"]
                out[d["uk"]] = d["timezone"]
        async for d in self._db[USERS].find({"_id": {"$in": wanted}}, session=self._s):
            out[d["_id"]] = d["timezone"]
        return out

    async def progress_by_user(self, uks: Iterable[str]) -> dict[str, Doc]:
        """The stored progress projection of these users."""
        return {
            d["_id"]: d
            async for d in self._db[PROGRESS].find({"_id": {"$in": list(uks)}}, session=self._s)
        }

    async def insert_ledger(self, docs: Sequence[Doc]) -> None:
        """Append ledger entries (bulk)."""
        if docs:
            await self._db[LEDGER].bulk_write(
                [InsertOne(d) for d in docs], ordered=False, session=self._s
            )

    async def save_progress(self, docs: Sequence[Doc]) -> None:
        """Replace the progress projection of these users."""
        await self.upsert_docs(PROGRESS, docs)

    # -- reads for the API (no session needed) --

    async def progress(self, uk: str) -> Doc | None:
        """One user's progress projection."""
        return await self._db[PROGRESS].find_one({"_id": uk})

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
            self._db[PROGRESS]
            .find({"tenant_id": tenant_id, field: {"$gt": 0}})
            .sort([(field, DESCENDING), ("user_id", ASCENDING)])
            .limit(limit)
        )
        return [d async for d in cursor]


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
