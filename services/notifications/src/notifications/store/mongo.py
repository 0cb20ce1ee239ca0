"""The notifications service's MongoDB adapter (PyMongo async).

Every document carries `tenant_id` (and `user_id`); every query filters by them, except the
workers' claim of due timers, which reads the `fire_at` index across users (that is its job).
Collections:

- `users`: one bounded document per user (settings, the timezone seen, the streak);
- `grids`: the read model's grids (one per grid, newest version);
- `checkins`: one slot per (user, action, local date), newest `seq`; a routine's slot expires
  40 days after its date (TTL on `expire_at`), a mission's is kept (it says the mission is done);
- `timers`: one schedule row per (user, timed kind) and one pending row per event waiting for
  the end of quiet hours, indexed on `fire_at`;
- `notifications`: what was sent, `_id` = the (user, kind, local date[, badge]) dedupe key,
  expiring after 90 days; `daily_counts`: notifications per user and local date (the cap),
  expiring after 3 days.

Every collection belongs to one user (none is the tenant's alone): `LIFECYCLE` lists them all
for the export and the erasure of a user or a tenant (SPEC §9).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, ReplaceOne, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from mandaact_common import codecs
from mandaact_common.domain.pauses import Pause
from mandaact_common.keys import compose_key, sub_key, subject_hashes
from mandaact_common.lifecycle import Lifecycle, MongoTombstones, by_fields, by_owner_key
from mandaact_common.mongo import Doc, find_in, keyset_page
from mandaact_common.outbox import Transaction
from mandaact_common.unit_of_work import MongoStore, MongoUnitOfWork
from notifications.domain.model import (
    CheckinChange,
    EventNotice,
    Owner,
    Preferences,
    QuietHours,
    Streak,
    UserState,
    hhmm,
    hhmm_text,
)
from notifications.domain.records import Grid, Sent, SentCursor, Timer
from notifications.store.ports import GridKey, SlotKey, UnitOfWork

USERS: Final = "users"
GRIDS: Final = "grids"
CHECKINS: Final = "checkins"
TIMERS: Final = "timers"
SENT: Final = "notifications"
DAILY_COUNTS: Final = "daily_counts"
SOURCE: Final = "notifications"
SLOT_DAYS: Final = 40
"""A routine's check-in slot is kept this long after its date (a month's targets need it)."""
SENT_TTL_S: Final = 90 * 24 * 3600
COUNT_DAYS: Final = 3
ATTEMPTS: Final = 3

LIFECYCLE: Final = Lifecycle(
    SOURCE,
    holdings=(
        # `_id` is the owner key, or a sub-key of it (`keys.sub_key`): the `_id` index finds a
        # user's (and, by its prefix, a tenant's) documents.
        by_owner_key(USERS),
        by_owner_key(TIMERS),
        by_owner_key(DAILY_COUNTS),
        # Found through the owner indexes (tenant first).
        by_fields(GRIDS),
        by_fields(CHECKINS),
        by_fields(SENT),
    ),
)
"""Where notifications keeps users' documents (SPEC §9): what `GET /v1/me/export` returns and
what the erasure of a user or a tenant deletes."""


async def ensure_indexes(db: AsyncDatabase[Doc]) -> None:
    """Create the indexes the queries rely on."""
    await db[TIMERS].create_index([("fire_at", ASCENDING)], name="fire_at")
    await db[GRIDS].create_index(
        [("tenant_id", ASCENDING), ("user_id", ASCENDING), ("on_checklist", ASCENDING)],
        name="owner_live",
    )
    await db[CHECKINS].create_index(
        [
            ("tenant_id", ASCENDING),
            ("user_id", ASCENDING),
            ("done", ASCENDING),
            ("local_date", ASCENDING),
        ],
        name="owner_done_by_date",
    )
    await db[CHECKINS].create_index(
        [("tenant_id", ASCENDING), ("user_id", ASCENDING), ("action_id", ASCENDING)],
        name="owner_action",
    )
    await db[CHECKINS].create_index([("expire_at", ASCENDING)], name="expire", expireAfterSeconds=0)
    await db[SENT].create_index(
        [
            ("tenant_id", ASCENDING),
            ("user_id", ASCENDING),
            ("created_at", DESCENDING),
            ("notification_id", DESCENDING),
        ],
        name="owner_newest",
    )
    await db[SENT].create_index(
        [("created_at", ASCENDING)], name="expire", expireAfterSeconds=SENT_TTL_S
    )
    await db[DAILY_COUNTS].create_index(
        [("expire_at", ASCENDING)], name="expire", expireAfterSeconds=0
    )


# --- mapping -----------------------------------------------------------------------------------


def _owner_filter(owner: Owner) -> Doc:
    return {"tenant_id": owner.tenant_id, "user_id": owner.user_id}


def _day_end(day: date, days: int) -> datetime:
    return datetime.combine(day + timedelta(days=days), datetime.min.time(), UTC)


def prefs_doc(prefs: Preferences) -> Doc:
    """The stored form of a user's settings."""
    return {
        "timezone": prefs.timezone,
        "locale": prefs.locale,
        "day_starts_at": hhmm_text(prefs.day_starts_at),
        "pauses": [[p.start.isoformat(), p.end.isoformat(), p.reason] for p in prefs.pauses],
        "reminder_time": hhmm_text(prefs.reminder_time),
        "quiet_hours": [hhmm_text(prefs.quiet_hours.start), hhmm_text(prefs.quiet_hours.end)],
        "enabled": sorted(prefs.enabled),
        "version": prefs.version,
    }


