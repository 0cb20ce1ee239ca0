"""The reports service's MongoDB adapter: fold facts, grid buckets, report jobs, reports.

Collections (database `mandaact_reports`):
- `users`: one per user: settings, mission check-ins, badges, levels, undated XP entries.
- `weeks`: one per (user, ISO week): check-in states, dated XP entries, the week's streak.
- `grids`: one per (user, grid, ISO week of a change): the last version changed that week.
- `report_jobs`: one per (user, week) with a check-in: when the report is due, the claim, and
  when it is due for a rewrite (`rewrite_due_at`: its fold changed after it was written).
- `reports`: one per (user, week), under a unique `_id`, with the fold version it was written
  from and the LLM calls it has cost.
- `idempotency_keys`: the answers of generate requests sent with an Idempotency-Key.
- `llm_cache`: one per (tenant, prompt): the LLM call made for it, claimed before it is made;
  `used_by` holds a hash (`user_mark`) of each user whose report it wrote, never their ids.
- `llm_budget`: one per (tenant, calendar month): the LLM calls made, and those refused.

Every document carries `tenant_id` (as the shared outbox and processed-event rows do).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final, cast

from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, ReplaceOne, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError, OperationFailure

from mandaact_common.codecs import action_doc, action_from, utc
from mandaact_common.domain.calendar import DEFAULT_DAY_START
from mandaact_common.domain.owner import Owner
from mandaact_common.domain.pauses import Pause
from mandaact_common.idempotency import ensure_idempotency_indexes
from mandaact_common.keys import compose_key, owner_key, owner_of
from mandaact_common.lifecycle import Holding, Lifecycle, by_fields, by_owner_key
from mandaact_common.mongo import Doc, find_in, keyset_rows
from mandaact_common.unit_of_work import MongoStore, MongoUnitOfWork
from reports.domain.errors import ReportExists
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
from reports.domain.report import Outcome, Report, ReportJob, budget_month, made_a_call
from reports.domain.stats import WeeklyStats
from reports.domain.summary import Summary
from reports.store.ports import CachedCall, bucket_key, week_key

SOURCE = "reports"
USERS = "users"
WEEKS = "weeks"
GRIDS = "grids"
JOBS = "report_jobs"
REPORTS = "reports"
LLM_CACHE = "llm_cache"
LLM_BUDGET = "llm_budget"


def user_mark(tenant_id: str, user_id: str) -> str:
    """What an `llm_cache` row keeps of a user whose report it wrote: a hash of their key, so
    their erasure finds the rows made from their folds and a row written after it (by a
    report already in flight) names nobody; the rows expire after `CACHE_RETENTION` anyway."""
    return hashlib.sha256(owner_key(tenant_id, user_id).encode()).hexdigest()[:32]


def _cache_rows(tenant_id: str, user_id: str | None) -> list[Doc]:
    # A user's: the rows their reports used (cached summaries of their folds; a row another
    # user's identical fold also used goes too, which only costs that fold a new call).
    if user_id is None:
        return [{"tenant_id": tenant_id}]
    return [{"tenant_id": tenant_id, "used_by": user_mark(tenant_id, user_id)}]


LIFECYCLE = Lifecycle(
    SOURCE,
    holdings=(
        by_owner_key(USERS),
        by_owner_key(WEEKS),
        by_owner_key(GRIDS),
        # Jobs before reports: a report is stored only while its job is (`add_reports`), so
        # one written by a generation in flight at the erasure is never left behind.
        by_owner_key(JOBS),
        by_fields(REPORTS),
        # Summaries are in the user's reports already: the export leaves the cache out.
        Holding(LLM_CACHE, _cache_rows, export=False),
        # Counts of the tenant's calls per month: nobody's alone.
        by_fields(LLM_BUDGET, user=None, export=False),
    ),
)
"""Every collection of the service that holds a user's or a tenant's documents (SPEC §9)."""

CACHE_RETENTION = timedelta(days=60)
"""Cache rows expire after this (a stored report never needs its call again)."""
BUDGET_RETENTION = timedelta(days=400)
"""Budget rows are kept a little over a year, for operators, then expire."""

OPEN, DONE = "open", "done"
"""A report job's states: no report yet, or the report is stored."""
NEVER = datetime(1970, 1, 1, tzinfo=UTC)
"""The `claim_expires` of a job nobody has claimed (a claim is free once it expires)."""


