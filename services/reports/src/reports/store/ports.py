"""The ports the use cases need: the transactional store, the job leases, the summary writer,
and what the LLM writer keeps: its per-tenant cache of calls and the tenants' monthly budget.

Facts are filed under the shared key scheme (`mandaact_common.keys`): a user under the owner
key, a user-week (its facts, report job and report) and a grid's bucket under keys after it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from mandaact_common import unit_of_work
from mandaact_common.domain.owner import Owner
from mandaact_common.idempotency import IdempotentRequest, StoredResponse
from mandaact_common.keys import owner_key, sub_key
from mandaact_common.outbox import Transaction
from mandaact_contracts.events import EventPayload
from reports.domain.facts import GridBucket, Locale, UserFacts, WeekFacts
from reports.domain.report import Outcome, Report, ReportJob, Written
from reports.domain.stats import WeeklyStats
from reports.domain.summary import Summary


def user_key(tenant_id: str, user_id: str) -> str:
    """The key of a user's facts."""
    return owner_key(tenant_id, user_id)


def week_key(uk: str, week: str) -> str:
    """The key of a user's week: its facts, its report job and its report."""
    return sub_key(uk, week)


def bucket_key(uk: str, grid_id: str, week: str) -> str:
    """The key of a grid's bucket for the week it was changed in."""
    return sub_key(uk, grid_id, week)


class ReportsStore(Protocol):
    """What one unit of work reads and writes: the fold's facts, report jobs and reports."""

    async def users(self, uks: Iterable[str]) -> dict[str, UserFacts]:
        """The users' facts by user key (missing users are absent)."""
        ...

    async def weeks(self, keys: Iterable[str]) -> dict[str, WeekFacts]:
        """Weeks' facts by week key (missing weeks are absent)."""
        ...

    async def buckets(self, keys: Iterable[str]) -> dict[str, GridBucket]:
        """Grid buckets by bucket key (missing ones are absent)."""
        ...

    async def buckets_of(self, uks: Iterable[str], up_to_week: str) -> dict[str, list[GridBucket]]:
        """Every grid bucket of these users up to a week, by user key."""
        ...

    async def jobs(self, keys: Iterable[str]) -> dict[str, ReportJob]:
        """Report jobs by week key (missing ones are absent)."""
        ...

    async def open_jobs(self, uks: Iterable[str]) -> dict[str, ReportJob]:
        """The report jobs of these users that have no report yet, by week key."""
        ...

    async def save_facts(
        self,
        users: Mapping[str, UserFacts],
        weeks: Mapping[str, WeekFacts],
        buckets: Mapping[str, GridBucket],
        jobs: Mapping[str, ReportJob],
    ) -> None:
        """Store the changed facts, and the fold's side of these jobs (their claims stay)."""
        ...

    async def add_reports(self, reports: Sequence[Report], rewrite_at: datetime) -> list[Report]:
        """Store new reports and close their jobs; the ones stored (not those whose job is
        gone: their user was erased); ReportExists if one is already stored. A report whose
        week's fold moved on while it was written is marked for a rewrite at `rewrite_at`."""
        ...

    async def rewrite_reports(
        self, reports: Sequence[Report], token: str, rewrite_at: datetime
    ) -> list[Report]:
        """Replace stored reports whose job this claim (`token`) still holds, close the
        claims; the ones replaced. A fold that moved on meanwhile keeps (or gets, at
        `rewrite_at`) its rewrite marker."""
        ...

    async def reports_of(self, keys: Iterable[str]) -> dict[str, Report]:
        """Stored reports by week key (missing ones are absent)."""
        ...

    async def written(self, keys: Iterable[str]) -> set[str]:
        """The week keys among these whose report is stored or being written (its job is
        done or claimed)."""
        ...

    async def mark_changed(
        self, keys: Iterable[str], rewrite_at: datetime, bump: Iterable[str]
    ) -> None:
        """The folds of these written weeks changed: their reports are due for a rewrite at
        `rewrite_at`; the weeks in `bump` (not saved by this fold) count one more version."""
        ...

    async def report(self, owner: Owner, week: str) -> Report | None:
        """The owner's report of a week, or None."""
        ...

    async def reports(self, owner: Owner, limit: int, before: str | None) -> list[Report]:
        """The owner's reports, newest week first, only weeks before `before` when given."""
        ...

    def emit(self, topic: str, payload: EventPayload, subject: str | None = None) -> None:
        """Record an event, written with this unit of work's changes."""
        ...


