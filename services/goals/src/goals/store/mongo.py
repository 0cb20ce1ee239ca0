"""The goals service's MongoDB adapter (PyMongo async): settings, grids, outbox, idempotency keys.

Every document carries `tenant_id` and `user_id`, and every query filters by both.
Writes of a changed document are conditional on the version that was read.
"""

from __future__ import annotations

import dataclasses
from datetime import date, datetime

from pymongo import ASCENDING, DESCENDING, AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from goals.domain.deletion import Deletion
from goals.domain.errors import ConcurrentChange
from goals.domain.model import (
    DEFAULT_REMINDER_TIME,
    Action,
    Mandalart,
    NotificationPrefs,
    Owner,
    PageCursor,
    QuietHours,
    SubGoal,
    UserSettings,
)
from goals.store.ports import UnitOfWork
from mandaact_common import codecs
from mandaact_common.domain.calendar import DEFAULT_DAY_START
from mandaact_common.domain.pauses import Pause
from mandaact_common.idempotency import ensure_idempotency_indexes
from mandaact_common.lifecycle import Lifecycle, Subject, by_fields, schedule_erasure
from mandaact_common.mongo import Doc, keyset_page
from mandaact_common.unit_of_work import MongoStore, MongoUnitOfWork

USERS = "users"
MANDALARTS = "mandalarts"
GRID_CREATES = "grid_creates"
"""One small document per user that every grid create writes: the cap's serialization point."""
DELETIONS = "deletions"
"""Deletion records by deletion id (a keyed hash): what `GET /v1/me/deletion` reads; nothing
in them names the user or tenant."""
SOURCE = "goals"

LIFECYCLE = Lifecycle(
    SOURCE,
    holdings=(by_fields(USERS), by_fields(MANDALARTS), by_fields(GRID_CREATES, export=False)),
)
"""Where goals keeps users' documents (SPEC §9): settings, grids and the create markers."""


async def ensure_indexes(db: AsyncDatabase[Doc]) -> None:
    """Create the indexes the queries and the uniqueness rules rely on."""
    await db[USERS].create_index(
        [("tenant_id", ASCENDING), ("user_id", ASCENDING)], unique=True, name="owner_unique"
    )
    # A settings change replaces on the version read: with `version` outside an index, that
    # match is a scan of every tenant's users on the server used here.
    await db[USERS].create_index(
        [("tenant_id", ASCENDING), ("user_id", ASCENDING), ("version", ASCENDING)],
        name="owner_version",
    )
    await db[MANDALARTS].create_index(
        [
            ("tenant_id", ASCENDING),
            ("user_id", ASCENDING),
            ("deleted", ASCENDING),
            ("created_at", DESCENDING),
            ("_id", DESCENDING),
        ],
        name="owner_newest_first",
    )
    # The list filtered on `active`: on the server used here a predicate outside the index
    # makes the read scan every tenant's grids.
    await db[MANDALARTS].create_index(
        [
            ("tenant_id", ASCENDING),
            ("user_id", ASCENDING),
            ("deleted", ASCENDING),
            ("active", ASCENDING),
            ("created_at", DESCENDING),
            ("_id", DESCENDING),
        ],
        name="owner_active_newest_first",
    )
    await db[GRID_CREATES].create_index([("tenant_id", ASCENDING)], name="tenant")
    await ensure_idempotency_indexes(db)


# --- mapping -----------------------------------------------------------------------------------


def _action_doc(action: Action) -> Doc:
    return {**codecs.action_doc(action.rule), "position": action.position, "title": action.title}


def _action_from(doc: Doc) -> Action:
    rule = codecs.action_from(doc)
    return Action(
        id=rule.id,
        position=doc["position"],
        title=doc["title"],
        type=rule.type,
        schedule=rule.schedule,
        due_date=rule.due_date,
        added_on=rule.added_on,
    )