async def ensure_indexes(db: AsyncDatabase[Doc]) -> None:
    """The indexes the fold, the scheduler, the API and its idempotency keys read by."""
    await db[GRIDS].create_index([("uk", ASCENDING), ("week", ASCENDING)])
    await db[JOBS].create_index(
        [("state", ASCENDING), ("active", ASCENDING), ("due_at", ASCENDING)]
    )
    await db[JOBS].create_index([("state", ASCENDING), ("uk", ASCENDING)], name="open_by_user")
    # Only rows whose report waits for a rewrite carry the marker: the settle job reads just them,
    # by a sparse index (SecantusDB never uses a partial one; the partial index of earlier
    # versions goes first, since MongoDB keeps one index per key pattern and options).
    for held in await (await db[JOBS].list_indexes()).to_list():
        if held.get("name") == "rewrite_due_at_1" and "partialFilterExpression" in held:
            with contextlib.suppress(OperationFailure):  # another process dropped it first
                await db[JOBS].drop_index("rewrite_due_at_1")
    await db[JOBS].create_index([("rewrite_due_at", ASCENDING)], sparse=True, name="rewrite_due")
    await db[REPORTS].create_index(
        [("tenant_id", ASCENDING), ("user_id", ASCENDING), ("week", DESCENDING)]
    )
    await ensure_idempotency_indexes(db)
    await db[LLM_CACHE].create_index([("expires_at", ASCENDING)], expireAfterSeconds=0)
    await db[LLM_BUDGET].create_index([("expires_at", ASCENDING)], expireAfterSeconds=0)
    await db[LLM_CACHE].create_index([("tenant_id", ASCENDING), ("used_by", ASCENDING)])
    await db[LLM_BUDGET].create_index([("tenant_id", ASCENDING)])


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
                "t": c.sub_goal_title,
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
        "fold_version": facts.fold_version,
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
            sub_goal_title=c.get("t", ""),
        )
        facts.checkins[(state.action_id, state.local_date)] = state
    facts.xp = {x["id"]: int(x["amount"]) for x in doc.get("xp", [])}
    streak = doc.get("streak")
    if streak:
        facts.streak = StreakFact(streak["at"], int(streak["current"]), int(streak["longest"]))
    facts.fold_version = int(doc.get("fold_version", 0))
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
        "day_starts_at": user.day_starts_at,
        "pauses": [[p.start.isoformat(), p.end.isoformat()] for p in user.pauses],
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
        day_starts_at=doc.get("day_starts_at", DEFAULT_DAY_START),
        pauses=tuple(
            Pause(date.fromisoformat(a), date.fromisoformat(b)) for a, b in doc.get("pauses", [])
        ),
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
                "actions": [action_doc(a) for a in sg.actions],
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
                actions=tuple(action_from(a) for a in sg["actions"]),
            )
            for sg in doc["sub_goals"]
        ),
    )
    return GridBucket(doc["tenant_id"], doc["user_id"], doc["week"], grid)


def job_fields(job: ReportJob) -> Doc:
    """The fields of a report job that the fold owns."""
    return {
        "uk": job.owner.key,
        "tenant_id": job.owner.tenant_id,
        "user_id": job.owner.user_id,
        "week": job.week,
        "active": job.active,
        "due_at": job.due_at,
    }


