"""Gamification's MongoDB adapter: user progress, the archive of facts, ledger, leaderboards.

- `user_state`: one document per user, bounded: the projection the API reads and the kept fold
  (compressed JSON; its size depends on the kept window, not on the history).
- `facts`: every check-in change and grid version received, one small document each, read back
  only to rebuild a user's fold.
- `ledger`: append-only entries, unique per (user, line key, n).
- `leaderboards`: one row per (tenant, week or month, user), indexed on XP, so a board reads
  its rows and a rank from bucket counts. The all-time board is `user_state` itself, indexed on
  `xp_total` (a user's all-time XP is their total): no row of its own to write.
- `leaderboard_buckets`: per (tenant, period, window, XP bucket) the number of users in it, kept
  in the same transaction as the rows: a board reads the few bucket counts, then only the rows
  above the XP where its top `limit` lie; a rank is the buckets above plus two counts inside one
  bucket. (On MongoDB an index-ordered `sort().limit()` would do the first alone; the server used
  here sorts every matching row, so the buckets keep the work the same whatever the tenant's
  size on both.)
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Collection, Sequence
from datetime import date, time
from typing import Any, cast

from bson import Binary
from pymongo import ASCENDING, DESCENDING, InsertOne, ReplaceOne, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from gamification.domain.model import CheckinChange, LineReason
from gamification.domain.progress import (
    BoardDelta,
    KeySum,
    LedgerEntry,
    Period,
    UserProgress,
    bucket_floor,
    xp_bucket,
)
from gamification.domain.user_fold import Fact, GridFact, UserFold, digest
from gamification.store.ports import BoardRow
from mandaact_common import codecs
from mandaact_common.domain.owner import Owner
from mandaact_common.keys import compose_key, sub_key
from mandaact_common.mongo import Doc
from mandaact_common.unit_of_work import MongoStore

USER_STATE = "user_state"
FACTS = "facts"
LEDGER = "ledger"
BOARDS = "leaderboards"
BUCKETS = "leaderboard_buckets"


async def ensure_indexes(db: AsyncDatabase[Doc]) -> None:
    """Create the indexes the fold, the reads and the leaderboards rely on."""
    await db[LEDGER].create_index(
        [("uk", ASCENDING), ("key", ASCENDING), ("n", ASCENDING)], unique=True
    )
    await db[LEDGER].create_index([("uk", ASCENDING), ("ord", DESCENDING)])
    await db[FACTS].create_index([("uk", ASCENDING)])
    await db[USER_STATE].create_index(
        [("tenant_id", ASCENDING), ("xp_total", DESCENDING), ("user_id", ASCENDING)],
        name="all_time_board",
    )
    await db[BOARDS].create_index(
        [
            ("tenant_id", ASCENDING),
            ("period", ASCENDING),
            ("window", ASCENDING),
            ("xp", DESCENDING),
            ("user_id", ASCENDING),
        ],
        name="board_by_xp",
    )
    await db[BUCKETS].create_index(
        [("tenant_id", ASCENDING), ("period", ASCENDING), ("window", ASCENDING)],
        name="buckets_of_window",
    )


# --- documents <-> values ----------------------------------------------------------------------


def fold_blob(fold: UserFold) -> Binary:
    """The kept fold as stored: compact JSON, compressed."""
    text = json.dumps(fold.to_state(), separators=(",", ":"))
    return Binary(zlib.compress(text.encode(), 6))


def fold_from_blob(blob: bytes) -> UserFold:
    """A kept fold from its stored form."""
    return UserFold.from_state(json.loads(zlib.decompress(blob)))


def progress_doc(progress: UserProgress) -> Doc:
    """A user's progress as stored (the fold only when it is held)."""
    owner = progress.owner
    doc: Doc = {
        "_id": owner.key,
        "tenant_id": owner.tenant_id,
        "user_id": owner.user_id,
        "user_version": progress.user_version,
        "timezone": progress.timezone,
        "display_name": progress.display_name,
        "entries": progress.entries,
        "xp_total": progress.xp_total,
        "level": progress.level,
        "levels_reached": sorted(progress.levels_reached),
        "streak_current": progress.streak_current,
        "streak_longest": progress.streak_longest,
        "last_active_date": codecs.iso_date(progress.last_active_date),
        "perfect_days": progress.perfect_days,
        "badges": [{"code": c, "unlocked_at": at} for c, at in progress.badges.items()],
        "updated_at": progress.updated_at,
        "reusable": [[k, n] for k, n in progress.reusable.items()],
    }
    if progress.fold is not None:
        doc["fold"] = fold_blob(progress.fold)
    return doc