def prefs_from(doc: Doc) -> Preferences:
    """A user's settings from their stored form."""
    start, end = doc["quiet_hours"]
    return Preferences(
        timezone=doc["timezone"],
        locale=doc["locale"],
        day_starts_at=hhmm(doc["day_starts_at"]),
        pauses=tuple(
            Pause(date.fromisoformat(first), date.fromisoformat(last), reason)
            for first, last, reason in doc["pauses"]
        ),
        reminder_time=hhmm(doc["reminder_time"]),
        quiet_hours=QuietHours(hhmm(start), hhmm(end)),
        enabled=frozenset(doc["enabled"]),
        version=int(doc["version"]),
    )


def user_doc(state: UserState) -> Doc:
    """The stored form of a user's state (bounded: settings, a timezone, the streak)."""
    streak = state.streak
    return {
        "_id": state.owner.key,
        **_owner_filter(state.owner),
        "prefs": prefs_doc(state.prefs) if state.prefs is not None else None,
        "seen_timezone": state.seen_timezone,
        "streak": None
        if streak is None
        else {
            "current": streak.current,
            "last_active_date": codecs.iso_date(streak.last_active_date),
            "frozen_dates": sorted(d.isoformat() for d in streak.frozen_dates),
            "changed_at": streak.changed_at,
        },
    }


def user_from(doc: Doc) -> UserState:
    """A user's state from its stored form."""
    streak = doc.get("streak")
    return UserState(
        owner=Owner(doc["tenant_id"], doc["user_id"]),
        prefs=prefs_from(doc["prefs"]) if doc.get("prefs") else None,
        seen_timezone=doc.get("seen_timezone"),
        streak=None
        if not streak
        else Streak(
            current=int(streak["current"]),
            last_active_date=codecs.date_from(streak["last_active_date"]),
            frozen_dates=frozenset(date.fromisoformat(d) for d in streak["frozen_dates"]),
            changed_at=codecs.utc(streak["changed_at"]),
        ),
    )


def _grid_id(tenant_id: str, grid_id: str) -> str:
    return compose_key(tenant_id, grid_id)


def grid_doc(grid: Grid) -> Doc:
    """The stored form of a grid of the read model."""
    return {
        "_id": _grid_id(grid.owner.tenant_id, grid.id),
        **_owner_filter(grid.owner),
        "mandalart_id": grid.id,
        "version": grid.version,
        "on_checklist": grid.on_checklist,
        "actions": [codecs.action_doc(a) for a in grid.actions],
    }


def grid_from(doc: Doc) -> Grid:
    """A grid from its stored form."""
    return Grid(
        owner=Owner(doc["tenant_id"], doc["user_id"]),
        id=doc["mandalart_id"],
        version=int(doc["version"]),
        on_checklist=bool(doc["on_checklist"]),
        actions=tuple(codecs.action_from(a) for a in doc["actions"]),
    )


def _slot_id(owner: Owner, action_id: str, day: date) -> str:
    return sub_key(owner.key, action_id, day.isoformat())