def job_from_doc(doc: Doc) -> ReportJob:
    """A stored report job, as the fold and the scheduler see it."""
    return ReportJob(
        owner=Owner(doc["tenant_id"], doc["user_id"]),
        week=doc["week"],
        active=bool(doc.get("active")),
        due_at=utc(doc["due_at"]),
    )


def report_to_doc(report: Report) -> Doc:
    """A report as stored."""
    return {
        "_id": report.key,
        "report_id": report.id,
        "uk": report.owner.key,
        "tenant_id": report.owner.tenant_id,
        "user_id": report.owner.user_id,
        "week": report.week,
        "stats": report.stats.model_dump(mode="json"),
        "summary": report.summary.model_dump(mode="json"),
        "generator": report.generator,
        "llm_outcome": report.llm_outcome,
        "locale": report.locale,
        "prompt_version": report.prompt_version,
        "generated_at": report.generated_at,
        "fold_version": report.fold_version,
        "llm_calls": report.llm_calls,
    }


def report_from_doc(doc: Doc) -> Report:
    """A stored report."""
    return Report(
        owner=Owner(doc["tenant_id"], doc["user_id"]),
        week=doc["week"],
        stats=WeeklyStats.model_validate(doc["stats"]),
        summary=Summary.model_validate(doc["summary"]),
        generator=doc["generator"],
        llm_outcome=doc["llm_outcome"],
        locale=doc["locale"],
        prompt_version=doc["prompt_version"],
        generated_at=utc(doc["generated_at"]),
        # Reports written before versions were kept: version 0, and the call they made.
        fold_version=int(doc.get("fold_version", 0)),
        llm_calls=int(doc.get("llm_calls", 1 if made_a_call(doc["llm_outcome"]) else 0)),
    )


_DUE: Final = {"due_at": 1, "rewrite_due_at": 1, "claim_expires": 1}
"""What a claim reads of the due rows before it claims them by id."""


def _claimable(now: datetime) -> Doc:
    """An open job whose claim (if any) has expired."""
    return {"state": OPEN, "claim_expires": {"$lte": now}}


def _claim(token: str, now: datetime, lease: timedelta) -> Doc:
    return {"$set": {"claim_owner": token, "claim_expires": now + lease}}


def _finish(keys: Iterable[str]) -> list[UpdateOne]:
    return [
        UpdateOne(
            {"_id": k},
            {"$set": {"state": DONE, "claim_expires": NEVER}, "$unset": {"claim_owner": ""}},
        )
        for k in keys
    ]


def _rewritable(now: datetime) -> Doc:
    """A written job whose claim (if any) has expired."""
    return {"state": DONE, "claim_expires": {"$lte": now}}


def _close(report: Report, job: Doc, current_version: int, rewrite_at: datetime) -> UpdateOne:
    """Close the job of a report just stored; keep it due for a rewrite while the fold has
    moved on since the version the report was written from."""
    update: Doc = {"$set": {"state": DONE, "claim_expires": NEVER}, "$unset": {"claim_owner": ""}}
    if current_version <= report.fold_version:
        update["$unset"]["rewrite_due_at"] = ""
    elif "rewrite_due_at" not in job:
        update["$set"]["rewrite_due_at"] = rewrite_at
    return UpdateOne({"_id": report.key}, update)


def _is_duplicate(exc: DuplicateKeyError | BulkWriteError) -> bool:
    if isinstance(exc, DuplicateKeyError):
        return True
    errors = exc.details.get("writeErrors") or []
    return bool(errors) and all(e.get("code") == 11000 for e in errors)


# --- reads and writes ----------------------------------------------------------------------