def progress_from(doc: Doc) -> UserProgress:
    """A user's progress from its stored form."""
    blob = doc.get("fold")
    return UserProgress(
        owner=Owner(doc["tenant_id"], doc["user_id"]),
        fold=fold_from_blob(bytes(blob)) if blob is not None else None,
        user_version=int(doc["user_version"]),
        timezone=doc.get("timezone"),
        display_name=doc.get("display_name"),
        entries=int(doc["entries"]),
        xp_total=int(doc["xp_total"]),
        level=int(doc["level"]),
        levels_reached={int(lv) for lv in doc.get("levels_reached", [])},
        streak_current=int(doc["streak_current"]),
        streak_longest=int(doc["streak_longest"]),
        last_active_date=codecs.date_from(doc.get("last_active_date")),
        perfect_days=int(doc["perfect_days"]),
        badges={b["code"]: codecs.utc(b["unlocked_at"]) for b in doc.get("badges", [])},
        updated_at=codecs.utc(doc["updated_at"]) if doc.get("updated_at") else None,
        reusable={k: int(n) for k, n in doc.get("reusable", [])},
    )


def fact_doc(owner: Owner, fact: Fact) -> Doc:
    """A fact as archived, under an id that makes a repeat of it the same document."""
    ids = {"uk": owner.key, "tenant_id": owner.tenant_id, "user_id": owner.user_id}
    if isinstance(fact, GridFact):
        return {
            "_id": sub_key(owner.key, "grid", fact.grid_id, str(fact.version)),
            **ids,
            "kind": "grid",
            "event_id": fact.event_id,
            "grid_id": fact.grid_id,
            "version": fact.version,
            "active": fact.active,
            "deleted": fact.deleted,
            "actions": [codecs.action_doc(a) for a in fact.actions],
            "updated_at": fact.updated_at,
            "local_date": fact.local_date.isoformat(),
        }
    day = fact.local_date.isoformat()
    return {
        "_id": sub_key(owner.key, "checkin", fact.action_id, day, str(fact.seq), digest(fact)),
        **ids,
        "kind": "checkin",
        "event_id": fact.event_id,
        "action_id": fact.action_id,
        "local_date": day,
        "seq": fact.seq,
        "done": fact.done,
        "occurred_at": fact.occurred_at,
        "local_time": fact.local_time.isoformat() if fact.local_time else None,
    }


def fact_from(doc: Doc) -> Fact:
    """An archived fact."""
    if doc["kind"] == "grid":
        return GridFact(
            event_id=doc["event_id"],
            grid_id=doc["grid_id"],
            version=int(doc["version"]),
            active=bool(doc["active"]),
            deleted=bool(doc["deleted"]),
            actions=tuple(codecs.action_from(a) for a in doc["actions"]),
            updated_at=codecs.utc(doc["updated_at"]),
            local_date=date.fromisoformat(doc["local_date"]),
        )
    return CheckinChange(
        event_id=doc["event_id"],
        action_id=doc["action_id"],
        local_date=date.fromisoformat(doc["local_date"]),
        seq=int(doc["seq"]),
        done=bool(doc["done"]),
        occurred_at=codecs.utc(doc["occurred_at"]),
        local_time=time.fromisoformat(doc["local_time"]) if doc.get("local_time") else None,
    )


