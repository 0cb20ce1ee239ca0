"""The reports service's MongoDB adapter: fold facts, grid buckets, report jobs, reports.

Collections (database `mandaact_reports`):
- `users`: one per user: settings, mission check-ins, badges, levels, undated XP entries.
- `weeks`: one per (user, ISO week): check-in states, dated XP entries, the week's streak.
- `grids`: one per (user, grid, ISO week of a change): the last version changed that week.
- `report_jobs`: one per (user, week) with a check-in: when the report is due, the claim.
- `reports`: one per (user, week), under a unique `_id`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from typing import Any, cast
from urllib.parse import quote

from pymongo import ASCENDING, DESCENDING, ReplaceOne, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from mandaact_common.domain.schedule import Action, Schedule
from mandaact_common.mongo import Doc
from reports.domain.facts import (
    CheckinState,
    Grid,
    GridBucket,
    GridSubGoal,
    Locale,
    StreakFact,
    UserFacts,
    WeekFacts,
)

USERS = "users"
WEEKS = "weeks"
GRIDS = "grids"
JOBS = "report_jobs"
REPORTS = "reports"

OPEN, DONE = "open", "done"
"""A report job's states: no report yet, or the report is stored."""
NEVER = datetime(1970, 1, 1, tzinfo=UTC)
"""The `claim_expires` of a job nobody has claimed (a claim is free once it expires)."""


def user_key(tenant_id: str, user_id: str) -> str:
    """The per-user key (percent-encoded parts, so no two tenant/user pairs share one)."""
    return f"{quote(tenant_id, safe='')}:{quote(user_id, safe='')}"


def week_key(uk: str, week: str) -> str:
    """The key of a user's week: its facts, its report job and its report."""
    return f"{uk}|{week}"


def bucket_key(uk: str, grid_id: str, week: str) -> str:
    """The key of a grid's bucket for the week it was changed in."""
    return f"{uk}|{quote(grid_id, safe='')}|{week}"


async def ensure_indexes(db: AsyncDatabase[Doc]) -> None:
    """The indexes the fold, the scheduler and the API read by."""
    await db[GRIDS].create_index([("uk", ASCENDING), ("week", ASCENDING)])
    await db[JOBS].create_index(
        [("state", ASCENDING), ("active", ASCENDING), ("due_at", ASCENDING)]
    )
    await db[JOBS].create_index([("uk", ASCENDING), ("state", ASCENDING)])
    await db[REPORTS].create_index(
        [("tenant_id", ASCENDING), ("user_id", ASCENDING), ("week", DESCENDING)]
    )


# --- documents <-> facts -------------------------------------------------------------------


def week_to_doc(uk: str, facts: WeekFacts) -> Doc:
    """A week's facts as stored."""
    return {
        "_id": week_key(uk, facts.week),
        "uk": uk,
        "tenant_id": facts.tenant_id,
        "user_id": facts.user_id,
        "week": facts.week,
        "checkins": [
            {
                "a": c.action_id,
                "d": c.local_date.isoformat(),
                "seq": c.seq,
                "done": c.done,
                "type": c.action_type,
                "m": c.mandalart_id,
                "p": c.sub_goal_position,
                "h": c.local_hour,
            }
            for c in facts.checkins.values()
        ],
        "xp": [{"id": k, "amount": v} for k, v in facts.xp.items()],
        "streak": (
            {
                "at": facts.streak.changed_at,
                "current": facts.streak.current,
                "longest": facts.streak.longest,
            }
            if facts.streak
            else None
        ),
    }


def week_from_doc(doc: Doc) -> WeekFacts:
    """A stored week's facts."""
    facts = WeekFacts(doc["tenant_id"], doc["user_id"], doc["week"])
    for c in doc.get("checkins", []):
        state = CheckinState(
            action_id=c["a"],
            local_date=date.fromisoformat(c["d"]),
            seq=int(c["seq"]),
            done=bool(c["done"]),
            action_type=c["type"],
            mandalart_id=c["m"],
            sub_goal_position=int(c["p"]),
            local_hour=int(c["h"]),
        )
        facts.checkins[(state.action_id, state.local_date)] = state
    facts.xp = {x["id"]: int(x["amount"]) for x in doc.get("xp", [])}
    streak = doc.get("streak")
    if streak:
        facts.streak = StreakFact(streak["at"], int(streak["current"]), int(streak["longest"]))
    return facts


