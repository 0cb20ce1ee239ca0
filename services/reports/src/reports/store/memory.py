"""An in-memory adapter of every store port, for fast unit tests of the use cases."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TypeVar

from mandaact_common import unit_of_work
from mandaact_common.domain.owner import Owner
from mandaact_common.keys import owner_of
from reports.domain.errors import ReportExists
from reports.domain.facts import GridBucket, UserFacts, WeekFacts
from reports.domain.report import Outcome, Report, ReportJob, budget_month
from reports.domain.summary import Summary
from reports.store.ports import CachedCall, week_key

V = TypeVar("V")


@dataclass
class JobRow:
    """A report job with the scheduler's side of it: done, who claims it until when, and when
    its report is due for a rewrite."""

    job: ReportJob
    done: bool = False
    claim_owner: str | None = None
    claim_expires: datetime | None = None
    rewrite_due_at: datetime | None = None

    def free(self, now: datetime) -> bool:
        """Not claimed, or its claim has expired."""
        return self.claim_expires is None or self.claim_expires <= now

    def claimable(self, now: datetime) -> bool:
        """Open, and not claimed or its claim has expired."""
        return not self.done and self.free(now)

    def close(self, stale: bool = False, rewrite_at: datetime | None = None) -> None:
        """The report is stored: done, and no one claims it any more; still due for a rewrite
        (at the marker it has, else `rewrite_at`) when it is `stale`."""
        self.done, self.claim_owner, self.claim_expires = True, None, None
        if not stale:
            self.rewrite_due_at = None
        elif self.rewrite_due_at is None:
            self.rewrite_due_at = rewrite_at


@dataclass
class Tables(unit_of_work.MemoryTables):
    """Everything the in-memory store holds, by the keys the Mongo adapter files it under."""

    users: dict[str, UserFacts] = field(default_factory=dict)
    weeks: dict[str, WeekFacts] = field(default_factory=dict)
    buckets: dict[str, GridBucket] = field(default_factory=dict)
    jobs: dict[str, JobRow] = field(default_factory=dict)
    reports: dict[str, Report] = field(default_factory=dict)


def _copies(table: Mapping[str, V], keys: Iterable[str]) -> dict[str, V]:
    # Callers may change what they read: they get copies, as from a real database.
    return {k: copy.deepcopy(table[k]) for k in keys if k in table}


class InMemoryReportsStore(unit_of_work.InMemoryStore[Tables]):
    """The ReportsStore port over dictionaries (a private copy per unit of work)."""

    async def users(self, uks: Iterable[str]) -> dict[str, UserFacts]:
        """The users' facts by user key."""
        return _copies(self.tables.users, uks)

    async def weeks(self, keys: Iterable[str]) -> dict[str, WeekFacts]:
        """Weeks' facts by week key."""
        return _copies(self.tables.weeks, keys)

    async def buckets(self, keys: Iterable[str]) -> dict[str, GridBucket]:
        """Grid buckets by bucket key."""
        return _copies(self.tables.buckets, keys)

    async def buckets_of(self, uks: Iterable[str], up_to_week: str) -> dict[str, list[GridBucket]]:
        """Every grid bucket of these users up to a week, by user key."""
        wanted = set(uks)
        out: dict[str, list[GridBucket]] = {}
        for key, bucket in self.tables.buckets.items():
            uk = owner_of(key)
            if uk in wanted and bucket.week <= up_to_week:
                out.setdefault(uk, []).append(copy.deepcopy(bucket))
        return out

    async def jobs(self, keys: Iterable[str]) -> dict[str, ReportJob]:
        """Report jobs by week key."""
        return {k: self.tables.jobs[k].job for k in keys if k in self.tables.jobs}

    async def open_jobs(self, uks: Iterable[str]) -> dict[str, ReportJob]:
        """The report jobs of these users that have no report yet."""
        wanted = set(uks)
        return {
            k: row.job
            for k, row in self.tables.jobs.items()
            if not row.done and row.job.owner.key in wanted
        }

    async def save_facts(
        self,
        users: Mapping[str, UserFacts],
        weeks: Mapping[str, WeekFacts],
        buckets: Mapping[str, GridBucket],
        jobs: Mapping[str, ReportJob],
    ) -> None:
        """Store the changed facts and the fold's side of the jobs."""
        self.tables.users.update(copy.deepcopy(dict(users)))
        self.tables.weeks.update(copy.deepcopy(dict(weeks)))
        self.tables.buckets.update(copy.deepcopy(dict(buckets)))
        for key, job in jobs.items():
            row = self.tables.jobs.get(key)
            self.tables.jobs[key] = JobRow(job) if row is None else replace(row, job=job)

    def _close(self, report: Report, rewrite_at: datetime) -> None:
        row = self.tables.jobs.get(report.key)
        week = self.tables.weeks.get(report.key)
        if row is not None:
            current = week.fold_version if week is not None else 0
            row.close(current > report.fold_version, rewrite_at)

    async def add_reports(self, reports: Sequence[Report], rewrite_at: datetime) -> list[Report]:
        """Store new reports and close their jobs; ReportExists if one is already stored."""
        if any(r.key in self.tables.reports for r in reports):
            raise ReportExists("a report of these weeks is already stored")
        for report in reports:
            self.tables.reports[report.key] = report
            self._close(report, rewrite_at)
        return list(reports)

    async def rewrite_reports(
        self, reports: Sequence[Report], token: str, rewrite_at: datetime
    ) -> list[Report]:
        """Replace the reports whose job this claim still holds, and close the claims."""
        kept = []
        for report in reports:
            row = self.tables.jobs.get(report.key)
            if row is not None and row.claim_owner == token:
                self.tables.reports[report.key] = report
                self._close(report, rewrite_at)
                kept.append(report)
        return kept

    async def reports_of(self, keys: Iterable[str]) -> dict[str, Report]:
        """Stored reports by week key."""
        return {k: self.tables.reports[k] for k in keys if k in self.tables.reports}

    async def written(self, keys: Iterable[str]) -> set[str]:
        """The week keys whose job is done or claimed."""
        rows = self.tables.jobs
        return {k for k in keys if k in rows and (rows[k].done or rows[k].claim_owner)}

    async def mark_changed(
        self, keys: Iterable[str], rewrite_at: datetime, bump: Iterable[str]
    ) -> None:
        """Mark the written weeks due for a rewrite; count a version more on `bump` weeks."""
        for key in keys:
            self.tables.jobs[key].rewrite_due_at = rewrite_at
        for key in bump:
            if key in self.tables.weeks:
                self.tables.weeks[key].fold_version += 1

    async def report(self, owner: Owner, week: str) -> Report | None:
        """The owner's report of a week, or None."""
        return self.tables.reports.get(week_key(owner.key, week))

    async def reports(self, owner: Owner, limit: int, before: str | None) -> list[Report]:
        """The owner's reports, newest week first."""
        mine = [
            r
            for r in self.tables.reports.values()
            if r.owner == owner and (before is None or r.week < before)
        ]
        return sorted(mine, key=lambda r: r.week, reverse=True)[:limit]