def slot_doc(change: CheckinChange) -> Doc:
    """The stored form of a check-in slot (a routine's expires, a mission's is kept)."""
    doc: Doc = {
        "_id": _slot_id(change.owner, change.action_id, change.local_date),
        **_owner_filter(change.owner),
        "action_id": change.action_id,
        "local_date": change.local_date.isoformat(),
        "done": change.done,
        "seq": change.seq,
        "mission": change.mission,
    }
    if not change.mission:
        doc["expire_at"] = _day_end(change.local_date, SLOT_DAYS)
    return doc


def notice_doc(notice: EventNotice) -> Doc:
    """The stored form of the event a pending row waits to tell."""
    return {
        "kind": notice.kind,
        "happened_at": notice.happened_at,
        "badge": notice.badge,
        "level": notice.level,
        "week": notice.week,
    }


def timer_doc(timer: Timer) -> Doc:
    """The stored form of a timer row."""
    return {
        "_id": timer.key,
        **_owner_filter(timer.owner),
        "kind": timer.kind,
        "type": timer.type,
        "fire_at": timer.fire_at,
        "lease_until": timer.lease_until,
        "lease_token": timer.lease_token,
        "notice": notice_doc(timer.notice) if timer.notice is not None else None,
    }


def timer_from(doc: Doc) -> Timer:
    """A timer row from its stored form."""
    owner = Owner(doc["tenant_id"], doc["user_id"])
    notice = doc.get("notice")
    return Timer(
        owner=owner,
        kind=doc["kind"],
        type=doc["type"],
        fire_at=codecs.utc(doc["fire_at"]),
        lease_until=codecs.utc(doc["lease_until"]),
        lease_token=doc.get("lease_token"),
        notice=None
        if not notice
        else EventNotice(
            owner=owner,
            kind=notice["kind"],
            happened_at=codecs.utc(notice["happened_at"]),
            badge=notice.get("badge"),
            level=notice.get("level"),
            week=notice.get("week"),
        ),
    )


def sent_doc(sent: Sent) -> Doc:
    """The stored form of a sent notification (its id is the dedupe key)."""
    return {
        "_id": sent.dedupe_key,
        **_owner_filter(sent.owner),
        "notification_id": sent.id,
        "kind": sent.kind,
        "locale": sent.locale,
        "title": sent.title,
        "body": sent.body,
        "deep_link": sent.deep_link,
        "local_date": sent.local_date.isoformat(),
        "created_at": sent.created_at,
    }


def sent_from(doc: Doc) -> Sent:
    """A sent notification from its stored form."""
    return Sent(
        owner=Owner(doc["tenant_id"], doc["user_id"]),
        id=doc["notification_id"],
        dedupe_key=doc["_id"],
        kind=doc["kind"],
        locale=doc["locale"],
        title=doc["title"],
        body=doc["body"],
        deep_link=doc["deep_link"],
        local_date=date.fromisoformat(doc["local_date"]),
        created_at=codecs.utc(doc["created_at"]),
    )


# --- the store ---------------------------------------------------------------------------------