class ReportsUnitOfWork(unit_of_work.UnitOfWork[ReportsStore], Protocol):
    """Units over a ReportsStore, the consumer's store, and keys for effects outside units."""

    def store_in(self, tx: Transaction) -> ReportsStore:
        """The store inside the idempotent consumer's transaction."""
        ...

    async def recall(self, request: IdempotentRequest) -> StoredResponse | None:
        """The response stored for an idempotency key, or None."""
        ...

    async def remember(self, request: IdempotentRequest, response: StoredResponse) -> None:
        """Store the response for its key (a response stored first is kept)."""
        ...


class JobLeases(Protocol):
    """Claims on report jobs: each a conditional write of its own, outside any transaction.

    A claim holds until it expires, so of several schedulers (or a request) only one works on
    a user-week at a time, and the claim of a worker that died is taken over after its lease.
    """

    async def claim_due(
        self, now: datetime, lease: timedelta, limit: int, token: str
    ) -> tuple[bool, list[ReportJob]]:
        """Claim up to `limit` due, free jobs: (whether any was due and free, the ones won)."""
        ...

    async def claim(self, key: str, now: datetime, lease: timedelta, token: str) -> bool:
        """Claim one open job if it is free; whether this call won it."""
        ...

    async def finish(self, keys: Sequence[str]) -> None:
        """Close these jobs: their reports are stored."""
        ...

    async def claim_rewrites(
        self, now: datetime, lease: timedelta, limit: int, token: str
    ) -> list[ReportJob]:
        """Claim up to `limit` written jobs whose rewrite is due and free; the ones won."""
        ...

    async def claim_rewrite(self, key: str, now: datetime, lease: timedelta, token: str) -> bool:
        """Claim one written job for a rewrite now (due or not) if it is free; whether won."""
        ...


class SummaryWriter(Protocol):
    """Writes the summary of one user's fold."""

    async def write(self, owner: Owner, stats: WeeklyStats, week: str, locale: Locale) -> Written:
        """Return the owner's summary (never raises for an LLM failure: it falls back)."""
        ...

    async def aclose(self) -> None:
        """Release what the writer holds (its HTTP client)."""
        ...


@dataclass(frozen=True, slots=True)
class CachedCall:
    """A tenant's LLM call for one prompt: still under way, or done with its outcome."""

    done: bool
    outcome: Outcome | None = None
    summary: Summary | None = None


class SummaryCache(Protocol):
    """At most one LLM call per (tenant, prompt): a call is claimed before it is made.

    Every entry belongs to one tenant: a lookup never finds another tenant's entry.
    """

    async def find(self, tenant_id: str, key: str) -> CachedCall | None:
        """The tenant's call for this prompt key, or None."""
        ...

    async def used(self, owner: Owner, key: str) -> None:
        """Note that the owner's report uses the tenant's call for this key (their erasure
        removes the calls their reports used)."""
        ...

    async def begin(self, owner: Owner, key: str, now: datetime) -> bool:
        """Claim the call for this key in the owner's tenant, for the owner's report; False
        when the tenant already has one."""
        ...

    async def finish(
        self,
        tenant_id: str,
        key: str,
        outcome: Outcome,
        summary: Summary | None,
        detail: str,
        now: datetime,
    ) -> None:
        """Record how the claimed call went (and its summary, when accepted)."""
        ...

    async def abandon(self, tenant_id: str, key: str) -> None:
        """Drop a claim whose call was never made (no budget), so a later writer may call."""
        ...


class LlmBudget(Protocol):
    """A tenant's LLM calls per calendar month (UTC), capped; shared by every worker."""

    async def spend(self, tenant_id: str, at: datetime) -> bool:
        """Take one call from the tenant's month of `at`; False (nothing taken) past the cap."""
        ...
