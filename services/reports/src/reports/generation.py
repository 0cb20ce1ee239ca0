"""Writing reports: claim a user-week, derive its fold, write the summary, store it once.

- A user-week is claimed with a conditional update of its `report_jobs` row (a lease), so
  concurrent schedulers and on-demand requests never work on the same one at once.
- The fold is read in one snapshot transaction; the summary (an LLM call) is written outside any
  transaction; the report, its job state and `report.generated` are stored in one transaction
  (outbox). The report's unique `_id` makes a second store fail, so even a lease that ran out
  mid-way can never give two reports or two events.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import Counter
from pymongo import DESCENDING, AsyncMongoClient, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from mandaact_common.domain.calendar import parse_iso_week, today_in
from mandaact_common.mongo import Doc, in_transaction
from mandaact_common.outbox import Transaction, transact
from mandaact_common.problems import Conflict, NotFound, RuleBroken
from mandaact_contracts import topics
from mandaact_contracts.events import ReportGenerated
from reports.domain.facts import UserFacts, WeekFacts
from reports.domain.prompt import PROMPT_VERSION
from reports.domain.stats import WeeklyStats, context_weeks, has_monthly_target, weekly_stats
from reports.llm import SummaryWriter, Written
from reports.settings import Settings
from reports.store.mongo import (
    DONE,
    JOBS,
    NEVER,
    OPEN,
    REPORTS,
    FoldStore,
    user_key,
    week_key,
)

log = logging.getLogger(__name__)

SOURCE = "reports"
REPORT_NAMESPACE = uuid.UUID("3b0f5d0e-7f5e-4a57-9a43-6f2c1c0d4e21")

Clock = Callable[[], datetime]

REPORTS_STORED = Counter(
    "mandaact_reports_stored_total", "Weekly reports stored", ["trigger", "generator"]
)


def system_clock() -> datetime:
    """The real time (UTC)."""
    return datetime.now(UTC)


def report_id(uk: str, week: str) -> str:
    """A report's public id: the same for a user-week however often it is attempted."""
    return str(uuid.uuid5(REPORT_NAMESPACE, week_key(uk, week)))


class WeekNotFinished(RuleBroken):
    """Only finished weeks have a report."""

    slug = "week-not-finished"


class NoReport(NotFound):
    """No report exists (or can exist: no check-in that week)."""


class GenerationInProgress(Conflict):
    """Another worker is writing this report right now."""


@dataclass(frozen=True, slots=True)
class Job:
    """One claimed user-week."""

    key: str
    uk: str
    tenant_id: str
    user_id: str
    week: str

    @classmethod
    def from_doc(cls, doc: Doc) -> Job:
        """A job from its `report_jobs` row."""
        return cls(doc["_id"], doc["uk"], doc["tenant_id"], doc["user_id"], doc["week"])


@dataclass(frozen=True, slots=True)
class _Draft:
    job: Job
    stats: WeeklyStats
    user: UserFacts


def _claimable(now: datetime) -> Doc:
    """An open job whose claim (if any) has expired."""
    return {"state": OPEN, "claim_expires": {"$lte": now}}


def _finish(keys: Sequence[str]) -> list[UpdateOne]:
    return [
        UpdateOne(
            {"_id": k},
            {"$set": {"state": DONE, "claim_expires": NEVER}, "$unset": {"claim_owner": ""}},
        )
        for k in keys
    ]