class MongoReportsStore(MongoStore):
    """The ReportsStore port on MongoDB: every call goes through the unit's session."""

    async def _by_ids(self, collection: str, ids: Iterable[str]) -> dict[str, Doc]:
        wanted = list(ids)
        if not wanted:
            return {}
        cursor = self._db[collection].find({"_id": {"$in": wanted}}, session=self._session)
        return {d["_id"]: d async for d in cursor}

    async def users(self, uks: Iterable[str]) -> dict[str, UserFacts]:
        """The users' facts (missing users are absent)."""
        docs = await self._by_ids(USERS, uks)
        return {k: user_from_doc(d) for k, d in docs.items()}

    async def weeks(self, keys: Iterable[str]) -> dict[str, WeekFacts]:
        """Weeks' facts by week key (missing weeks are absent)."""
        docs = await self._by_ids(WEEKS, keys)
        return {k: week_from_doc(d) for k, d in docs.items()}

    async def buckets(self, keys: Iterable[str]) -> dict[str, GridBucket]:
        """Grid buckets by bucket key (missing ones are absent)."""
        docs = await self._by_ids(GRIDS, keys)
        return {k: bucket_from_doc(d) for k, d in docs.items()}

    async def buckets_of(self, uks: Iterable[str], up_to_week: str) -> dict[str, list[GridBucket]]:
        """Every grid bucket of these users up to a week, by user key."""
        out: dict[str, list[GridBucket]] = {}
        # The week is checked here: an `$in` followed by another predicate of the index makes
        # the server used here scan every tenant's buckets (docs/benchmarks.md).
        for doc in await find_in(self._db[GRIDS], "uk", list(uks), session=self._session):
            if doc["week"] <= up_to_week:
                out.setdefault(doc["uk"], []).append(bucket_from_doc(doc))
        return out

    async def jobs(self, keys: Iterable[str]) -> dict[str, ReportJob]:
        """Report jobs by key (missing ones are absent)."""
        docs = await self._by_ids(JOBS, keys)
        return {k: job_from_doc(d) for k, d in docs.items()}

    async def open_jobs(self, uks: Iterable[str]) -> dict[str, ReportJob]:
        """Report jobs of these users that have no report yet."""
        # By `open_by_user` (state, then the `$in`): with the `$in` first and the state after it,
        # the server used here scans every tenant's jobs (docs/benchmarks.md).
        found = await find_in(
            self._db[JOBS], "uk", list(uks), where={"state": OPEN}, session=self._session
        )
        return {d["_id"]: job_from_doc(d) for d in found}

    async def save_facts(
        self,
        users: Mapping[str, UserFacts],
        weeks: Mapping[str, WeekFacts],
        buckets: Mapping[str, GridBucket],
        jobs: Mapping[str, ReportJob],
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
                    ReplaceOne({"_id": k}, week_to_doc(owner_of(k), w), upsert=True)
                    for k, w in weeks.items()
                ],
            ),
            (
                GRIDS,
                [
                    ReplaceOne({"_id": k}, bucket_to_doc(owner_of(k), b), upsert=True)
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
                        {
                            "$set": job_fields(j),
                            "$setOnInsert": {"state": OPEN, "claim_expires": NEVER},
                        },
                        upsert=True,
                    )
                    for k, j in jobs.items()
                ],
            ),
        ]
        for collection, ops in writes:
            if ops:
                await self._db[collection].bulk_write(ops, ordered=False, session=self._session)

    async def _fold_versions(self, keys: Iterable[str]) -> dict[str, int]:
        wanted = list(keys)
        cursor = self._db[WEEKS].find(
            {"_id": {"$in": wanted}}, {"fold_version": 1}, session=self._session
        )
        return {d["_id"]: int(d.get("fold_version", 0)) async for d in cursor}

    async def _close_jobs(
        self, kept: Sequence[Report], jobs: Mapping[str, Doc], rewrite_at: datetime
    ) -> None:
        # The fold writes a claimed or done job when it changes the week, and this writes it
        # too: the two transactions conflict, so one of them sees the other's version.
        versions = await self._fold_versions(r.key for r in kept)
        ops = [_close(r, jobs[r.key], versions.get(r.key, 0), rewrite_at) for r in kept]
        await self._db[JOBS].bulk_write(ops, ordered=False, session=self._session)

    async def add_reports(self, reports: Sequence[Report], rewrite_at: datetime) -> list[Report]:
        """Insert the reports (a unique `_id` each) and mark their jobs done; the ones stored.

        A report whose job is gone is not stored: its user was erased while it was written
        (reading the job here makes the erasure's delete of it conflict with this transaction).
        """
        jobs = await self._by_ids(JOBS, (r.key for r in reports))
        kept = [r for r in reports if r.key in jobs]
        if not kept:
            return []
        try:
            await self._db[REPORTS].insert_many(
                [report_to_doc(r) for r in kept], session=self._session
            )
        except (DuplicateKeyError, BulkWriteError) as exc:
            if _is_duplicate(exc):
                raise ReportExists("a report of these weeks is already stored") from exc
            raise
        await self._close_jobs(kept, jobs, rewrite_at)
        return kept

    async def rewrite_reports(
        self, reports: Sequence[Report], token: str, rewrite_at: datetime
    ) -> list[Report]:
        """Replace the reports whose job this claim still holds, and close the claims."""
        jobs = await self._by_ids(JOBS, (r.key for r in reports))
        # A claim that ran out was taken over: the other writer stores its own rewrite.
        kept = [r for r in reports if jobs.get(r.key, {}).get("claim_owner") == token]
        if not kept:
            return []
        await self._db[REPORTS].bulk_write(
            [ReplaceOne({"_id": r.key}, report_to_doc(r)) for r in kept],
            ordered=False,
            session=self._session,
        )
        await self._close_jobs(kept, jobs, rewrite_at)
        return kept

    async def reports_of(self, keys: Iterable[str]) -> dict[str, Report]:
        """Stored reports by week key."""
        docs = await self._by_ids(REPORTS, keys)
        return {k: report_from_doc(d) for k, d in docs.items()}

    async def written(self, keys: Iterable[str]) -> set[str]:
        """The week keys whose job is done or claimed (a report is stored or being written)."""
        wanted = list(keys)
        if not wanted:
            return set()
        cursor = self._db[JOBS].find(
            {"_id": {"$in": wanted}}, {"state": 1, "claim_owner": 1}, session=self._session
        )
        return {d["_id"] async for d in cursor if d.get("state") == DONE or "claim_owner" in d}

    async def mark_changed(
        self, keys: Iterable[str], rewrite_at: datetime, bump: Iterable[str]
    ) -> None:
        """Mark the written weeks due for a rewrite; count a version more on `bump` weeks."""
        marks = [UpdateOne({"_id": k}, {"$set": {"rewrite_due_at": rewrite_at}}) for k in keys]
        if marks:
            await self._db[JOBS].bulk_write(marks, ordered=False, session=self._session)
        bumps = [UpdateOne({"_id": k}, {"$inc": {"fold_version": 1}}) for k in bump]
        if bumps:
            await self._db[WEEKS].bulk_write(bumps, ordered=False, session=self._session)

    async def report(self, owner: Owner, week: str) -> Report | None:
        """The owner's report of a week, or None."""
        doc = await self._db[REPORTS].find_one(
            {"_id": week_key(owner.key, week), "tenant_id": owner.tenant_id},
            session=self._session,
        )
        return report_from_doc(doc) if doc is not None else None

    async def reports(self, owner: Owner, limit: int, before: str | None) -> list[Report]:
        """The owner's reports, newest week first."""
        query: Doc = {"tenant_id": owner.tenant_id, "user_id": owner.user_id}
        if before is not None:
            query["week"] = {"$lt": before}
        cursor = (
            self._db[REPORTS]
            .find(query, session=self._session)
            .sort("week", DESCENDING)
            .limit(limit)
        )
        return [report_from_doc(d) async for d in cursor]


