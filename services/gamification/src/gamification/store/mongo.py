"""Gamification's MongoDB adapter: user progress, the archive of facts, ledger, leaderboards.

- `user_state`: one document per user, bounded: the projection the API reads, the latest week
  and month it has XP in, and the kept fold (compressed JSON in two blobs, the cold check-ins
  apart; its size depends on the kept window, not on the history).
- `facts`: every check-in change and grid version received, a user's facts of one batch in one
  document (a compressed blob), read back only to rebuild a user's fold.
- `ledger`: append-only entries, unique per (user, line key, n).
- `leaderboards`: one row per (tenant, week or month, user), indexed on XP, so a board reads
  its rows and a rank from bucket counts. The all-time board is `user_state` itself, indexed on
  `xp_total` (a user's all-time XP is their total): no row of its own to write.
- `streak_repairs`: a tenant's streak repairs (the tenant's, no user's: `targeted` says whether
  it lists users, `applied_after` is the walk's cursor while it is applied, then null).
- `streak_repair_users`: one per (user, repair) a repair lists, under the user's key: the
  list of a targeted repair lives here, not in the tenant's document, so a user's erasure
  deletes their rows and leaves the repair to the others.
- `leaderboard_buckets`: per (tenant, period, window) the number of users in each XP bucket, on
  three levels (`BUCKET_BITS`: 4 buckets per doubling of XP, each split in 16, and again in 16),
  kept in the same transaction as the rows. A board walks down the levels to the one small
  bucket where its top `limit` end and reads only the rows from there up; a rank is the buckets
  above the caller's on each level plus the rows of the caller's smallest bucket. Each read asks
  for at most ~100 bucket counts and the rows of one smallest bucket, whatever the tenant's
  size. (On MongoDB an index-ordered `sort().limit()` and a count would do alone; the server
  used here sorts and counts every matching row, so the buckets keep the work flat on both.)
"""

from __future__ import annotations

import uuid
import zlib
from collections import OrderedDict
from collections.abc import Collection, Sequence
from datetime import date, datetime, time
from typing import Any, cast

import orjson
from bson import Binary
from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, InsertOne, ReplaceOne, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from gamification.domain.model import CheckinChange, LineReason
from gamification.domain.progress import (
    BUCKET_BITS,
    BoardDelta,
    KeySum,
    LedgerEntry,
    Period,
    StreakTold,
    UserProgress,
    bucket_at,
    bucket_end,
)
from gamification.domain.streaks import StreakState, TenantRepair
from gamification.domain.user_fold import Fact, GridFact, UserFold
from gamification.store.ports import BoardRow, Standings
from mandaact_common import codecs
from mandaact_common.domain.calendar import DEFAULT_DAY_START
from mandaact_common.domain.owner import Owner
from mandaact_common.domain.pauses import Pause
from mandaact_common.keys import compose_key, owner_key, sub_key
from mandaact_common.lifecycle import Lifecycle, Subject, by_fields, by_owner_key
from mandaact_common.mongo import Doc, find_in
from mandaact_common.outbox import Transaction, transact
from mandaact_common.unit_of_work import MongoStore

USER_STATE = "user_state"
FACTS = "facts"
LEDGER = "ledger"
FACTS_PER_DOC = 200
"""Facts per archive document: a few tens of KiB, whatever a batch brings."""
BOARDS = "leaderboards"
BUCKETS = "leaderboard_buckets"
REPAIRS = "streak_repairs"
REPAIR_USERS = "streak_repair_users"


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
    await db[USER_STATE].create_index([("streak_fire_at", ASCENDING)], name="streak_sweep")
    await db[USER_STATE].create_index(
        [("tenant_id", ASCENDING), ("user_id", ASCENDING)], name="tenant_users"
    )
    await db[REPAIRS].create_index([("tenant_id", ASCENDING), ("from", ASCENDING)])
    await db[REPAIRS].create_index([("pending", ASCENDING), ("created_at", ASCENDING)])
    await db[REPAIR_USERS].create_index([("repair_id", ASCENDING)])
    await db[BOARDS].create_index(
        [("tenant_id", ASCENDING), ("user_id", ASCENDING)], name="board_rows_of_user"
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
        [
            ("tenant_id", ASCENDING),
            ("period", ASCENDING),
            ("window", ASCENDING),
            ("node", ASCENDING),
        ],
        name="buckets_by_parent",
    )


