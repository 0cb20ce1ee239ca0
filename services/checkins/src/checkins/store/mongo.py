"""The checkins service's MongoDB adapter (PyMongo async): read model, check-ins, outbox.

Every document carries `tenant_id` and `user_id`, and every query filters by both. Ids are
built from the natural keys, so two writers of the same slot or grid always collide on `_id`
(a write conflict inside transactions, retried) instead of creating two documents.

Every collection belongs to one user (none is the tenant's alone), so `LIFECYCLE` lists them all
for the export and the erasure of a user or a tenant (SPEC §9).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import date
from typing import Any, Final

from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, ReplaceOne
from pymongo.asynchronous.database import AsyncDatabase

from checkins.domain.errors import ConcurrentChange
from checkins.domain.model import (
    CheckinCursor,
    DaySlot,
    Grid,
    GridAction,
    Owner,
    UserProfile,
)
from checkins.store.ports import GridKey, UnitOfWork
from mandaact_common import codecs
from mandaact_common.domain.calendar import DEFAULT_DAY_START
from mandaact_common.domain.pauses import Pause
from mandaact_common.keys import compose_key, sub_key
from mandaact_common.lifecycle import Lifecycle, by_fields, by_owner_key
from mandaact_common.mongo import Doc, find_in, keyset_page
from mandaact_common.unit_of_work import MongoStore, MongoUnitOfWork

USERS: Final = "users"
GRIDS: Final = "grids"
CHECKINS: Final = "checkins"
MISSION_LOCKS: Final = "mission_locks"
SOURCE: Final = "checkins"
ATTEMPTS: Final = 3
"""Runs of a unit of work that lost a race on a new document before the error is returned."""

LIFECYCLE: Final = Lifecycle(
    SOURCE,
    holdings=(
        # One settings document per user, `_id` = the owner key.
        by_owner_key(USERS),
        # A user's grids and day slots, found through the owner indexes (tenant first).
        by_fields(GRIDS),
        by_fields(CHECKINS),
        # One document per mission of a user, `_id` = a sub-key of the owner key.
        by_owner_key(MISSION_LOCKS),
    ),
)
"""Where checkins keeps users' documents (SPEC §9): what `GET /v1/me/export` returns and what
the erasure of a user or a tenant deletes."""


async def ensure_indexes(db: AsyncDatabase[Doc]) -> None:
    """Create the indexes the queries rely on."""
    await db[GRIDS].create_index(
        [("tenant_id", ASCENDING), ("user_id", ASCENDING), ("deleted", ASCENDING)],
        name="owner_live",
    )
    await db[GRIDS].create_index(
        [("tenant_id", ASCENDING), ("user_id", ASCENDING), ("actions.id", ASCENDING)],
        name="owner_action",
    )
    await db[GRIDS].create_index(
        [("tenant_id", ASCENDING), ("user_id", ASCENDING), ("updated_at", DESCENDING)],
        name="owner_latest",
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
        [
            ("tenant_id", ASCENDING),
            ("user_id", ASCENDING),
            ("action_id", ASCENDING),
            ("done", ASCENDING),
        ],
        name="owner_action_done",
    )


# --- mapping -----------------------------------------------------------------------------------


def _owner_filter(owner: Owner) -> Doc:
    return {"tenant_id": owner.tenant_id, "user_id": owner.user_id}


def _grid_id(tenant_id: str, grid_id: str) -> str:
    return compose_key(tenant_id, grid_id)


def action_doc(action: GridAction) -> Doc:
    """The stored form of an action: its due-rule fields and where it sits in the grid."""
    return {
        **codecs.action_doc(action.rule),
        "mandalart_id": action.mandalart_id,
        "sub_goal_position": action.sub_goal_position,
        "sub_goal_title": action.sub_goal_title,
        "position": action.position,
        "title": action.title,
    }


def action_from(doc: Doc) -> GridAction:
    """An action from its stored form."""
    rule = codecs.action_from(doc)
    return GridAction(
        id=rule.id,
        mandalart_id=doc["mandalart_id"],
        sub_goal_position=int(doc["sub_goal_position"]),
        sub_goal_title=doc["sub_goal_title"],
        position=int(doc["position"]),
        title=doc["title"],
        type=rule.type,
        schedule=rule.schedule,
        added_on=rule.added_on,
        due_date=rule.due_date,
    )


def grid_doc(grid: Grid) -> Doc:
    """The stored form of a grid in the read model."""
    return {
        "_id": _grid_id(grid.owner.tenant_id, grid.id),
        **_owner_filter(grid.owner),
        "mandalart_id": grid.id,
        "title": grid.title,
        "version": grid.version,
        "active": grid.active,
        "deleted": grid.deleted,
        "timezone": grid.timezone,
        "created_at": grid.created_at,
        "updated_at": grid.updated_at,
        "actions": [action_doc(a) for a in grid.actions],
    }


def grid_from(doc: Doc) -> Grid:
    """A grid from its stored form."""
    return Grid(
        owner=Owner(doc["tenant_id"], doc["user_id"]),
        id=doc["mandalart_id"],
        title=doc["title"],
        version=int(doc["version"]),
        active=bool(doc["active"]),
        deleted=bool(doc["deleted"]),
        timezone=doc["timezone"],
        created_at=codecs.utc(doc["created_at"]),
        updated_at=codecs.utc(doc["updated_at"]),
        actions=tuple(action_from(a) for a in doc.get("actions", [])),
    )


def _profile_doc(profile: UserProfile) -> Doc:
    return {
        "_id": profile.owner.key,
        **_owner_filter(profile.owner),
        "timezone": profile.timezone,
        "locale": profile.locale,
        "version": profile.version,
        "day_starts_at": profile.day_starts_at,
        "pauses": [[p.start.isoformat(), p.end.isoformat()] for p in profile.pauses],
    }


def _slot_id(owner: Owner, action_id: str, day: date) -> str:
    return sub_key(owner.key, action_id, day.isoformat())


def slot_doc(slot: DaySlot) -> Doc:
    """The stored form of an action's day: state, change count and the action as last seen."""
    return {
        "_id": _slot_id(slot.owner, slot.action_id, slot.day),
        **_owner_filter(slot.owner),
        "action_id": slot.action_id,
        "local_date": slot.day.isoformat(),
        "done": slot.done,
        "changes": slot.changes,
        "checkin_id": slot.checkin_id,
        "checked_at": slot.checked_at,
        "action": action_doc(slot.action),
    }