def user_to_doc(uk: str, user: UserFacts) -> Doc:
    """A user's facts as stored."""
    return {
        "_id": uk,
        "tenant_id": user.tenant_id,
        "user_id": user.user_id,
        "version": user.version,
        "timezone": user.timezone,
        "locale": user.locale,
        "checkin_timezone": user.checkin_timezone,
        "checkin_timezone_at": user.checkin_timezone_at,
        "missions": [
            {"a": a, "d": d.isoformat(), "seq": seq, "done": done}
            for (a, d), (seq, done) in user.missions.items()
        ],
        "badges": [{"code": k, "at": v} for k, v in user.badges.items()],
        "levels": [{"level": k, "at": v} for k, v in user.levels.items()],
        "undated_xp": [
            {"id": k, "amount": amount, "at": at} for k, (amount, at) in user.undated_xp.items()
        ],
    }


def user_from_doc(doc: Doc) -> UserFacts:
    """A stored user's facts."""
    return UserFacts(
        tenant_id=doc["tenant_id"],
        user_id=doc["user_id"],
        version=int(doc.get("version", 0)),
        timezone=doc.get("timezone"),
        locale=cast(Locale | None, doc.get("locale")),
        checkin_timezone=doc.get("checkin_timezone"),
        checkin_timezone_at=doc.get("checkin_timezone_at"),
        missions={
            (m["a"], date.fromisoformat(m["d"])): (int(m["seq"]), bool(m["done"]))
            for m in doc.get("missions", [])
        },
        badges={b["code"]: b["at"] for b in doc.get("badges", [])},
        levels={int(lv["level"]): lv["at"] for lv in doc.get("levels", [])},
        undated_xp={x["id"]: (int(x["amount"]), x["at"]) for x in doc.get("undated_xp", [])},
    )


def _action_doc(action: Action) -> Doc:
    schedule = action.schedule
    return {
        "id": action.id,
        "type": action.type,
        "schedule": (
            {"frequency": schedule.frequency, "days": schedule.day_codes(), "times": schedule.times}
            if schedule
            else None
        ),
        "added_on": action.added_on.isoformat(),
        "due_date": action.due_date.isoformat() if action.due_date else None,
    }


def _action_from_doc(doc: Doc) -> Action:
    sched = doc.get("schedule")
    return Action(
        id=doc["id"],
        type=doc["type"],
        schedule=(
            Schedule.from_parts(sched["frequency"], sched.get("days"), sched.get("times"))
            if sched
            else None
        ),
        added_on=date.fromisoformat(doc["added_on"]),
        due_date=date.fromisoformat(doc["due_date"]) if doc.get("due_date") else None,
    )


def bucket_to_doc(uk: str, bucket: GridBucket) -> Doc:
    """A grid bucket as stored."""
    grid = bucket.grid
    return {
        "_id": bucket_key(uk, grid.id, bucket.week),
        "uk": uk,
        "tenant_id": bucket.tenant_id,
        "user_id": bucket.user_id,
        "week": bucket.week,
        "grid_id": grid.id,
        "version": grid.version,
        "title": grid.title,
        "active": grid.active,
        "deleted": grid.deleted,
        "sub_goals": [
            {
                "position": sg.position,
                "title": sg.title,
                "actions": [_action_doc(a) for a in sg.actions],
            }
            for sg in grid.sub_goals
        ],
    }


def bucket_from_doc(doc: Doc) -> GridBucket:
    """A stored grid bucket."""
    grid = Grid(
        id=doc["grid_id"],
        title=doc["title"],
        version=int(doc["version"]),
        active=bool(doc["active"]),
        deleted=bool(doc["deleted"]),
        sub_goals=tuple(
            GridSubGoal(
                position=int(sg["position"]),
                title=sg["title"],
                actions=tuple(_action_from_doc(a) for a in sg["actions"]),
            )
            for sg in doc["sub_goals"]
        ),
    )
    return GridBucket(doc["tenant_id"], doc["user_id"], doc["week"], grid)