# --- documents <-> values ----------------------------------------------------------------------


def _blob(value: Any) -> Binary:
    return Binary(zlib.compress(orjson.dumps(value), 6))


def _unblob(blob: bytes) -> Any:
    return orjson.loads(zlib.decompress(blob))


def fold_blob(fold: UserFold) -> Binary:
    """The whole kept fold as one blob: compact JSON, compressed."""
    return _blob(fold.to_state())


def fold_from_blob(blob: bytes, cold: bytes | None = None) -> UserFold:
    """A kept fold from its stored form (the blob, and the cold check-ins kept apart)."""
    return UserFold.from_state(_unblob(blob), _unblob(cold) if cold is not None else None)


def fold_fields(fold: UserFold, cold: tuple[str, Binary] | None = None) -> Doc:
    """The kept fold as stored: the check-ins on cold dates in a blob of their own (`cold`, when
    given for the same split, is that blob as already stored), the rest in another."""
    split = fold.cold_split()
    if split is None:
        return {"fold": fold_blob(fold)}
    key = split.isoformat()
    cold_blob = cold[1] if cold is not None and cold[0] == key else _blob(fold.cold_state(split))
    return {"fold": _blob(fold.to_state(split)), "fold_cold": cold_blob, "fold_split": key}


class FoldCache:
    """The folds this process stored last, decoded, by user and the revision stored with them.

    A worker sees the same users again and again (their events are keyed to its partitions),
    and decoding a kept fold costs more than everything else a check-in does to it. A batch
    takes a user's fold from here instead of decoding the stored one when the stored document
    still carries the revision this process wrote; the entry is removed as it is taken, so no
    two units share a fold, and a unit that aborts leaves a revision that is never stored (it
    is random), so the next read decodes the stored fold. Bounded by the folds' weights (the
    detail each keeps), least recently stored first out.
    """

    def __init__(self, capacity: int = 500_000) -> None:
        self._capacity = capacity
        self._weight = 0
        self._folds: OrderedDict[str, tuple[str, UserFold, int]] = OrderedDict()

    def take(self, key: str, revision: object) -> UserFold | None:
        """The user's fold if it is the one stored with `revision` (and forget it)."""
        held = self._folds.pop(key, None)
        if held is None:
            return None
        self._weight -= held[2]
        return held[1] if held[0] == revision else None

    def put(self, key: str, fold: UserFold) -> str:
        """Keep the fold about to be stored; the revision to store with it."""
        revision = uuid.uuid4().hex
        self.take(key, None)
        weight = fold.weight()
        self._folds[key] = (revision, fold, weight)
        self._weight += weight
        while self._weight > self._capacity and self._folds:
            _, (_, _, w) = self._folds.popitem(last=False)
            self._weight -= w
        return revision


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
        "day_starts_at": progress.day_starts_at,
        "pauses": [[p.start.isoformat(), p.end.isoformat()] for p in progress.pauses],
        "streak": progress.streak.to_state(),
        "streak_told": _told_doc(progress.streak_told),
        "streak_fire_at": progress.streak_fire_at,
    }
    if progress.windows is not None:
        doc["windows"] = [[p, w, xp] for p, (w, xp) in sorted(progress.windows.items())]
    return doc


def progress_from(doc: Doc, fold: UserFold | None = None) -> UserProgress:
    """A user's progress from its stored form (its fold decoded, unless given)."""
    blob, cold = doc.get("fold"), doc.get("fold_cold")
    if fold is None and blob is not None:
        fold = fold_from_blob(bytes(blob), bytes(cold) if cold is not None else None)
    return UserProgress(
        owner=Owner(doc["tenant_id"], doc["user_id"]),
        fold=fold,
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
        windows=({p: (w, int(xp)) for p, w, xp in doc["windows"]} if "windows" in doc else None),
        day_starts_at=doc.get("day_starts_at", DEFAULT_DAY_START),
        pauses=tuple(
            Pause(date.fromisoformat(a), date.fromisoformat(b)) for a, b in doc.get("pauses", [])
        ),
        streak=StreakState.from_state(doc.get("streak")),
        streak_told=_told_from(doc.get("streak_told")),
        streak_fire_at=codecs.utc(doc["streak_fire_at"]) if doc.get("streak_fire_at") else None,
    )