InMemoryReportsUnitOfWork = unit_of_work.InMemoryUnitOfWork[Tables, InMemoryReportsStore]


def memory_unit_of_work(tables: Tables | None = None) -> InMemoryReportsUnitOfWork:
    """The reports unit of work in memory (for unit tests of the use cases)."""
    return unit_of_work.InMemoryUnitOfWork(tables or Tables(), InMemoryReportsStore)


class InMemoryJobLeases:
    """The JobLeases port over the jobs of an in-memory unit of work's committed tables."""

    def __init__(self, uow: InMemoryReportsUnitOfWork) -> None:
        self._uow = uow

    def _rows(self) -> dict[str, JobRow]:
        # A unit replaces the tables when it commits: always look at the current ones.
        return self._uow.tables.jobs

    async def claim_due(
        self, now: datetime, lease: timedelta, limit: int, token: str
    ) -> tuple[bool, list[ReportJob]]:
        """Claim up to `limit` due, free jobs, the earliest due first."""
        due = sorted(
            (r for r in self._rows().values() if r.claimable(now) and r.job.active),
            key=lambda r: r.job.due_at,
        )
        due = [r for r in due if r.job.due_at <= now][:limit]
        for row in due:
            row.claim_owner, row.claim_expires = token, now + lease
        return bool(due), [r.job for r in due]

    async def claim(self, key: str, now: datetime, lease: timedelta, token: str) -> bool:
        """Claim one open job if it is free."""
        row = self._rows().get(key)
        if row is None or not row.claimable(now):
            return False
        row.claim_owner, row.claim_expires = token, now + lease
        return True

    async def finish(self, keys: Sequence[str]) -> None:
        """Close these jobs."""
        for key in keys:
            row = self._rows().get(key)
            if row is not None:
                row.close(stale=row.rewrite_due_at is not None, rewrite_at=row.rewrite_due_at)

    async def claim_rewrites(
        self, now: datetime, lease: timedelta, limit: int, token: str
    ) -> list[ReportJob]:
        """Claim up to `limit` written jobs whose rewrite is due and free, earliest first."""
        due = sorted(
            (
                r
                for r in self._rows().values()
                if r.done and r.free(now) and r.rewrite_due_at is not None
                if r.rewrite_due_at <= now
            ),
            key=lambda r: r.rewrite_due_at or now,
        )[:limit]
        for row in due:
            row.claim_owner, row.claim_expires = token, now + lease
        return [r.job for r in due]

    async def claim_rewrite(self, key: str, now: datetime, lease: timedelta, token: str) -> bool:
        """Claim one written job for a rewrite now, if it is free."""
        row = self._rows().get(key)
        if row is None or not row.done or not row.free(now):
            return False
        row.claim_owner, row.claim_expires = token, now + lease
        return True