class MongoJobLeases:
    """The JobLeases port on MongoDB: conditional updates of `report_jobs` rows."""

    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self._jobs = db[JOBS]

    async def claim_due(
        self, now: datetime, lease: timedelta, limit: int, token: str
    ) -> tuple[bool, list[ReportJob]]:
        """Claim up to `limit` due rows: (whether any was due and free, the ones won).

        The due open rows are read by `(state, active, due_at)`, a page at a time, and the free
        ones (claim expired) picked here: `claim_expires` in the query, outside that index,
        makes the server used here scan every tenant's jobs (49 ms among 20,000, 1 ms without).
        """
        due: Doc = {"state": OPEN, "active": True, "due_at": {"$lte": now}}
        ids: list[str] = []
        async for row in keyset_rows(self._jobs, due, [("due_at", 1), ("_id", 1)], limit, _DUE):
            if utc(row.get("claim_expires", NEVER)) <= now:
                ids.append(row["_id"])
                if len(ids) == limit:
                    break
        if not ids:
            return False, []
        # Each row is claimed by a conditional update of its own: of two concurrent claims
        # only one still matches it.
        await self._jobs.bulk_write(
            [UpdateOne({"_id": i, **_claimable(now)}, _claim(token, now, lease)) for i in ids],
            ordered=False,
        )
        claimed = [
            d for d in await find_in(self._jobs, "_id", ids) if d.get("claim_owner") == token
        ]
        return True, [job_from_doc(d) for d in claimed]

    async def claim(self, key: str, now: datetime, lease: timedelta, token: str) -> bool:
        """Claim one open row if its claim is free."""
        won = await self._jobs.find_one_and_update(
            {"_id": key, **_claimable(now)}, _claim(token, now, lease)
        )
        return won is not None

    async def finish(self, keys: Sequence[str]) -> None:
        """Mark these rows done (outside any transaction)."""
        if keys:
            await self._jobs.bulk_write(_finish(keys), ordered=False)

    async def claim_rewrites(
        self, now: datetime, lease: timedelta, limit: int, token: str
    ) -> list[ReportJob]:
        """Claim due rewrites one conditional update at a time (earliest due first): only the
        rows that carry the marker are read (sparse index `rewrite_due`), each claimed by id
        while it is still free. (The server used here ignores a partial index and scans every
        job for this read, 194 ms among 20,000; the sparse one answers in 2 ms.)"""
        won: list[ReportJob] = []
        due: Doc = {"rewrite_due_at": {"$lte": now}}
        order = [("rewrite_due_at", 1), ("_id", 1)]
        async for row in keyset_rows(self._jobs, due, order, limit, _DUE):
            doc = await self._jobs.find_one_and_update(
                {"_id": row["_id"], **_rewritable(now)}, _claim(token, now, lease)
            )
            if doc is not None:
                won.append(job_from_doc(doc))
                if len(won) == limit:
                    break
        return won

    async def claim_rewrite(self, key: str, now: datetime, lease: timedelta, token: str) -> bool:
        """Claim one written row for a rewrite now, if its claim is free."""
        won = await self._jobs.find_one_and_update(
            {"_id": key, **_rewritable(now)}, _claim(token, now, lease)
        )
        return won is not None