def _told_doc(told: StreakTold | None) -> Doc | None:
    if told is None:
        return None
    return {
        "current": told.current,
        "longest": told.longest,
        "freezes": told.freezes,
        "frozen_dates": [d.isoformat() for d in told.frozen_dates],
    }


def _told_from(doc: Doc | None) -> StreakTold | None:
    if doc is None:
        return None
    return StreakTold(
        int(doc["current"]),
        int(doc["longest"]),
        int(doc["freezes"]),
        tuple(date.fromisoformat(d) for d in doc["frozen_dates"]),
    )


def repair_doc(repair: TenantRepair) -> Doc:
    """A tenant's streak repair as stored (the users it lists are `repair_user_docs`)."""
    return {
        "_id": repair.id,
        "tenant_id": repair.tenant_id,
        "from": repair.start.isoformat(),
        "to": repair.end.isoformat(),
        "reason": repair.reason,
        "targeted": repair.user_ids is not None,
        "created_at": repair.created_at,
    }


def repair_user_docs(repair: TenantRepair) -> list[Doc]:
    """The rows of the users a targeted repair lists, each under its user's key."""
    return [
        {
            "_id": sub_key(owner_key(repair.tenant_id, user), repair.id),
            "tenant_id": repair.tenant_id,
            "user_id": user,
            "repair_id": repair.id,
        }
        for user in sorted(repair.user_ids or ())
    ]


def repair_from(doc: Doc, listed: Collection[str] = ()) -> TenantRepair:
    """A repair from its stored form and the users it lists (of those looked up)."""
    return TenantRepair(
        id=doc["_id"],
        tenant_id=doc["tenant_id"],
        start=date.fromisoformat(doc["from"]),
        end=date.fromisoformat(doc["to"]),
        reason=doc["reason"],
        user_ids=frozenset(listed) if doc.get("targeted") else None,
        created_at=codecs.utc(doc["created_at"]) if doc.get("created_at") else None,
    )


def fact_state(fact: Fact) -> list[Any]:
    """A fact as plain data (a short array: facts are kept by the thousand)."""
    if isinstance(fact, GridFact):
        return [
            "grid",
            fact.event_id,
            fact.grid_id,
            fact.version,
            fact.active,
            fact.deleted,
            [codecs.action_doc(a) for a in fact.actions],
            codecs.utc(fact.updated_at).isoformat(),
            fact.local_date.isoformat(),
        ]
    return [
        "checkin",
        fact.event_id,
        fact.action_id,
        fact.local_date.isoformat(),
        fact.seq,
        fact.done,
        codecs.utc(fact.occurred_at).isoformat(),
        fact.local_time.isoformat() if fact.local_time else None,
    ]


def fact_from(state: Sequence[Any]) -> Fact:
    """A fact from `fact_state`."""
    if state[0] == "grid":
        _, event_id, grid_id, version, active, deleted, actions, updated_at, day = state
        return GridFact(
            event_id=event_id,
            grid_id=grid_id,
            version=int(version),
            active=bool(active),
            deleted=bool(deleted),
            actions=tuple(codecs.action_from(a) for a in actions),
            updated_at=datetime.fromisoformat(updated_at),
            local_date=date.fromisoformat(day),
        )
    _, event_id, action_id, day, seq, done, occurred_at, local_time = state
    return CheckinChange(
        event_id=event_id,
        action_id=action_id,
        local_date=date.fromisoformat(day),
        seq=int(seq),
        done=bool(done),
        occurred_at=datetime.fromisoformat(occurred_at),
        local_time=time.fromisoformat(local_time) if local_time else None,
    )


def facts_blob(facts: Sequence[Fact]) -> Binary:
    """Facts as stored: compact JSON, compressed (opaque to the server, which never queries it)."""
    return Binary(zlib.compress(orjson.dumps([fact_state(f) for f in facts]), 6))


def facts_from_blob(blob: bytes) -> list[Fact]:
    """Facts from `facts_blob`."""
    return [fact_from(s) for s in orjson.loads(zlib.decompress(blob))]


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


LEVELS = range(len(BUCKET_BITS))


def _node(level: int, parent: int) -> str:
    """The name the buckets of a level inside one bucket of the level above share (level 0:
    one node, the whole window)."""
    return f"{level}:{parent}"