def entry_doc(entry: LedgerEntry) -> Doc:
    """A ledger entry as stored."""
    return {
        "_id": entry.id,
        "uk": entry.owner.key,
        "tenant_id": entry.owner.tenant_id,
        "user_id": entry.owner.user_id,
        "key": entry.key,
        "n": entry.n,
        "ord": entry.ord,
        "amount": entry.amount,
        "reason": entry.reason,
        "action_id": entry.action_id,
        "local_date": codecs.iso_date(entry.local_date),
        "badge": entry.badge,
        "multiplier": entry.multiplier,
        "source_event_id": entry.source_event_id,
        "xp_total": entry.xp_total,
        "created_at": entry.created_at,
    }


def entry_from(doc: Doc) -> LedgerEntry:
    """A stored ledger entry."""
    return LedgerEntry(
        id=doc["_id"],
        owner=Owner(doc["tenant_id"], doc["user_id"]),
        key=doc["key"],
        n=int(doc["n"]),
        ord=int(doc["ord"]),
        amount=int(doc["amount"]),
        reason=cast(LineReason, doc["reason"]),
        action_id=doc.get("action_id"),
        local_date=codecs.date_from(doc.get("local_date")),
        badge=doc.get("badge"),
        multiplier=doc.get("multiplier"),
        source_event_id=doc["source_event_id"],
        xp_total=int(doc["xp_total"]),
        created_at=codecs.utc(doc["created_at"]),
    )


def _sums(docs: Sequence[Doc]) -> dict[tuple[str, str], KeySum]:
    out: dict[tuple[str, str], KeySum] = {}
    for d in docs:
        pair = (d["uk"], d["key"])
        held = out.get(pair)
        total, count = (held.total, held.count) if held else (0, 0)
        day = codecs.date_from(d.get("local_date"))
        by_date = dict(held.by_date) if held else {}
        by_date[day] = by_date.get(day, 0) + int(d["amount"])
        out[pair] = KeySum(
            total + int(d["amount"]),
            count + 1,
            cast(LineReason, d["reason"]),
            d.get("action_id"),
            day,
            d.get("badge"),
            by_date,
        )
    return out


_SUM_FIELDS = {"uk": 1, "key": 1, "amount": 1, "reason": 1, "action_id": 1, "local_date": 1}
_SUM_FIELDS["badge"] = 1


def _board_id(owner: Owner, period: Period, window: str) -> str:
    return compose_key(owner.tenant_id, period, window, owner.user_id)


# --- the store ---------------------------------------------------------------------------------