# --- reads and writes ----------------------------------------------------------------------


class FoldStore:
    """Reads and bulk writes of one transaction (every call goes through its session)."""

    def __init__(self, db: AsyncDatabase[Doc], session: AsyncClientSession | None) -> None:
        self._db = db
        self._s = session

    async def _by_ids(self, collection: str, ids: Iterable[str]) -> dict[str, Doc]:
        wanted = list(ids)
        if not wanted:
            return {}
        cursor = self._db[collection].find({"_id": {"$in": wanted}}, session=self._s)
        return {d["_id"]: d async for d in cursor}

    async def users(self, uks: Iterable[str]) -> dict[str, UserFacts]:
        """The users' facts (missing users are absent)."""
        docs = await self._by_ids(USERS, uks)
        return {k: user_from_doc(d) for k, d in docs.items()}

    async def weeks(self, ids: Iterable[str]) -> dict[str, WeekFacts]:
        """Weeks' facts by week key (missing weeks are absent)."""
        docs = await self._by_ids(WEEKS, ids)
        return {k: week_from_doc(d) for k, d in docs.items()}

    async def buckets(self, ids: Iterable[str]) -> dict[str, GridBucket]:
        """Grid buckets by bucket key (missing ones are absent)."""
        docs = await self._by_ids(GRIDS, ids)
        return {k: bucket_from_doc(d) for k, d in docs.items()}

    async def buckets_of(self, uks: Iterable[str], up_to_week: str) -> dict[str, list[GridBucket]]:
        """Every grid bucket of these users up to a week, by user key."""
        out: dict[str, list[GridBucket]] = {}
        cursor = self._db[GRIDS].find(
            {"uk": {"$in": list(uks)}, "week": {"$lte": up_to_week}}, session=self._s
        )
        async for doc in cursor:
            out.setdefault(doc["uk"], []).append(bucket_from_doc(doc))
        return out

    async def jobs(self, ids: Iterable[str]) -> dict[str, Doc]:
        """Report jobs by key (missing ones are absent)."""
        return await self._by_ids(JOBS, ids)

    async def open_jobs(self, uks: Iterable[str]) -> list[Doc]:
        """Report jobs of these users that have no report yet."""
        cursor = self._db[JOBS].find({"uk": {"$in": list(uks)}, "state": OPEN}, session=self._s)
        return [d async for d in cursor]

    async def save(
        self,
        users: dict[str, UserFacts],
        weeks: dict[str, WeekFacts],
        buckets: dict[str, GridBucket],
        job_updates: Sequence[tuple[str, Doc]],
    ) -> None:
        """Replace the changed fact documents and upsert the jobs' fold-owned fields."""
        writes: list[tuple[str, list[Any]]] = [
            (
                USERS,
                [ReplaceOne({"_id": k}, user_to_doc(k, u), upsert=True) for k, u in users.items()],
            ),
            (
                WEEKS,
                [
                    ReplaceOne({"_id": k}, week_to_doc(k.rsplit("|", 1)[0], w), upsert=True)
                    for k, w in weeks.items()
                ],
            ),
            (
                GRIDS,
                [
                    ReplaceOne({"_id": k}, bucket_to_doc(k.split("|", 1)[0], b), upsert=True)
                    for k, b in buckets.items()
                ],
            ),
            # Only `$set` of the fold's own fields: the claim and state belong to the scheduler,
            # which finds them already there (plain equality and range filters stay fast).
            (
                JOBS,
                [
                    UpdateOne(
                        {"_id": k},
                        {"$set": s, "$setOnInsert": {"state": OPEN, "claim_expires": NEVER}},
                        upsert=True,
                    )
                    for k, s in job_updates
                ],
            ),
        ]
        for collection, ops in writes:
            if ops:
                await self._db[collection].bulk_write(ops, ordered=False, session=self._s)


def report_due_fields(uk: str, facts: WeekFacts, due_at: datetime) -> Doc:
    """The fields of a report job that the fold owns."""
    return {
        "uk": uk,
        "tenant_id": facts.tenant_id,
        "user_id": facts.user_id,
        "week": facts.week,
        "active": facts.has_checkins,
        "due_at": due_at,
    }