def bucket_path(xp: int) -> list[tuple[str, int]]:
    """The (node, bucket) of a positive XP on every level, top level first."""
    path: list[tuple[str, int]] = []
    parent = 0
    for level in LEVELS:
        bucket = bucket_at(xp, level)
        path.append((_node(level, parent), bucket))
        parent = bucket
    return path


# --- the store ---------------------------------------------------------------------------------


class MongoGamificationStore(MongoStore):
    """The GamificationStore port on MongoDB (every call goes through the unit's session)."""

    def __init__(
        self, db: AsyncDatabase[Doc], tx: Transaction | None, folds: FoldCache | None = None
    ) -> None:
        super().__init__(db, tx)
        self._folds = folds
        self._cold: dict[str, tuple[UserFold, tuple[str, Binary]]] = {}
        """The cold blob each user's fold was read with, to store again unencoded."""

    async def progress_of(
        self, owners: Collection[Owner], *, with_fold: bool = True
    ) -> dict[Owner, UserProgress]:
        """The stored progress of these users (absent ones left out)."""
        if not owners:
            return {}
        projection = None if with_fold else {"fold": 0, "fold_cold": 0}
        found = await find_in(
            self._db[USER_STATE], "_id", [o.key for o in owners], projection, session=self._session
        )
        out: dict[Owner, UserProgress] = {}
        for doc in found:
            held = None
            if with_fold and self._folds is not None:
                held = self._folds.take(doc["_id"], doc.get("revision"))
            progress = progress_from(doc, held)
            if progress.fold is not None and "fold_cold" in doc:
                self._cold[doc["_id"]] = (progress.fold, (doc["fold_split"], doc["fold_cold"]))
            out[progress.owner] = progress
        return out

    async def save_progress(self, progress: Sequence[UserProgress]) -> None:
        """Replace the users' documents in one bulk write (their folds kept in the cache)."""
        if not progress:
            return
        ops = []
        for p in progress:
            doc = progress_doc(p)
            if p.fold is not None:
                # The cold blob read is stored again as it is while the fold is the one read
                # (a rebuilt fold is encoded anew) and its split has not moved.
                read = self._cold.get(p.owner.key)
                doc |= fold_fields(p.fold, read[1] if read and read[0] is p.fold else None)
                if self._folds is not None:
                    doc["revision"] = self._folds.put(p.owner.key, p.fold)
            ops.append(ReplaceOne({"_id": p.owner.key}, doc, upsert=True))
        await self._db[USER_STATE].bulk_write(ops, ordered=False, session=self._session)

    async def streaks_due(self, now: datetime, limit: int) -> list[UserProgress]:
        """Users whose streak decision time has come, soonest first (by the sweep index)."""
        cursor = (
            self._db[USER_STATE]
            .find(
                {"streak_fire_at": {"$lte": now}},
                {"fold": 0, "fold_cold": 0},
                session=self._session,
            )
            .sort("streak_fire_at", ASCENDING)
            .limit(limit)
        )
        return [progress_from(doc) async for doc in cursor]

    async def mark_streaks(self, progress: Sequence[UserProgress]) -> None:
        """Set the told streak and the next decision time of these users."""
        ops = [
            UpdateOne(
                {"_id": p.owner.key},
                {
                    "$set": {
                        "streak_told": _told_doc(p.streak_told),
                        "streak_fire_at": p.streak_fire_at,
                    }
                },
            )
            for p in progress
        ]
        if ops:
            await self._db[USER_STATE].bulk_write(ops, ordered=False, session=self._session)

    async def repairs_of(
        self, tenant_ids: Collection[str], users: Collection[Owner] | None = None
    ) -> dict[str, list[TenantRepair]]:
        """Every repair of these tenants (a few a year: outages), with the users they list:
        with `users`, only whether those are listed (their rows, by id), else all of them."""
        out: dict[str, list[TenantRepair]] = {}
        if not tenant_ids:
            return out
        cursor = self._db[REPAIRS].find(
            {"tenant_id": {"$in": sorted(tenant_ids)}}, session=self._session
        )
        docs = await cursor.to_list()
        listed = await self._listed([d for d in docs if d.get("targeted")], users)
        for doc in docs:
            repair = repair_from(doc, listed.get(doc["_id"], ()))
            out.setdefault(repair.tenant_id, []).append(repair)
        return out

    async def _listed(
        self, targeted: Sequence[Doc], users: Collection[Owner] | None
    ) -> dict[str, set[str]]:
        """The users each of these targeted repairs lists (of `users`, when given)."""
        out: dict[str, set[str]] = {}
        if not targeted:
            return out
        ids = [d["_id"] for d in targeted]
        if users is None:
            rows = (
                await self._db[REPAIR_USERS]
                .find(
                    {"repair_id": {"$in": ids}},
                    {"user_id": 1, "repair_id": 1},
                    session=self._session,
                )
                .to_list()
            )
        else:
            keys = [
                sub_key(o.key, d["_id"])
                for d in targeted
                for o in users
                if o.tenant_id == d["tenant_id"]
            ]
            rows = await find_in(
                self._db[REPAIR_USERS],
                "_id",
                keys,
                {"user_id": 1, "repair_id": 1},
                session=self._session,
            )
        for row in rows:
            out.setdefault(row["repair_id"], set()).add(row["user_id"])
        return out

    async def add_repair(self, repair: TenantRepair, now: datetime) -> TenantRepair:
        """Insert the repair, pending; the stored one when its id is taken (the same repair)."""
        held = await self._db[REPAIRS].find_one({"_id": repair.id}, session=self._session)
        if held is not None:
            listed = await self._listed([held] if held.get("targeted") else [], None)
            return repair_from(held, listed.get(repair.id, ()))
        doc = repair_doc(repair) | {"pending": True, "applied_after": None}
        await self._db[REPAIRS].insert_one(doc, session=self._session)
        if rows := repair_user_docs(repair):
            await self._db[REPAIR_USERS].insert_many(rows, session=self._session)
        return repair

    async def pending_repair(self) -> tuple[TenantRepair, str | None] | None:
        """The oldest repair not applied to all its users yet."""
        doc = await self._db[REPAIRS].find_one(
            {"pending": True}, sort=[("created_at", ASCENDING)], session=self._session
        )
        return None if doc is None else (repair_from(doc), doc.get("applied_after"))

    async def tenant_users(
        self, tenant_id: str, after: str | None, limit: int
    ) -> list[UserProgress]:
        """The tenant's users by user id after `after`, with their folds."""
        query: Doc = {"tenant_id": tenant_id}
        if after is not None:
            query["user_id"] = {"$gt": after}
        cursor = (
            self._db[USER_STATE]
            .find(query, session=self._session)
            .sort("user_id", ASCENDING)
            .limit(limit)
        )
        return [progress_from(doc) async for doc in cursor]

    async def repair_applied(self, repair: TenantRepair, last: str | None) -> None:
        """Note how far the repair got, or that every user has it."""
        # Done: the cursor (a user id) goes too, so the tenant's document names nobody.
        change = (
            {"applied_after": last}
            if last is not None
            else {"pending": False, "applied_after": None}
        )
        await self._db[REPAIRS].update_one(
            {"_id": repair.id}, {"$set": change}, session=self._session
        )

    async def archive(self, facts: Sequence[tuple[Owner, Fact]]) -> None:
        """Insert the facts, a user's together, `FACTS_PER_DOC` to a document.

        A fact kept twice (the same change delivered under another event id) is harmless: a
        rebuild keeps one copy of each change (`canonical_order`) and of each grid version.
        """
        by_owner: dict[Owner, list[Fact]] = {}
        for owner, fact in facts:
            by_owner.setdefault(owner, []).append(fact)
        docs = [
            {
                "_id": str(uuid.uuid4()),
                "uk": owner.key,
                "tenant_id": owner.tenant_id,
                "user_id": owner.user_id,
                "n": len(chunk),
                "facts": facts_blob(chunk),
            }
            for owner, kept in by_owner.items()
            for chunk in (kept[i : i + FACTS_PER_DOC] for i in range(0, len(kept), FACTS_PER_DOC))
        ]
        if docs:
            await self._db[FACTS].insert_many(docs, session=self._session)

    async def archived(self, owner: Owner) -> list[Fact]:
        """Every archived fact of the user."""
        cursor = self._db[FACTS].find({"uk": owner.key}, {"facts": 1}, session=self._session)
        return [f async for d in cursor for f in facts_from_blob(bytes(d["facts"]))]

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
        counts: dict[tuple[str, Period, str, str, int], int] = {}
        for d in deltas:
            old = before.get((d.owner, d.period, d.window), 0)
            for xp, step in ((old, -1), (old + d.xp, 1)):
                if xp > 0:
                    for node, bucket in bucket_path(xp):
                        key = (d.owner.tenant_id, d.period, d.window, node, bucket)
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
                {"_id": compose_key(tenant, period, window, node, str(bucket))},
                {
                    "$inc": {"count": n},
                    "$setOnInsert": {
                        "tenant_id": tenant,
                        "period": period,
                        "window": window,
                        "node": node,
                        "bucket": bucket,
                    },
                },
                upsert=True,
            )
            for (tenant, period, window, node, bucket), n in counts.items()
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
            totals = await find_in(
                self._db[USER_STATE], "_id", owners, {"xp_total": 1}, session=self._session
            )
            for doc in totals:
                out[(owners[doc["_id"]], "all", "all")] = int(doc.get("xp_total", 0))
        rows = {
            _board_id(d.owner, d.period, d.window): d
            for d in deltas
            if d.period != "all" and d.before is None
        }
        if rows:
            held = await find_in(self._db[BOARDS], "_id", rows, {"xp": 1}, session=self._session)
            for doc in held:
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

    async def _buckets(
        self, tenant_id: str, period: Period, window: str, nodes: Sequence[str]
    ) -> dict[str, list[tuple[int, int]]]:
        """The (bucket, users) of these nodes that have users in them, highest bucket first."""
        # Empty buckets are left out here, not in the query: a predicate outside the index
        # makes the server used here scan every bucket of every tenant.
        cursor = self._db[BUCKETS].find(
            {
                "tenant_id": tenant_id,
                "period": period,
                "window": window,
                "node": nodes[0] if len(nodes) == 1 else {"$in": list(nodes)},
            },
            {"node": 1, "bucket": 1, "count": 1},
            session=self._session,
        )
        out: dict[str, list[tuple[int, int]]] = {n: [] for n in nodes}
        async for d in cursor:
            if int(d["count"]) > 0:
                out[d["node"]].append((int(d["bucket"]), int(d["count"])))
        for found in out.values():
            found.sort(reverse=True)
        return out

    async def standings(self, owner: Owner, period: Period, window: str, limit: int) -> Standings:
        """The window's top `limit` rows and the caller's rank, from bucket counts.

        One read takes the top level's buckets with the buckets on the caller's path down; the
        top rows' walk down reads at most two more nodes; then the rows from the smallest bucket
        the top `limit` reach up, and the rows of the caller's smallest bucket.
        """
        tenant_id = owner.tenant_id
        mine = await self._board_row(owner, period, window)
        path = bucket_path(mine.xp) if mine is not None and mine.xp > 0 else []
        nodes = await self._buckets(
            tenant_id, period, window, [_node(0, 0), *(n for n, _ in path[1:])]
        )
        # The top: down the levels to the bucket where the `limit`th row lies.
        floor, seen, node = 1, 0, _node(0, 0)
        for level in LEVELS:
            if node not in nodes:
                nodes |= await self._buckets(tenant_id, period, window, [node])
            crossing = None
            for bucket, users in nodes[node]:
                if seen + users >= limit:
                    crossing = bucket
                    break
                seen += users
            if crossing is None:
                break
            floor = crossing
            if level + 1 < len(BUCKET_BITS):
                node = _node(level + 1, crossing)
        top = await self._rows_from(tenant_id, period, window, floor, None)
        ahead = None
        if mine is not None and path:
            ahead = sum(
                users for node, own in path for bucket, users in nodes[node] if bucket > own
            )
            leaf = path[-1][1]
            ahead += sum(
                1
                for r in await self._rows_from(
                    tenant_id, period, window, mine.xp, bucket_end(leaf, len(BUCKET_BITS) - 1)
                )
                if (r.xp, mine.user_id) > (mine.xp, r.user_id)
            )
        return Standings(sorted(top, key=_rank_order)[:limit], mine, ahead)

    async def _rows_from(
        self, tenant_id: str, period: Period, window: str, low: int, high: int | None
    ) -> list[BoardRow]:
        """The window's rows with `low` ≤ XP (< `high`), unordered: one narrow index range."""
        collection, field = self._rows(period)
        # XP is whole: `$gt: low - 1` is `$gte: low`, which the server used here gets wrong
        # on a descending index field (it leaves the bound out).
        span: Doc = {"$gt": max(low, 1) - 1}
        if high is not None:
            span["$lt"] = high
        cursor = self._db[collection].find(
            {**self._scope(tenant_id, period, window), field: span},
            {"user_id": 1, field: 1},
            session=self._session,
        )
        return [BoardRow(d["user_id"], int(d[field])) async for d in cursor]

    async def _board_row(self, owner: Owner, period: Period, window: str) -> BoardRow | None:
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