def mandalart_doc(mandalart: Mandalart) -> Doc:
    """The stored form of a grid."""
    return {
        "_id": mandalart.id,
        "tenant_id": mandalart.owner.tenant_id,
        "user_id": mandalart.owner.user_id,
        "title": mandalart.title,
        "description": mandalart.description,
        "active": mandalart.active,
        "deleted": mandalart.deleted,
        "version": mandalart.version,
        "sub_goals": [
            {
                "position": s.position,
                "title": s.title,
                "actions": [_action_doc(a) for a in s.actions],
            }
            for s in mandalart.sub_goals
        ],
        "created_at": mandalart.created_at,
        "updated_at": mandalart.updated_at,
    }


def mandalart_from(doc: Doc) -> Mandalart:
    """A grid from its stored form."""
    return Mandalart(
        id=doc["_id"],
        owner=Owner(doc["tenant_id"], doc["user_id"]),
        title=doc["title"],
        description=doc.get("description"),
        active=bool(doc["active"]),
        deleted=bool(doc.get("deleted", False)),
        version=int(doc["version"]),
        sub_goals=tuple(
            SubGoal(
                position=s["position"],
                title=s["title"],
                actions=tuple(_action_from(a) for a in s.get("actions", [])),
            )
            for s in doc.get("sub_goals", [])
        ),
        created_at=codecs.utc(doc["created_at"]),
        updated_at=codecs.utc(doc["updated_at"]),
    )


def _settings_doc(settings: UserSettings) -> Doc:
    return {
        "tenant_id": settings.owner.tenant_id,
        "user_id": settings.owner.user_id,
        "timezone": settings.timezone,
        "locale": settings.locale,
        "display_name": settings.display_name,
        "version": settings.version,
        "updated_at": settings.updated_at,
        "day_starts_at": settings.day_starts_at,
        "reminder_time": settings.reminder_time,
        "quiet_hours": {"from": settings.quiet_hours.start, "to": settings.quiet_hours.end},
        "notifications": dataclasses.asdict(settings.notifications),
        "pauses": [
            {"from": p.start.isoformat(), "to": p.end.isoformat(), "reason": p.reason}
            for p in settings.pauses
        ],
    }


def _settings_from(doc: Doc) -> UserSettings:
    quiet = doc.get("quiet_hours")
    return UserSettings(
        owner=Owner(doc["tenant_id"], doc["user_id"]),
        timezone=doc["timezone"],
        locale=doc["locale"],
        display_name=doc.get("display_name"),
        version=int(doc["version"]),
        updated_at=codecs.utc(doc["updated_at"]) if doc.get("updated_at") else None,
        day_starts_at=doc.get("day_starts_at", DEFAULT_DAY_START),
        reminder_time=doc.get("reminder_time", DEFAULT_REMINDER_TIME),
        quiet_hours=QuietHours(quiet["from"], quiet["to"]) if quiet else QuietHours(),
        notifications=NotificationPrefs(**doc.get("notifications", {})),
        pauses=tuple(
            Pause(date.fromisoformat(p["from"]), date.fromisoformat(p["to"]), p.get("reason"))
            for p in doc.get("pauses", [])
        ),
    )


def _deletion_doc(deletion: Deletion) -> Doc:
    return {
        "_id": deletion.id,
        "scope": deletion.scope,
        "requested_at": deletion.requested_at,
        "services": dict(deletion.services),
        "completed_at": deletion.completed_at,
    }


def _deletion_from(doc: Doc) -> Deletion:
    return Deletion(
        id=doc["_id"],
        scope=doc["scope"],
        requested_at=codecs.utc(doc["requested_at"]),
        services={k: codecs.utc(v) if v else None for k, v in doc["services"].items()},
        completed_at=codecs.utc(doc["completed_at"]) if doc.get("completed_at") else None,
    )


def _owner_filter(owner: Owner) -> Doc:
    return {"tenant_id": owner.tenant_id, "user_id": owner.user_id}


# --- the store ---------------------------------------------------------------------------------