def cache_id(tenant_id: str, key: str) -> str:
    """The `_id` of a tenant's cache row: the tenant first, so no key is shared by two tenants."""
    return compose_key(tenant_id, key)


class MongoSummaryCache:
    """The SummaryCache port on MongoDB: `llm_cache` rows under a per-tenant unique `_id`."""

    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self._rows = db[LLM_CACHE]

    async def find(self, tenant_id: str, key: str) -> CachedCall | None:
        """The tenant's row for this prompt key, or None."""
        doc = await self._rows.find_one({"_id": cache_id(tenant_id, key), "tenant_id": tenant_id})
        if doc is None:
            return None
        summary = doc.get("summary")
        return CachedCall(
            done=doc.get("state") == "done",
            outcome=cast(Outcome | None, doc.get("outcome")),
            summary=Summary.model_validate(summary) if summary else None,
        )

    async def used(self, owner: Owner, key: str) -> None:
        """Note that the owner's report uses the tenant's row for this key."""
        await self._rows.update_one(
            {"_id": cache_id(owner.tenant_id, key), "tenant_id": owner.tenant_id},
            {"$addToSet": {"used_by": user_mark(owner.tenant_id, owner.user_id)}},
        )

    async def begin(self, owner: Owner, key: str, now: datetime) -> bool:
        """Insert the row as `calling` (used by the owner); False when the unique `_id` is
        taken."""
        tenant_id = owner.tenant_id
        try:
            await self._rows.insert_one(
                {
                    "_id": cache_id(tenant_id, key),
                    "tenant_id": tenant_id,
                    "used_by": [user_mark(tenant_id, owner.user_id)],
                    "key": key,
                    "state": "calling",
                    "started_at": now,
                    "expires_at": now + CACHE_RETENTION,
                }
            )
        except DuplicateKeyError:
            return False
        return True

    async def finish(
        self,
        tenant_id: str,
        key: str,
        outcome: Outcome,
        summary: Summary | None,
        detail: str,
        now: datetime,
    ) -> None:
        """Record the call's outcome (and the summary when it was accepted)."""
        await self._rows.update_one(
            {"_id": cache_id(tenant_id, key), "tenant_id": tenant_id},
            {
                "$set": {
                    "state": "done",
                    "outcome": outcome,
                    "summary": summary.model_dump() if summary else None,
                    "detail": detail,
                    "finished_at": now,
                }
            },
        )

    async def abandon(self, tenant_id: str, key: str) -> None:
        """Delete a row still `calling` whose call was never made."""
        await self._rows.delete_one(
            {"_id": cache_id(tenant_id, key), "tenant_id": tenant_id, "state": "calling"}
        )