class MongoNotificationsStore(MongoStore):
    """The NotificationsStore port on MongoDB, inside a transaction (or read-only)."""

    def __init__(
        self, db: AsyncDatabase[Doc], tx: Transaction | None, erasure_key: bytes | None = None
    ) -> None:
        super().__init__(db, tx)
        self._erasure_key = erasure_key

    async def erased(self, owner: Owner) -> bool:
        """Whether the user or their tenant has a tombstone (the keyed hashes of SPEC §9)."""
        if self._erasure_key is None:
            raise RuntimeError("this store was built without the erasure key")
        hashes = subject_hashes(self._erasure_key, owner.tenant_id, owner.user_id)
        return await MongoTombstones(self._db).first_erased(hashes) is not None

    async def users(self, owners: Collection[Owner]) -> dict[Owner, UserState]:
        """The stored state of these users."""
        found = await find_in(
            self._db[USERS], "_id", [o.key for o in owners], session=self._session
        )
        states = [user_from(doc) for doc in found]
        return {s.owner: s for s in states if s.owner in owners}

    async def save_users(self, states: Sequence[UserState]) -> None:
        """Store these users' states."""
        await self._db[USERS].bulk_write(
            [ReplaceOne({"_id": s.owner.key}, user_doc(s), upsert=True) for s in states],
            ordered=False,
            session=self._session,
        )

    async def grid_versions(self, keys: Collection[GridKey]) -> dict[GridKey, int]:
        """The stored version of each of these grids."""
        found = await find_in(
            self._db[GRIDS],
            "_id",
            [_grid_id(tenant, grid) for tenant, grid in keys],
            {"tenant_id": 1, "mandalart_id": 1, "version": 1},
            session=self._session,
        )
        return {(d["tenant_id"], d["mandalart_id"]): int(d["version"]) for d in found}

    async def save_grids(self, grids: Sequence[Grid]) -> None:
        """Store these grids, each only over an older version (or none)."""
        await self._db[GRIDS].bulk_write(
            [_newer(grid_doc(g), "version", g.version) for g in grids],
            ordered=False,
            session=self._session,
        )

    async def slot_seqs(self, keys: Collection[SlotKey]) -> dict[SlotKey, int]:
        """The stored `seq` of each of these slots."""
        found = await find_in(
            self._db[CHECKINS],
            "_id",
            [_slot_id(owner, action, day) for owner, action, day in keys],
            {"tenant_id": 1, "user_id": 1, "action_id": 1, "local_date": 1, "seq": 1},
            session=self._session,
        )
        return {
            (
                Owner(d["tenant_id"], d["user_id"]),
                d["action_id"],
                date.fromisoformat(d["local_date"]),
            ): int(d["seq"])
            for d in found
        }

    async def save_slots(self, changes: Sequence[CheckinChange]) -> None:
        """Store these slots, each only over a lower `seq` (or none)."""
        await self._db[CHECKINS].bulk_write(
            [_newer(slot_doc(c), "seq", c.seq) for c in changes],
            ordered=False,
            session=self._session,
        )

    async def live_grids(self, owner: Owner) -> list[Grid]:
        """The user's grids whose actions are due."""
        cursor = self._db[GRIDS].find(
            {**_owner_filter(owner), "on_checklist": True}, session=self._session
        )
        return [grid_from(doc) async for doc in cursor]

    async def done_dates(
        self, owner: Owner, *, since: date, until: date, missions: Collection[str]
    ) -> dict[str, set[date]]:
        """Check-in dates per action from `since` to `until`, and any date of `missions`.

        Two index reads, not one `$or` (which the server used here answers by scanning every
        tenant's check-ins): the window by date, and every row of the missions (a few each),
        whose `done` and date are checked here (a predicate after the `$in` would make that
        server scan too).
        """
        owner_rows = _owner_filter(owner)
        window: Doc = {
            **owner_rows,
            "done": True,
            "local_date": {"$gte": since.isoformat(), "$lte": until.isoformat()},
        }
        fields = {"action_id": 1, "local_date": 1, "done": 1}
        rows = await self._db[CHECKINS].find(window, fields, session=self._session).to_list()
        if missions:
            wanted = {**owner_rows, "action_id": {"$in": sorted(missions)}}
            rows += await self._db[CHECKINS].find(wanted, fields, session=self._session).to_list()
        last = until.isoformat()
        done: dict[str, set[date]] = {}
        for doc in rows:
            if doc.get("done") and doc["local_date"] <= last:
                done.setdefault(doc["action_id"], set()).add(date.fromisoformat(doc["local_date"]))
        return done

    async def latest_checkin(self, owner: Owner) -> date | None:
        """The user's latest local date with a check-in."""
        cursor = (
            self._db[CHECKINS]
            .find({**_owner_filter(owner), "done": True}, {"local_date": 1}, session=self._session)
            .sort("local_date", DESCENDING)
            .limit(1)
        )
        async for doc in cursor:
            return date.fromisoformat(doc["local_date"])
        return None

    async def timer(self, key: str) -> Timer | None:
        """The timer row with this id."""
        doc = await self._db[TIMERS].find_one({"_id": key}, session=self._session)
        return timer_from(doc) if doc else None

    async def timers(self, keys: Collection[str]) -> dict[str, Timer]:
        """The timer rows with these ids."""
        found = await find_in(self._db[TIMERS], "_id", list(keys), session=self._session)
        return {doc["_id"]: timer_from(doc) for doc in found}

    async def save_timers(self, timers: Sequence[Timer]) -> None:
        """Store these rows (a new fire time frees the row's lease)."""
        await self._db[TIMERS].bulk_write(
            [ReplaceOne({"_id": t.key}, timer_doc(t), upsert=True) for t in timers],
            ordered=False,
            session=self._session,
        )

    async def delete_timers(self, keys: Collection[str]) -> None:
        """Remove these rows."""
        await self._db[TIMERS].delete_many({"_id": {"$in": list(keys)}}, session=self._session)

    async def was_sent(self, dedupe_key: str) -> bool:
        """Whether a notification with this dedupe key exists."""
        found = await self._db[SENT].find_one(
            {"_id": dedupe_key}, {"_id": 1}, session=self._session
        )
        return found is not None

    async def sent_on(self, owner: Owner, day: date) -> int:
        """How many notifications the user got for a local date."""
        doc = await self._db[DAILY_COUNTS].find_one(
            {"_id": sub_key(owner.key, day.isoformat()), **_owner_filter(owner)},
            session=self._session,
        )
        return int(doc["count"]) if doc else 0

    async def save_sent(self, sent: Sent) -> None:
        """Insert the notification (a second one with its dedupe key fails) and count it."""
        await self._db[SENT].insert_one(sent_doc(sent), session=self._session)
        await self._db[DAILY_COUNTS].bulk_write(
            [
                UpdateOne(
                    {"_id": sub_key(sent.owner.key, sent.local_date.isoformat())},
                    {
                        "$inc": {"count": 1},
                        "$set": {
                            **_owner_filter(sent.owner),
                            "expire_at": _day_end(sent.local_date, COUNT_DAYS),
                        },
                    },
                    upsert=True,
                )
            ],
            session=self._session,
        )

    async def sent_page(self, owner: Owner, *, limit: int, after: SentCursor | None) -> list[Sent]:
        """The user's notifications, newest first, after `after`."""
        docs = await keyset_page(
            self._db[SENT],
            _owner_filter(owner),
            [("created_at", -1), ("notification_id", -1)],
            None if after is None else (after.created_at, after.id),
            limit,
            session=self._session,
        )
        return [sent_from(doc) for doc in docs]