class MongoGoalsStore(MongoStore):
    """The GoalsStore port on MongoDB, inside a transaction (or read-only without one)."""

    async def get_settings(self, owner: Owner) -> UserSettings | None:
        """The owner's stored settings, or None when never saved."""
        doc = await self._db[USERS].find_one(_owner_filter(owner), session=self._session)
        return _settings_from(doc) if doc else None

    async def save_settings(self, settings: UserSettings, *, previous_version: int) -> None:
        """Insert (previous 0) or replace conditionally on the version that was read."""
        doc = _settings_doc(settings)
        if previous_version == 0:
            try:
                await self._db[USERS].insert_one(doc, session=self._session)
            except DuplicateKeyError:
                raise ConcurrentChange("the settings were saved by another request") from None
            return
        result = await self._db[USERS].replace_one(
            {**_owner_filter(settings.owner), "version": previous_version},
            doc,
            session=self._session,
        )
        if result.matched_count != 1:
            raise ConcurrentChange("the settings were changed by another request")

    async def get_mandalart(self, owner: Owner, mandalart_id: str) -> Mandalart | None:
        """The owner's live grid with this id."""
        doc = await self._db[MANDALARTS].find_one(
            {"_id": mandalart_id, **_owner_filter(owner), "deleted": False},
            session=self._session,
        )
        return mandalart_from(doc) if doc else None

    async def count_live_mandalarts_for_create(self, owner: Owner) -> int:
        """Count the owner's live grids after writing their create marker in this transaction.

        A count alone would let two concurrent creates both see 19 (snapshot isolation does not
        stop write skew); both writing the same marker makes one of them conflict and run again,
        and that run counts the other's grid.
        """
        await self._db[GRID_CREATES].update_one(
            {"_id": owner.key},
            {"$inc": {"creates": 1}, "$setOnInsert": _owner_filter(owner)},
            upsert=True,
            session=self._session,
        )
        return await self._db[MANDALARTS].count_documents(
            {**_owner_filter(owner), "deleted": False}, session=self._session
        )

    async def add_mandalart(self, mandalart: Mandalart) -> None:
        """Insert a new grid."""
        await self._db[MANDALARTS].insert_one(mandalart_doc(mandalart), session=self._session)

    async def save_mandalart(self, mandalart: Mandalart, *, previous_version: int) -> None:
        """Replace the grid only if it is still at `previous_version` and not deleted."""
        result = await self._db[MANDALARTS].replace_one(
            {
                "_id": mandalart.id,
                **_owner_filter(mandalart.owner),
                "version": previous_version,
                "deleted": False,
            },
            mandalart_doc(mandalart),
            session=self._session,
        )
        if result.matched_count != 1:
            raise ConcurrentChange("the mandalart was changed by another request")

    async def list_mandalarts(
        self, owner: Owner, *, limit: int, after: PageCursor | None, active: bool | None
    ) -> list[Mandalart]:
        """The owner's live grids, newest first (ties by id), starting after `after`."""
        query: Doc = {**_owner_filter(owner), "deleted": False}
        if active is not None:
            query["active"] = active
        docs = await keyset_page(
            self._db[MANDALARTS],
            query,
            [("created_at", -1), ("_id", -1)],
            None if after is None else (after.created_at, after.id),
            limit,
            session=self._session,
        )
        return [mandalart_from(doc) for doc in docs]

    async def get_deletion(self, deletion_id: str) -> Deletion | None:
        """The deletion record of this id."""
        doc = await self._db[DELETIONS].find_one({"_id": deletion_id}, session=self._session)
        return _deletion_from(doc) if doc else None

    async def begin_deletion(self, deletion: Deletion, subject: Subject, due: datetime) -> None:
        """The record, the tombstone and the erasure job, in this unit's transaction."""
        if self._tx is None:
            raise RuntimeError("a deletion begins inside a transaction")
        await self._db[DELETIONS].insert_one(_deletion_doc(deletion), session=self._session)
        await schedule_erasure(self._tx, deletion.id, subject, deletion.requested_at, due)

    async def save_deletion(self, deletion: Deletion) -> None:
        """Replace the record with its new answers."""
        await self._db[DELETIONS].replace_one(
            {"_id": deletion.id}, _deletion_doc(deletion), session=self._session
        )


def unit_of_work(client: AsyncMongoClient[Doc], db: AsyncDatabase[Doc]) -> UnitOfWork:
    """The goals unit of work on MongoDB (idempotency keys stored with the effect)."""
    return MongoUnitOfWork(client, db, SOURCE, MongoGoalsStore)