def slot_from(doc: Doc, action: GridAction | None = None) -> DaySlot:
    """A day's slot from its stored form (with `action` instead of the stored one if given)."""
    checked_at = doc.get("checked_at")
    return DaySlot(
        owner=Owner(doc["tenant_id"], doc["user_id"]),
        action=action or action_from(doc["action"]),
        day=date.fromisoformat(doc["local_date"]),
        done=bool(doc["done"]),
        changes=int(doc["changes"]),
        checkin_id=doc.get("checkin_id"),
        checked_at=codecs.utc(checked_at) if checked_at else None,
    )


# --- the store ---------------------------------------------------------------------------------


class MongoCheckinsStore(MongoStore):
    """The CheckinsStore port on MongoDB, inside a transaction (or read-only without one)."""

    async def profile(self, owner: Owner) -> UserProfile | None:
        """The user's settings from the newest user.changed, or None."""
        doc = await self._db[USERS].find_one(
            {"_id": owner.key, **_owner_filter(owner)},
            session=self._session,
        )
        if doc is None:
            return None
        return UserProfile(
            owner,
            doc["timezone"],
            doc["locale"],
            int(doc["version"]),
            doc.get("day_starts_at", DEFAULT_DAY_START),
            tuple(
                Pause(date.fromisoformat(start), date.fromisoformat(end))
                for start, end in doc.get("pauses", [])
            ),
        )

    async def latest_grid_timezone(self, owner: Owner) -> str | None:
        """The timezone of the user's most recently changed grid (deleted ones count too)."""
        cursor = (
            self._db[GRIDS]
            .find(_owner_filter(owner), {"timezone": 1}, session=self._session)
            .sort([("updated_at", DESCENDING), ("_id", DESCENDING)])
            .limit(1)
        )
        async for doc in cursor:
            return str(doc["timezone"])
        return None

    async def live_grids(self, owner: Owner) -> list[Grid]:
        """The user's grids that are not deleted."""
        cursor = self._db[GRIDS].find(
            {**_owner_filter(owner), "deleted": False}, session=self._session
        )
        return [grid_from(doc) async for doc in cursor]

    async def grid_with_action(self, owner: Owner, action_id: str) -> Grid | None:
        """The user's live grid holding this action.

        The query names only the fields of the `owner_action` index: SecantusDB plans a
        compound index only when every predicate is on its fields, and `deleted` in the filter
        made this a scan of every grid of every tenant on each check-in (5.3 ms with 64 grids,
        growing with them; 0.4 ms by the index). A deleted grid is skipped here instead.
        """
        cursor = self._db[GRIDS].find(
            {**_owner_filter(owner), "actions.id": action_id}, session=self._session
        )
        async for doc in cursor:
            if not doc.get("deleted"):
                return grid_from(doc)
        return None

    async def slot(self, owner: Owner, action: GridAction, day: date) -> DaySlot | None:
        """The stored state of the action on `day`."""
        doc = await self._db[CHECKINS].find_one(
            {"_id": _slot_id(owner, action.id, day), **_owner_filter(owner)},
            session=self._session,
        )
        return slot_from(doc, action) if doc else None

    async def save_slot(self, slot: DaySlot, *, previous_changes: int) -> None:
        """Insert (previous 0) or replace the slot if its change count is still the one read."""
        doc = slot_doc(slot)
        if slot.action.type == "mission":
            await self._serialize_mission(slot)
        if previous_changes == 0:
            await self._db[CHECKINS].insert_one(doc, session=self._session)
            return
        result = await self._db[CHECKINS].replace_one(
            {"_id": doc["_id"], **_owner_filter(slot.owner), "changes": previous_changes},
            doc,
            session=self._session,
        )
        if result.matched_count != 1:
            raise ConcurrentChange("the check-in was changed by another request")

    async def _serialize_mission(self, slot: DaySlot) -> None:
        # A mission is done on one date only, but two dates are two slot documents: writing
        # one document per mission makes racing check-ins of it conflict, so the loser re-runs
        # and sees the winner's date.
        await self._db[MISSION_LOCKS].update_one(
            {"_id": sub_key(slot.owner.key, slot.action_id)},
            {"$inc": {"changes": 1}, "$set": _owner_filter(slot.owner)},
            upsert=True,
            session=self._session,
        )

    async def done_dates(
        self,
        owner: Owner,
        *,
        until: date,
        since: date,
        any_date_of: Collection[str] = (),
    ) -> dict[str, set[date]]:
        """Check-in dates per action up to `until`: from `since` on, or any for `any_date_of`.

        Two index reads, not one `$or` (which the server used here answers by scanning every
        tenant's check-ins): the window by date, and every row of the any-date actions (a few
        each), whose `done` and date are checked here (a predicate after the `$in` would make
        that server scan too).
        """
        owner_rows = _owner_filter(owner)
        window = {
            **owner_rows,
            "done": True,
            "local_date": {"$gte": since.isoformat(), "$lte": until.isoformat()},
        }
        fields = {"action_id": 1, "local_date": 1, "done": 1}
        rows = await self._db[CHECKINS].find(window, fields, session=self._session).to_list()
        if any_date_of:
            wanted = {**owner_rows, "action_id": {"$in": sorted(any_date_of)}}
            rows += await self._db[CHECKINS].find(wanted, fields, session=self._session).to_list()
        last = until.isoformat()
        done: dict[str, set[date]] = {}
        for doc in rows:
            if doc.get("done") and doc["local_date"] <= last:
                done.setdefault(doc["action_id"], set()).add(date.fromisoformat(doc["local_date"]))
        return done

    async def action_done_dates(self, owner: Owner, action_id: str) -> set[date]:
        """Every date the action has a check-in on."""
        cursor = self._db[CHECKINS].find(
            {**_owner_filter(owner), "action_id": action_id, "done": True},
            {"local_date": 1},
            session=self._session,
        )
        return {date.fromisoformat(doc["local_date"]) async for doc in cursor}

    async def checkins(
        self,
        owner: Owner,
        since: date,
        until: date,
        *,
        limit: int,
        after: CheckinCursor | None = None,
    ) -> list[DaySlot]:
        """A page of the user's current check-ins from `since` to `until`, by date, time and
        action id (keyset paging after `after`)."""
        query: Doc = {
            **_owner_filter(owner),
            "done": True,
            "local_date": {"$gte": since.isoformat(), "$lte": until.isoformat()},
        }
        cursor = (
            None if after is None else (after.day.isoformat(), after.checked_at, after.action_id)
        )
        docs = await keyset_page(
            self._db[CHECKINS],
            query,
            [("local_date", 1), ("checked_at", 1), ("action_id", 1)],
            cursor,
            limit,
            session=self._session,
        )
        return [slot_from(doc) for doc in docs]

    async def grid_versions(self, keys: Collection[GridKey]) -> dict[GridKey, int]:
        """The stored version of each of these grids."""
        found = await find_in(
            self._db[GRIDS],
            "_id",
            [_grid_id(tenant, grid) for tenant, grid in keys],
            {"tenant_id": 1, "mandalart_id": 1, "version": 1},
            session=self._session,
        )
        return {(doc["tenant_id"], doc["mandalart_id"]): int(doc["version"]) for doc in found}

    async def save_grids(self, grids: Sequence[Grid]) -> None:
        """Store these grids in one bulk write, each only over an older version (or none)."""
        await self._db[GRIDS].bulk_write(
            [_newer(grid_doc(grid), grid.version) for grid in grids],
            ordered=False,
            session=self._session,
        )

    async def profile_versions(self, owners: Collection[Owner]) -> dict[Owner, int]:
        """The stored settings version of each of these users."""
        found = await find_in(
            self._db[USERS],
            "_id",
            [o.key for o in owners],
            {"tenant_id": 1, "user_id": 1, "version": 1},
            session=self._session,
        )
        return {Owner(doc["tenant_id"], doc["user_id"]): int(doc["version"]) for doc in found}

    async def save_profiles(self, profiles: Sequence[UserProfile]) -> None:
        """Store these settings in one bulk write, each only over an older version (or none)."""
        await self._db[USERS].bulk_write(
            [_newer(_profile_doc(p), p.version) for p in profiles],
            ordered=False,
            session=self._session,
        )


def _newer(doc: Doc, version: int) -> ReplaceOne[Doc]:
    # The guard makes a stale write fail loudly (duplicate _id on the upsert) rather than
    # overwrite a newer version; callers read the stored versions first in the same
    # transaction, so it only fires if that contract is broken.
    guard: dict[str, Any] = {"_id": doc["_id"], "version": {"$lt": version}}
    return ReplaceOne(guard, doc, upsert=True)


def unit_of_work(client: AsyncMongoClient[Doc], db: AsyncDatabase[Doc]) -> UnitOfWork:
    """The checkins unit of work on MongoDB: a unit that lost a race on a slot is re-run."""
    return MongoUnitOfWork(client, db, SOURCE, MongoCheckinsStore, attempts=ATTEMPTS)