def _newer(doc: Doc, field: str, value: int) -> ReplaceOne[Doc]:
    # Callers read the stored values first in the same transaction; the guard makes a stale
    # write fail loudly (duplicate _id on the upsert) instead of overwriting a newer one.
    guard: dict[str, Any] = {"_id": doc["_id"], field: {"$lt": value}}
    return ReplaceOne(guard, doc, upsert=True)


class MongoTimerLeases:
    """The TimerLeases port on MongoDB: a conditional update per row, on the `fire_at` index."""

    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self._timers = db[TIMERS]

    async def claim_due(self, now: datetime, lease: timedelta, limit: int, token: str) -> list[str]:
        """Claim up to `limit` rows due by `now` whose lease is free; the ids won."""
        free: Doc = {"fire_at": {"$lte": now}, "lease_until": {"$lte": now}}
        cursor = self._timers.find(free, {"_id": 1}).sort("fire_at", ASCENDING).limit(limit)
        candidates = await cursor.to_list()
        ids = [c["_id"] for c in candidates]
        if not ids:
            return []
        # Of two workers claiming one row, only one update still matches it.
        claim = {"$set": {"lease_until": now + lease, "lease_token": token}}
        await self._timers.bulk_write(
            [UpdateOne({"_id": i, **free}, claim) for i in ids], ordered=False
        )
        won = await find_in(self._timers, "_id", ids, {"_id": 1}, where={"lease_token": token})
        return [doc["_id"] for doc in won]


def unit_of_work(
    client: AsyncMongoClient[Doc], db: AsyncDatabase[Doc], erasure_key: bytes
) -> UnitOfWork:
    """The notifications unit of work on MongoDB: a unit that lost a race is re-run; its
    stores tell erased users by the settings' erasure key."""

    def store(db: AsyncDatabase[Doc], tx: Transaction | None) -> MongoNotificationsStore:
        return MongoNotificationsStore(db, tx, erasure_key)

    return MongoUnitOfWork(client, db, SOURCE, store, attempts=ATTEMPTS)