def _rank_order(row: BoardRow) -> tuple[int, str]:
    return -row.xp, row.user_id


# --- ahead of an erasure -----------------------------------------------------------------------


async def detach_from_boards(tx: Transaction, owner: Owner) -> bool:
    """Take an erased user off every board, in `tx`: their rows leave the bucket counts
    (which name nobody and stay, for the others' ranks) and are deleted, their all-time XP is
    zeroed (the all-time board reads it), their streak leaves the sweep, and a repair walk
    paused at their id starts over (walking a user again changes nothing). Whether there was
    anything to take off.

    The erasure job deletes documents only: without this first the counts would keep a user
    whose row is gone, and every rank below them would be one too low.
    """
    db, session = tx.db, tx.session
    rows = (
        await db[BOARDS]
        .find(
            {"tenant_id": owner.tenant_id, "user_id": owner.user_id},
            {"period": 1, "window": 1, "xp": 1},
            session=session,
        )
        .to_list()
    )
    state = await db[USER_STATE].find_one(
        {"_id": owner.key}, {"xp_total": 1, "streak_fire_at": 1}, session=session
    )
    held = [(str(r["period"]), str(r["window"]), int(r["xp"])) for r in rows]
    if state is not None and int(state.get("xp_total", 0)):
        held.append(("all", "all", int(state["xp_total"])))
    counts: dict[str, int] = {}
    for period, window, xp in held:
        if xp > 0:
            for node, bucket in bucket_path(xp):
                key = compose_key(owner.tenant_id, period, window, node, str(bucket))
                counts[key] = counts.get(key, 0) - 1
    if counts:
        await db[BUCKETS].bulk_write(
            [UpdateOne({"_id": k}, {"$inc": {"count": n}}) for k, n in counts.items()],
            ordered=False,
            session=session,
        )
    if rows:
        await db[BOARDS].delete_many({"_id": {"$in": [r["_id"] for r in rows]}}, session=session)
    if state is not None and (held or state.get("streak_fire_at") is not None):
        await db[USER_STATE].update_one(
            {"_id": owner.key},
            {"$set": {"xp_total": 0, "streak_fire_at": None}},
            session=session,
        )
    await db[REPAIRS].update_many(
        {"tenant_id": owner.tenant_id, "applied_after": owner.user_id},
        {"$set": {"applied_after": None}},
        session=session,
    )
    return bool(rows or held)