@dataclass
class InMemorySummaryCache:
    """The SummaryCache port over a dictionary keyed by (tenant, prompt key)."""

    rows: dict[tuple[str, str], CachedCall] = field(default_factory=dict)

    async def find(self, tenant_id: str, key: str) -> CachedCall | None:
        """The tenant's call for this prompt key, or None."""
        return self.rows.get((tenant_id, key))

    async def used(self, owner: Owner, key: str) -> None:
        """Nothing to note here (no erasure runs on this fake)."""

    async def begin(self, owner: Owner, key: str, now: datetime) -> bool:
        """Claim the call; False when the tenant already has one for this key."""
        tenant_id = owner.tenant_id
        if (tenant_id, key) in self.rows:
            return False
        self.rows[(tenant_id, key)] = CachedCall(done=False)
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
        """Record the call's outcome."""
        self.rows[(tenant_id, key)] = CachedCall(done=True, outcome=outcome, summary=summary)

    async def abandon(self, tenant_id: str, key: str) -> None:
        """Drop a claim whose call was never made."""
        row = self.rows.get((tenant_id, key))
        if row is not None and not row.done:
            del self.rows[(tenant_id, key)]


@dataclass
class InMemoryLlmBudget:
    """The LlmBudget port over a dictionary of calls per (tenant, month)."""

    cap: int
    calls: dict[tuple[str, str], int] = field(default_factory=dict)
    refused: dict[tuple[str, str], int] = field(default_factory=dict)

    async def spend(self, tenant_id: str, at: datetime) -> bool:
        """Take one call from the tenant's month of `at`, unless the cap is reached."""
        month = (tenant_id, budget_month(at))
        if self.calls.get(month, 0) >= self.cap:
            self.refused[month] = self.refused.get(month, 0) + 1
            return False
        self.calls[month] = self.calls.get(month, 0) + 1
        return True