class ReportGenerator:
    """Generates reports for due or requested user-weeks (safe to run in many processes)."""

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        client: AsyncMongoClient[Doc],
        db: AsyncDatabase[Doc],
        writer: SummaryWriter,
    ) -> ReportGenerator:
        """A generator with the settings' lease, chunk, concurrency and wait."""
        return cls(
            client,
            db,
            writer,
            lease=timedelta(seconds=settings.claim_lease_seconds),
            chunk=settings.scheduler_chunk,
            concurrency=settings.llm_concurrency,
            wait_seconds=settings.llm_deadline_seconds + 5.0,
        )

    def __init__(
        self,
        client: AsyncMongoClient[Doc],
        db: AsyncDatabase[Doc],
        writer: SummaryWriter,
        *,
        lease: timedelta = timedelta(minutes=5),
        chunk: int = 200,
        concurrency: int = 4,
        wait_seconds: float = 30.0,
    ) -> None:
        self._client = client
        self._db = db
        self._writer = writer
        self._lease = lease
        self._chunk = chunk
        self._limit = asyncio.Semaphore(concurrency)
        self._wait_seconds = wait_seconds

    async def aclose(self) -> None:
        """Release the summary writer's HTTP client."""
        await self._writer.aclose()

    # --- scheduled ---------------------------------------------------------------------------

    async def run_due(self, now: datetime) -> int:
        """Write every report due at `now` that no one else is writing; return how many."""
        stored = 0
        while True:
            found, jobs = await self._claim_due(now)
            if not found:
                return stored
            # Losing every row of a chunk to another worker is no reason to stop: look again.
            if jobs:
                stored += len(await self._produce(jobs, now, "schedule"))

    async def _claim_due(self, now: datetime) -> tuple[bool, list[Job]]:
        """Claim up to a chunk of due rows: (whether any was due and free, the ones won)."""
        candidates = (
            await self._db[JOBS]
            .find({**_claimable(now), "active": True, "due_at": {"$lte": now}}, {"_id": 1})
            .sort("due_at", 1)
            .limit(self._chunk)
            .to_list()
        )
        if not candidates:
            return False, []
        ids = [c["_id"] for c in candidates]
        token = uuid.uuid4().hex
        # Each row is claimed by a conditional update of its own: of two concurrent claims
        # only one still matches it.
        claim = {"$set": {"claim_owner": token, "claim_expires": now + self._lease}}
        await self._db[JOBS].bulk_write(
            [UpdateOne({"_id": i, **_claimable(now)}, claim) for i in ids], ordered=False
        )
        claimed = await self._db[JOBS].find({"_id": {"$in": ids}, "claim_owner": token}).to_list()
        return True, [Job.from_doc(d) for d in claimed]

    # --- on demand ---------------------------------------------------------------------------

    async def generate(
        self, tenant_id: str, user_id: str, week: str, now: datetime
    ) -> tuple[Doc, bool]:
        """The report of a finished week, and whether this call stored it."""
        # Raises WeekNotFinished, NoReport (no check-in that week) or GenerationInProgress.
        uk = user_key(tenant_id, user_id)
        key = week_key(uk, week)
        existing = await self.find(tenant_id, user_id, week)
        if existing is not None:
            return existing, False
        _, sunday = parse_iso_week(week)
        user = (await FoldStore(self._db, None).users([uk])).get(uk) or UserFacts(
            tenant_id, user_id
        )
        today = today_in(user.effective_timezone, now)
        if sunday >= today:
            raise WeekNotFinished(
                f"{week} is not finished yet in your timezone ({user.effective_timezone}):"
                " a weekly report can be generated from the Monday after it",
                errors=[{"field": "path.iso_week", "message": "week not finished"}],
            )
        job = await self._db[JOBS].find_one({"_id": key})
        if job is None or not job.get("active"):
            raise NoReport(f"no check-ins in {week}, so there is no report for it")
        claimed = await self._db[JOBS].find_one_and_update(
            {"_id": key, **_claimable(now)},
            {"$set": {"claim_owner": uuid.uuid4().hex, "claim_expires": now + self._lease}},
        )
        if claimed is None:
            return await self._await_report(tenant_id, user_id, week), False
        stored = await self._produce([Job.from_doc(job)], now, "request")
        report = await self.find(tenant_id, user_id, week)
        if report is None:
            raise NoReport(f"no check-ins in {week}, so there is no report for it")
        return report, key in stored

    async def _await_report(self, tenant_id: str, user_id: str, week: str) -> Doc:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._wait_seconds
        while loop.time() < deadline:
            report = await self.find(tenant_id, user_id, week)
            if report is not None:
                return report
            await asyncio.sleep(0.2)
        raise GenerationInProgress(f"the report for {week} is being written; try again shortly")

    # --- reads -------------------------------------------------------------------------------

    async def find(self, tenant_id: str, user_id: str, week: str) -> Doc | None:
        """One user's stored report of a week."""
        return await self._db[REPORTS].find_one(
            {"_id": week_key(user_key(tenant_id, user_id), week), "tenant_id": tenant_id}
        )

    async def list_reports(
        self, tenant_id: str, user_id: str, limit: int, before: str | None
    ) -> list[Doc]:
        """One user's reports, newest week first."""
        query: dict[str, Any] = {"tenant_id": tenant_id, "user_id": user_id}
        if before is not None:
            query["week"] = {"$lt": before}
        cursor = self._db[REPORTS].find(query).sort("week", DESCENDING).limit(limit)
        return await cursor.to_list()

    # --- the work ----------------------------------------------------------------------------

    async def _produce(self, jobs: Sequence[Job], now: datetime, trigger: str) -> set[str]:
        """Write and store the reports of claimed jobs; return the keys stored by this call."""
        drafts = await self._drafts(jobs)
        empty = [j.key for j in jobs if j.key not in {d.job.key for d in drafts}]
        if empty:
            # The fold keeps `active` in step with the check-ins, so this is a race with an
            # undo: the claim is left to expire, and the week is looked at again after it.
            log.warning("no check-ins left in %d claimed week(s): %s", len(empty), empty[:5])
        written = await asyncio.gather(*(self._write(d) for d in drafts))
        docs = [self._report_doc(d, w, now) for d, w in zip(drafts, written, strict=True)]
        stored = await self._store(docs)
        for doc in docs:
            if doc["_id"] in stored:
                REPORTS_STORED.labels(trigger, doc["generator"]).inc()
        return stored

    async def _write(self, draft: _Draft) -> Written:
        async with self._limit:
            return await self._writer.write(
                draft.stats, draft.job.week, draft.user.effective_locale
            )

    async def _drafts(self, jobs: Sequence[Job]) -> list[_Draft]:
        """The folds of the jobs' weeks, read in one snapshot."""

        async def read(session: AsyncClientSession) -> list[_Draft]:
            store = FoldStore(self._db, session)
            uks = {j.uk for j in jobs}
            users = await store.users(uks)
            buckets = await store.buckets_of(uks, max(j.week for j in jobs))
            wanted = {
                week_key(j.uk, w): (j.uk, w)
                for j in jobs
                for w in context_weeks(j.week, has_monthly_target(buckets.get(j.uk, [])))
            }
            weeks = await store.weeks(wanted)
            out: list[_Draft] = []
            for job in jobs:
                user = users.get(job.uk) or UserFacts(job.tenant_id, job.user_id)
                own: dict[str, WeekFacts] = {
                    w: weeks[k] for k, (uk, w) in wanted.items() if uk == job.uk and k in weeks
                }
                stats = weekly_stats(job.week, own, buckets.get(job.uk, []), user)
                if stats.checkins_total:
                    out.append(_Draft(job, stats, user))
            return out

        return await in_transaction(self._client, read)

    def _report_doc(self, draft: _Draft, written: Written, now: datetime) -> Doc:
        job = draft.job
        return {
            "_id": job.key,
            "report_id": report_id(job.uk, job.week),
            "uk": job.uk,
            "tenant_id": job.tenant_id,
            "user_id": job.user_id,
            "week": job.week,
            "stats": draft.stats.model_dump(mode="json"),
            "summary": written.summary.model_dump(mode="json"),
            "generator": written.generator,
            "llm_outcome": written.outcome,
            "locale": draft.user.effective_locale,
            "prompt_version": PROMPT_VERSION,
            "generated_at": now,
        }

    async def _store(self, docs: list[Doc]) -> set[str]:
        """Store reports with their job state and event; return the keys stored."""
        # One transaction for the lot, or one per report when another writer got there first.
        if not docs:
            return set()
        try:
            await self._store_together(docs)
        except (DuplicateKeyError, BulkWriteError):
            stored: set[str] = set()
            for doc in docs:
                try:
                    await self._store_together([doc])
                except (DuplicateKeyError, BulkWriteError):
                    await self._mark_done([doc["_id"]])
                else:
                    stored.add(doc["_id"])
            return stored
        return {d["_id"] for d in docs}

    async def _store_together(self, docs: list[Doc]) -> None:
        async def work(tx: Transaction) -> None:
            await self._store_in(tx, docs)

        await transact(self._client, self._db, SOURCE, work)

    async def _store_in(self, tx: Transaction, docs: list[Doc]) -> None:
        await tx.db[REPORTS].insert_many(docs, session=tx.session)
        await tx.db[JOBS].bulk_write(
            _finish([d["_id"] for d in docs]), ordered=False, session=tx.session
        )
        for d in docs:
            tx.emit(
                topics.REPORT_GENERATED,
                ReportGenerated(
                    tenant_id=d["tenant_id"],
                    user_id=d["user_id"],
                    report_id=d["report_id"],
                    week=d["week"],
                    generator=d["generator"],
                    generated_at=d["generated_at"],
                ),
                subject=d["report_id"],
            )

    async def _mark_done(self, keys: list[str]) -> None:
        await self._db[JOBS].bulk_write(_finish(keys), ordered=False)