async def detach_erased(
    client: AsyncMongoClient[Doc], db: AsyncDatabase[Doc], subject: Subject
) -> None:
    """An erasure's first step (`Lifecycle.prepare`): take the user off the boards in one
    transaction (`detach_from_boards`, idempotent), before their rows are deleted. A tenant's
    erasure needs none: its rows and counts all go."""
    if subject.user_id is None:
        return
    owner = Owner(subject.tenant_id, subject.user_id)

    async def work(tx: Transaction) -> bool:
        return await detach_from_boards(tx, owner)

    await transact(client, db, "gamification", work)


LIFECYCLE = Lifecycle(
    "gamification",
    holdings=(
        by_owner_key(FACTS, key="uk"),
        by_owner_key(LEDGER, key="uk"),
        by_owner_key(REPAIR_USERS),
        # The user's rows of the boards go last: `detach_from_boards` (run ahead of the
        # erasure, `prepare`) takes them out of the bucket counts first, reading them for it.
        by_fields(USER_STATE),
        by_fields(BOARDS),
        # The tenant's alone: repairs name no user (their lists are `REPAIR_USERS` rows),
        # bucket counts are numbers of users per XP range.
        by_fields(REPAIRS, user=None, export=False),
        by_fields(BUCKETS, user=None, export=False),
    ),
    prepare=detach_erased,
)
"""Every collection of the service that holds a user's or a tenant's documents (SPEC §9)."""