class MongoLlmBudget:
    """The LlmBudget port on MongoDB: one `llm_budget` row per tenant and month.

    A call is taken by one conditional update (`calls < cap` → `calls + 1`), atomic on the
    server, so however many workers spend at once the count never passes the cap.
    """

    def __init__(self, db: AsyncDatabase[Doc], cap: int) -> None:
        self._rows = db[LLM_BUDGET]
        self._cap = cap

    async def spend(self, tenant_id: str, at: datetime) -> bool:
        """Take one call from the tenant's month; False (and counted as refused) past the cap."""
        month = budget_month(at)
        row = compose_key(tenant_id, month)
        on_insert = {"tenant_id": tenant_id, "month": month, "expires_at": at + BUDGET_RETENTION}
        if self._cap > 0:
            within: Doc = {"_id": row, "calls": {"$lt": self._cap}}
            take: Doc = {"$inc": {"calls": 1}, "$set": {"updated_at": at}}
            try:
                await self._rows.update_one(
                    within, {**take, "$setOnInsert": {**on_insert, "refused": 0}}, upsert=True
                )
                return True
            except DuplicateKeyError:
                # The month's row exists: the cap is reached, or a racing writer created it.
                pass
            if (await self._rows.update_one(within, take)).modified_count == 1:
                return True
        await self._count_refused(row, on_insert, at)
        return False

    async def _count_refused(self, row: str, on_insert: Doc, at: datetime) -> None:
        refuse: Doc = {"$inc": {"refused": 1}, "$set": {"updated_at": at}}
        try:
            await self._rows.update_one(
                {"_id": row}, {**refuse, "$setOnInsert": {**on_insert, "calls": 0}}, upsert=True
            )
        except DuplicateKeyError:
            await self._rows.update_one({"_id": row}, refuse)


def unit_of_work(
    client: AsyncMongoClient[Doc], db: AsyncDatabase[Doc]
) -> MongoUnitOfWork[MongoReportsStore]:
    """The reports unit of work on MongoDB (its events go to the outbox as `reports`)."""
    return MongoUnitOfWork(client, db, SOURCE, MongoReportsStore)