class MongoGamificationStore(MongoStore):
    """The GamificationStore port on MongoDB (every call goes through the unit's session)."""

    async def progress_of(
        self, owners: Collection[Owner], *, with_fold: bool = True
    ) -> dict[Owner, UserProgress]:
        """The stored progress of these users (absent ones left out)."""
        if not owners:
            return {}
        projection = None if with_fold else {"fold": 0}
        cursor = self._db[USER_STATE].find(
            {"_id": {"$in": [o.key for o in owners]}}, projection, session=self._session
        )
        found = [progress_from(d) async for d in cursor]
        return {p.owner: p for p in found}

    async def save_progress(self, progress: Sequence[UserProgress]) -> None:
        """Replace the users' documents in one bulk write."""
        if progress:
            ops = [ReplaceOne({"_id": p.owner.key}, progress_doc(p), upsert=True) for p in progress]
            await self._db[USER_STATE].bulk_write(ops, ordered=False, session=self._session)

    async def archive(self, facts: Sequence[tuple[Owner, Fact]]) -> None:
        """Insert the facts not archived yet (a repeat matches its own id and changes nothing)."""
        if facts:
            docs = {d["_id"]: d for d in (fact_doc(o, f) for o, f in facts)}
            ops = [UpdateOne({"_id": i}, {"$setOnInsert": d}, upsert=True) for i, d in docs.items()]
            await self._db[FACTS].bulk_write(ops, ordered=False, session=self._session)

    async def archived(self, owner: Owner) -> list[Fact]:
        """Every archived fact of the user."""
        cursor = self._db[FACTS].find({"uk": owner.key}, session=self._session)
        return [fact_from(d) async for d in cursor]

    async def all_key_sums(self, owner: Owner) -> dict[str, KeySum]:
        """What the ledger holds for every key of the user."""
        cursor = self._db[LEDGER].find({"uk": owner.key}, _SUM_FIELDS, session=self._session)
        return {key: s for (_, key), s in _sums(await cursor.to_list()).items()}

    async def insert_ledger(self, entries: Sequence[LedgerEntry]) -> None:
        """Append ledger entries in one bulk write."""
        if entries:
            ops = [InsertOne(entry_doc(e)) for e in entries]
            await self._db[LEDGER].bulk_write(ops, ordered=False, session=self._session)

    async def add_to_boards(self, deltas: Sequence[BoardDelta]) -> None:
        """Add XP to the users' rows of their windows, and keep the windows' bucket counts.

        All time is the users' `xp_total` (saved with their progress after this); its buckets are
        kept here like the others'. Reads the rows' XP before the change, by id, to move each
        user from the bucket they were in to the one they are in now (unless the delta says).
        """
        if not deltas:
            return
        windowed = [d for d in deltas if d.period != "all"]
        before = await self._xp_before(deltas)
        counts: dict[tuple[str, Period, str, int], int] = {}
        for d in deltas:
            old = before.get((d.owner, d.period, d.window), 0)
            for xp, step in ((old, -1), (old + d.xp, 1)):
                if xp > 0:
                    key = (d.owner.tenant_id, d.period, d.window, xp_bucket(xp))
                    counts[key] = counts.get(key, 0) + step
        if windowed:
            ops = [
                UpdateOne(
                    {"_id": _board_id(d.owner, d.period, d.window)},
                    {
                        "$inc": {"xp": d.xp},
                        "$setOnInsert": {
                            "tenant_id": d.owner.tenant_id,
                            "period": d.period,
                            "window": d.window,
                            "user_id": d.owner.user_id,
                        },
                    },
                    upsert=True,
                )
                for d in windowed
            ]
            await self._db[BOARDS].bulk_write(ops, ordered=False, session=self._session)
        bucket_ops = [
            UpdateOne(
                {"_id": compose_key(tenant, period, window, str(bucket))},
                {
                    "$inc": {"count": n},
                    "$setOnInsert": {
                        "tenant_id": tenant,
                        "period": period,
                        "window": window,
                        "bucket": bucket,
                    },
                },
                upsert=True,
            )
            for (tenant, period, window, bucket), n in counts.items()
            if n
        ]
        if bucket_ops:
            await self._db[BUCKETS].bulk_write(bucket_ops, ordered=False, session=self._session)

    async def _xp_before(self, deltas: Sequence[BoardDelta]) -> dict[tuple[Owner, str, str], int]:
        out: dict[tuple[Owner, str, str], int] = {
            (d.owner, d.period, d.window): d.before for d in deltas if d.before is not None
        }
        owners = {d.owner.key: d.owner for d in deltas if d.period == "all" and d.before is None}
        if owners:
            cursor = self._db[USER_STATE].find(
                {"_id": {"$in": list(owners)}}, {"xp_total": 1}, session=self._session
            )
            async for doc in cursor:
                out[(owners[doc["_id"]], "all", "all")] = int(doc.get("xp_total", 0))
        rows = {
            _board_id(d.owner, d.period, d.window): d
            for d in deltas
            if d.period != "all" and d.before is None
        }
        if rows:
            cursor = self._db[BOARDS].find(
                {"_id": {"$in": list(rows)}}, {"xp": 1}, session=self._session
            )
            async for doc in cursor:
                d = rows[doc["_id"]]
                out[(d.owner, d.period, d.window)] = int(doc["xp"])
        return out

    async def ledger_page(self, owner: Owner, limit: int, before: int | None) -> list[LedgerEntry]:
        """A user's ledger entries, newest first."""
        query: dict[str, Any] = {"uk": owner.key}
        if before is not None:
            query["ord"] = {"$lt": before}
        cursor = self._db[LEDGER].find(query, session=self._session).sort("ord", DESCENDING)
        return [entry_from(d) for d in await cursor.limit(limit).to_list()]

    def _rows(self, period: Period) -> tuple[str, str]:
        """The collection and XP field a period's board reads (all time: the users' totals)."""
        return (USER_STATE, "xp_total") if period == "all" else (BOARDS, "xp")

    def _scope(self, tenant_id: str, period: Period, window: str) -> Doc:
        if period == "all":
            return {"tenant_id": tenant_id}
        return {"tenant_id": tenant_id, "period": period, "window": window}

    async def _buckets(self, tenant_id: str, period: Period, window: str) -> list[tuple[int, int]]:
        """The window's (bucket, users) with users in them, highest bucket first."""
        # Empty buckets are left out here, not in the query: a predicate outside the index
        # makes the server used here scan every bucket of every tenant.
        cursor = self._db[BUCKETS].find(
            {"tenant_id": tenant_id, "period": period, "window": window},
            {"bucket": 1, "count": 1},
            session=self._session,
        )
        found = [(int(d["bucket"]), int(d["count"])) async for d in cursor]
        return sorted(((b, n) for b, n in found if n > 0), reverse=True)

    async def board_top(
        self, tenant_id: str, period: Period, window: str, limit: int
    ) -> list[BoardRow]:
        """The window's users with XP, most first, ties by user id.

        The bucket counts say above which XP the top `limit` users lie; only the rows from there
        up are read (a narrow index range), then put in order.
        """
        floor, seen = 1, 0
        for bucket, users in await self._buckets(tenant_id, period, window):
            floor, seen = bucket_floor(bucket), seen + users
            if seen >= limit:
                break
        collection, field = self._rows(period)
        # XP is whole: `$gt: floor - 1` is `$gte: floor`, which the server used here gets wrong
        # on a descending index field (it leaves the bound out).
        cursor = self._db[collection].find(
            {**self._scope(tenant_id, period, window), field: {"$gt": max(floor, 1) - 1}},
            {"user_id": 1, field: 1},
            session=self._session,
        )
        rows = [BoardRow(d["user_id"], int(d[field])) async for d in cursor]
        return sorted(rows, key=lambda r: (-r.xp, r.user_id))[:limit]

    async def board_row(self, owner: Owner, period: Period, window: str) -> BoardRow | None:
        """The user's row of the window."""
        if period == "all":
            mine = await self._db[USER_STATE].find_one(
                {"_id": owner.key}, {"user_id": 1, "xp_total": 1}, session=self._session
            )
            return BoardRow(mine["user_id"], int(mine["xp_total"])) if mine else None
        doc = await self._db[BOARDS].find_one(
            {"_id": _board_id(owner, period, window)}, session=self._session
        )
        return BoardRow(doc["user_id"], int(doc["xp"])) if doc else None

    async def board_ahead(self, tenant_id: str, period: Period, window: str, row: BoardRow) -> int:
        """How many users of the window rank before `row`: the buckets above its own, then two
        counts inside its bucket (more XP; as much and a lower user id)."""
        mine = xp_bucket(row.xp)
        above = sum(n for b, n in await self._buckets(tenant_id, period, window) if b > mine)
        collection, field = self._rows(period)
        scope = self._scope(tenant_id, period, window)
        more = await self._db[collection].count_documents(
            {**scope, field: {"$gt": row.xp, "$lt": bucket_floor(mine + 1)}},
            session=self._session,
        )
        tied = await self._db[collection].count_documents(
            {**scope, field: row.xp, "user_id": {"$lt": row.user_id}}, session=self._session
        )
        return above + more + tied
