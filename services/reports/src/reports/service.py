"""Use cases of the reports service: fold events into facts, and write, read and list reports.

- The fold runs in the idempotent consumer's transaction: one read and one bulk write per
  collection for the whole batch, and the report jobs' due times kept in step. Each change of
  a week's facts counts a fold version; a change under a report already written marks that
  report due for a rewrite once the fold has been quiet for the settle time (SPEC §12).
- A user-week is claimed through the job leases (a conditional write outside any transaction),
  so concurrent schedulers and on-demand requests never work on the same one at once.
- The fold is read in one snapshot unit; the summary (an LLM call) is written outside any unit;
  the report, its job state and `report.generated` are stored in one unit (outbox). The
  report's unique key makes a second store fail, so even a lease that ran out mid-way can never
  give two reports or two events.
- A rewrite claims the written job the same way, writes the summary again (a new LLM call only
  for a new fold, at most MAX_LLM_CALLS_PER_WEEK per user-week, then the fallback) and
  replaces the report only while its claim still holds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from prometheus_client import Counter

from mandaact_common.clock import Clock, NewId, new_uuid, utc_now
from mandaact_common.domain.calendar import iso_week, local_date, parse_iso_week, today_in, zone
from mandaact_common.domain.owner import Owner
from mandaact_common.domain.pauses import Pause
from mandaact_common.grid_events import placed_actions
from mandaact_common.idempotency import IdempotentRequest, StoredResponse
from mandaact_common.keys import owner_of
from mandaact_contracts import topics
from mandaact_contracts.events import (
    ActionCompleted,
    ActionUncompleted,
    BadgeUnlocked,
    EventPayload,
    GoalChanged,
    LevelReached,
    ReportGenerated,
    StreakChanged,
    UserChanged,
    XpAwarded,
    XpRevoked,
)
from reports.domain.errors import GenerationInProgress, NoReport, ReportExists, WeekNotFinished
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
from reports.domain.fallback import fallback_summary
from reports.domain.prompt import PROMPT_VERSION
from reports.domain.report import (
    Report,
    ReportJob,
    Written,
    is_stale,
    made_a_call,
    may_call_llm,
    report_due_at,
)
from reports.domain.stats import (
    WeeklyStats,
    context_weeks,
    has_monthly_target,
    next_week,
    weekly_stats,
)
from reports.store.ports import (
    JobLeases,
    ReportsStore,
    ReportsUnitOfWork,
    SummaryWriter,
    bucket_key,
    user_key,
    week_key,
)

log = logging.getLogger(__name__)

REPORTS_STORED = Counter(
    "mandaact_reports_stored_total", "Weekly reports stored", ["trigger", "generator"]
)

DEFAULT_SETTLE = timedelta(minutes=5)
"""How long a week's fold must stay unchanged before its written report is rewritten."""

# --- the fold ----------------------------------------------------------------------------------


def grid_of(event: GoalChanged) -> Grid:
    """The grid a goal.changed carries, as the due rules read it (references left out)."""
    m = event.mandalart
    placed = placed_actions(event)
    return Grid(
        id=m.id,
        title=m.title,
        version=m.version,
        active=m.active,
        deleted=m.deleted,
        sub_goals=tuple(
            GridSubGoal(
                position=sg.position,
                title=sg.title,
                actions=tuple(
                    p.rule
                    for p in placed
                    if p.sub_goal_position == sg.position and p.rule.type != "reference"
                ),
            )
            for sg in m.sub_goals
        ),
    )


def checkin_of(event: ActionCompleted | ActionUncompleted) -> CheckinState:
    """The check-in state a check-in event announces."""
    return CheckinState(
        action_id=event.action_id,
        local_date=event.local_date,
        seq=event.seq,
        done=isinstance(event, ActionCompleted),
        action_type=event.action_type,
        mandalart_id=event.mandalart_id,
        sub_goal_position=event.sub_goal_position,
        local_hour=event.occurred_at.astimezone(zone(event.timezone)).hour,
        sub_goal_title=event.sub_goal_title,
    )


def _grid_week(event: GoalChanged) -> str:
    return iso_week(local_date(event.mandalart.updated_at, event.timezone))


def _week_of_event(p: EventPayload) -> str | None:
    """The ISO week a week-scoped event belongs to (None for user-scoped ones)."""
    if isinstance(p, ActionCompleted | ActionUncompleted):
        return iso_week(p.local_date)
    if isinstance(p, XpAwarded | XpRevoked) and p.local_date is not None:
        return iso_week(p.local_date)
    if isinstance(p, StreakChanged) and p.last_active_date is not None:
        return iso_week(p.last_active_date)
    return None


@dataclass
class _Batch:
    """The documents a batch reads and the ones it changed."""

    users: dict[str, UserFacts]
    weeks: dict[str, WeekFacts]
    buckets: dict[str, GridBucket]
    dirty_users: set[str] = field(default_factory=set)
    dirty_weeks: set[str] = field(default_factory=set)
    dirty_buckets: set[str] = field(default_factory=set)
    checkin_weeks: set[str] = field(default_factory=set)
    moved_users: set[str] = field(default_factory=set)
    undated_weeks: set[str] = field(default_factory=set)
    """Weeks whose fold a changed badge, level or undated XP entry falls in."""

    def user(self, p: EventPayload) -> tuple[str, UserFacts]:
        uk = user_key(p.tenant_id, p.user_id)
        return uk, self.users.setdefault(uk, UserFacts(p.tenant_id, p.user_id))

    def week(self, p: EventPayload, week: str) -> tuple[str, WeekFacts]:
        key = week_key(user_key(p.tenant_id, p.user_id), week)
        return key, self.weeks.setdefault(key, WeekFacts(p.tenant_id, p.user_id, week))

    def apply(self, p: EventPayload) -> None:
        """Fold one event into the facts it touches."""
        uk, user = self.user(p)
        day = (user.effective_timezone, user.day_starts_at)
        self._apply(uk, user, p)
        if (user.effective_timezone, user.day_starts_at) != day:
            self.moved_users.add(uk)

    def _apply(self, uk: str, user: UserFacts, p: EventPayload) -> None:
        week = _week_of_event(p)
        if isinstance(p, ActionCompleted | ActionUncompleted):
            assert week is not None
            key, facts = self.week(p, week)
            state = checkin_of(p)
            if facts.record_checkin(state):
                self.dirty_weeks.add(key)
                self.checkin_weeks.add(key)
            if state.action_type == "mission" and user.record_mission(state):
                self.dirty_users.add(uk)
            if user.record_checkin_timezone(p.timezone, p.occurred_at):
                self.dirty_users.add(uk)
        elif isinstance(p, XpAwarded | XpRevoked):
            if week is not None:
                key, facts = self.week(p, week)
                if facts.record_xp(p.entry_id, p.amount):
                    self.dirty_weeks.add(key)
            elif user.record_undated_xp(p.entry_id, p.amount, p.created_at):
                self._undated_change(uk, user, p.created_at)
        elif isinstance(p, StreakChanged):
            if week is not None:
                key, facts = self.week(p, week)
                if facts.record_streak(StreakFact(p.changed_at, p.current, p.longest)):
                    self.dirty_weeks.add(key)
        elif isinstance(p, UserChanged):
            pauses = tuple(Pause(pause.from_, pause.to) for pause in p.pauses)
            if user.record_settings(p.version, p.timezone, p.locale, p.day_starts_at, pauses):
                self.dirty_users.add(uk)
        elif isinstance(p, GoalChanged):
            key = bucket_key(uk, p.mandalart.id, _grid_week(p))
            grid = grid_of(p)
            bucket = self.buckets.get(key)
            if bucket is None:
                self.buckets[key] = GridBucket(p.tenant_id, p.user_id, _grid_week(p), grid)
                self.dirty_buckets.add(key)
            elif bucket.record(grid):
                self.dirty_buckets.add(key)
        elif isinstance(p, LevelReached):
            if user.record_level(p.level, p.reached_at):
                self._undated_change(uk, user, p.reached_at)
        elif isinstance(p, BadgeUnlocked) and user.record_badge(p.badge, p.unlocked_at):
            self._undated_change(uk, user, p.unlocked_at)

    def _undated_change(self, uk: str, user: UserFacts, at: datetime) -> None:
        self.dirty_users.add(uk)
        self.undated_weeks.add(week_key(uk, user.week_of(at)))

    def changed_folds(self) -> tuple[set[str], set[str]]:
        """The weeks whose fold this batch changed: (those whose facts it saves, the others:
        the week after each, whose comparison with its previous week moved, and the weeks
        of changed undated facts)."""
        saved = set(self.dirty_weeks)
        following = {week_key(owner_of(k), next_week(self.weeks[k].week)) for k in saved}
        return saved, (following | self.undated_weeks) - saved


def _keys_to_read(events: Sequence[EventPayload]) -> tuple[set[str], set[str], set[str]]:
    uks: set[str] = set()
    weeks: set[str] = set()
    buckets: set[str] = set()
    for p in events:
        uk = user_key(p.tenant_id, p.user_id)
        uks.add(uk)
        week = _week_of_event(p)
        if week is not None:
            weeks.add(week_key(uk, week))
        if isinstance(p, GoalChanged):
            buckets.add(bucket_key(uk, p.mandalart.id, _grid_week(p)))
    return uks, weeks, buckets


async def fold_batch(
    store: ReportsStore,
    events: Sequence[EventPayload],
    *,
    now: datetime,
    settle: timedelta = DEFAULT_SETTLE,
) -> None:
    """Fold a batch of new events into the facts, keep the report jobs' due times, and mark
    the reports whose fold changed for a rewrite once it has been quiet for `settle`."""
    uks, week_ids, bucket_ids = _keys_to_read(events)
    batch = _Batch(
        users=await store.users(uks),
        weeks=await store.weeks(week_ids),
        buckets=await store.buckets(bucket_ids),
    )
    for event in events:
        batch.apply(event)

    jobs: dict[str, ReportJob] = {}
    known = await store.jobs(batch.checkin_weeks)
    for key in batch.checkin_weeks:
        facts = batch.weeks[key]
        user = batch.users[owner_of(key)]
        job = ReportJob(
            Owner(facts.tenant_id, facts.user_id),
            facts.week,
            active=facts.has_checkins,
            due_at=report_due_at(facts.week, user.effective_timezone, user.day_starts_at),
        )
        # Most check-ins change neither whether the week has one nor when its report is due.
        if known.get(key) != job:
            jobs[key] = job
    if batch.moved_users:
        # A new timezone or day start moves the Monday 06:00 of every report still to be written.
        for key, job in (await store.open_jobs(batch.moved_users)).items():
            if key not in jobs:
                user = batch.users[job.owner.key]
                due = report_due_at(job.week, user.effective_timezone, user.day_starts_at)
                jobs[key] = replace(job, due_at=due)
    saved, others = batch.changed_folds()
    for key in saved:
        batch.weeks[key].fold_version += 1
    # Most batches change weeks nobody has a report of yet: one read of their jobs tells.
    written = await store.written(saved | others)
    if written:
        await store.mark_changed(written, now + settle, bump=written & others)
    await store.save_facts(
        {k: batch.users[k] for k in batch.dirty_users},
        {k: batch.weeks[k] for k in batch.dirty_weeks},
        {k: batch.buckets[k] for k in batch.dirty_buckets},
        jobs,
    )


# --- writing reports ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReportView:
    """A stored report as read now: the stats of the week's latest fold and its version."""

    report: Report
    stats: WeeklyStats
    fold_version: int

    @property
    def stale(self) -> bool:
        """Whether the fold changed since the report was written (a rewrite is pending)."""
        return is_stale(self.report.fold_version, self.fold_version)


@dataclass(frozen=True, slots=True)
class Generated:
    """The report of a requested week, whether this request stored it, or rewrote it."""

    view: ReportView
    created: bool
    rewritten: bool = False

    @property
    def report(self) -> Report:
        """The report as stored."""
        return self.view.report


Presenter = Callable[[Generated], StoredResponse]
"""Turns a generated report into the response an idempotency key replays."""


@dataclass(frozen=True, slots=True)
class _Fold:
    """A user-week's fold as derived now, and its version."""

    stats: WeeklyStats
    user: UserFacts
    version: int


@dataclass(frozen=True, slots=True)
class _Draft:
    job: ReportJob
    fold: _Fold
    previous: Report | None = None
    """The report this draft rewrites (None: a first write)."""

    @property
    def stats(self) -> WeeklyStats:
        return self.fold.stats

    @property
    def locale(self) -> Locale:
        return self.fold.user.effective_locale

    @property
    def calls_so_far(self) -> int:
        return self.previous.llm_calls if self.previous is not None else 0

    def report(self, written: Written, now: datetime) -> Report:
        return Report(
            owner=self.job.owner,
            week=self.job.week,
            stats=self.stats,
            summary=written.summary,
            generator=written.generator,
            llm_outcome=written.outcome,
            locale=self.locale,
            prompt_version=PROMPT_VERSION,
            generated_at=now,
            fold_version=self.fold.version,
            llm_calls=self.calls_so_far + made_a_call(written.outcome),
        )


async def _folds(store: ReportsStore, weeks_of: Sequence[tuple[Owner, str]]) -> list[_Fold]:
    """The folds of these user-weeks as the facts stand (bulk reads for the lot)."""
    uks = {owner.key for owner, _ in weeks_of}
    users = await store.users(uks)
    buckets = await store.buckets_of(uks, max(week for _, week in weeks_of))
    wanted = {
        week_key(owner.key, w): (owner.key, w)
        for owner, week in weeks_of
        for w in context_weeks(week, has_monthly_target(buckets.get(owner.key, [])))
    }
    weeks = await store.weeks(wanted)
    out: list[_Fold] = []
    for owner, week in weeks_of:
        uk = owner.key
        user = users.get(uk) or UserFacts(owner.tenant_id, owner.user_id)
        own: dict[str, WeekFacts] = {
            w: weeks[k] for k, (o, w) in wanted.items() if o == uk and k in weeks
        }
        facts = own.get(week)
        version = facts.fold_version if facts is not None else 0
        out.append(_Fold(weekly_stats(week, own, buckets.get(uk, []), user), user, version))
    return out


async def _drafts(store: ReportsStore, jobs: Sequence[ReportJob]) -> list[_Draft]:
    """The folds of the jobs' weeks (those with a check-in that stands)."""
    folds = await _folds(store, [(j.owner, j.week) for j in jobs])
    return [_Draft(j, f) for j, f in zip(jobs, folds, strict=True) if f.stats.checkins_total]


async def _rewrite_drafts(store: ReportsStore, jobs: Sequence[ReportJob]) -> list[_Draft]:
    """The folds of written weeks, with the reports they rewrite."""
    reports = await store.reports_of(j.key for j in jobs)
    jobs = [j for j in jobs if j.key in reports]
    if not jobs:
        return []
    folds = await _folds(store, [(j.owner, j.week) for j in jobs])
    return [_Draft(j, f, reports[j.key]) for j, f in zip(jobs, folds, strict=True)]


def _generated_event(report: Report) -> ReportGenerated:
    return ReportGenerated(
        tenant_id=report.owner.tenant_id,
        user_id=report.owner.user_id,
        report_id=report.id,
        week=report.week,
        generator=report.generator,
        generated_at=report.generated_at,
    )


class ReportsService:
    """The reports use cases over a unit of work, the job leases and a summary writer."""

    def __init__(
        self,
        uow: ReportsUnitOfWork,
        leases: JobLeases,
        writer: SummaryWriter,
        *,
        lease: timedelta = timedelta(minutes=5),
        chunk: int = 200,
        concurrency: int = 4,
        wait_seconds: float = 30.0,
        settle: timedelta = DEFAULT_SETTLE,
        clock: Clock = utc_now,
        new_id: NewId = new_uuid,
    ) -> None:
        self._uow = uow
        self._leases = leases
        self._writer = writer
        self._lease = lease
        self._chunk = chunk
        self._limit = asyncio.Semaphore(concurrency)
        self._wait_seconds = wait_seconds
        self._settle = settle
        self._clock = clock
        self._new_id = new_id

    async def aclose(self) -> None:
        """Release the summary writer's HTTP client."""
        await self._writer.aclose()

    async def fold(self, events: Sequence[EventPayload]) -> None:
        """Fold a batch of events in a unit of its own (the consumer folds in its own)."""
        now = self._clock()

        async def work(store: ReportsStore) -> None:
            await fold_batch(store, events, now=now, settle=self._settle)

        await self._uow.run(work)

    # --- reading -------------------------------------------------------------------------------

    async def find(self, owner: Owner, week: str) -> Report | None:
        """The owner's report of a week, or None."""

        async def work(store: ReportsStore) -> Report | None:
            return await store.report(owner, week)

        return await self._uow.read(work)

    async def view(self, owner: Owner, week: str) -> ReportView | None:
        """The owner's report of a week with the stats of the week's latest fold, or None."""

        async def work(store: ReportsStore) -> ReportView | None:
            report = await store.report(owner, week)
            if report is None:
                return None
            [fold] = await _folds(store, [(owner, week)])
            return ReportView(report, fold.stats, fold.version)

        return await self._uow.read(work)

    async def report(self, owner: Owner, week: str) -> ReportView:
        """The owner's report of a week as read now; NoReport until it is generated."""
        found = await self.view(owner, week)
        if found is None:
            raise NoReport(f"there is no report for {week}")
        return found

    async def list_reports(self, owner: Owner, limit: int, before: str | None) -> list[Report]:
        """The owner's reports, newest week first."""

        async def work(store: ReportsStore) -> list[Report]:
            return await store.reports(owner, limit, before)

        return await self._uow.read(work)

    # --- scheduled -----------------------------------------------------------------------------

    async def run_due(self, now: datetime | None = None) -> int:
        """Write every report due at `now` that no one else is writing; return how many."""
        at = now if now is not None else self._clock()
        stored = 0
        while True:
            found, jobs = await self._leases.claim_due(at, self._lease, self._chunk, self._new_id())
            if not found:
                return stored
            # Losing every row of a chunk to another worker is no reason to stop: look again.
            if jobs:
                stored += len(await self._produce(jobs, at, "schedule"))

    async def run_rewrites(self, now: datetime | None = None) -> int:
        """Rewrite every report whose fold has been quiet for the settle time since it changed
        under it, unless someone else is at it; return how many were rewritten."""
        at = now if now is not None else self._clock()
        rewritten = 0
        while True:
            token = self._new_id()
            jobs = await self._leases.claim_rewrites(at, self._lease, self._chunk, token)
            if not jobs:
                return rewritten
            rewritten += len(await self._rewrite(jobs, at, token, "settled"))

    # --- on demand -----------------------------------------------------------------------------

    async def generate(self, owner: Owner, week: str) -> Generated:
        """The report of a finished week (rewritten first when it is stale), and whether this
        call stored it."""
        # Raises WeekNotFinished, NoReport (no check-in that week) or GenerationInProgress.
        now = self._clock()
        existing = await self.view(owner, week)
        if existing is not None:
            return await self._refresh(existing, now)
        uk, key = owner.key, week_key(owner.key, week)

        async def look(store: ReportsStore) -> tuple[UserFacts | None, ReportJob | None]:
            return (await store.users([uk])).get(uk), (await store.jobs([key])).get(key)

        user, job = await self._uow.read(look)
        user = user or UserFacts(owner.tenant_id, owner.user_id)
        _, sunday = parse_iso_week(week)
        if sunday >= today_in(user.effective_timezone, now, user.day_starts_at):
            raise WeekNotFinished(week, user.effective_timezone)
        if job is None or not job.active:
            raise NoReport(f"no check-ins in {week}, so there is no report for it")
        if not await self._leases.claim(key, now, self._lease, self._new_id()):
            return Generated(await self._await_report(owner, week), created=False)
        stored = await self._produce([job], now, "request")
        view = await self.view(owner, week)
        if view is None:
            raise NoReport(f"no check-ins in {week}, so there is no report for it")
        return Generated(view, created=key in stored)

    async def _refresh(self, existing: ReportView, now: datetime) -> Generated:
        """A stored report: as it is when fresh, else rewritten now (or by whoever is at it)."""
        if not existing.stale:
            return Generated(existing, created=False)
        report = existing.report
        job = ReportJob(report.owner, report.week, active=True, due_at=now)
        token = self._new_id()
        if not await self._leases.claim_rewrite(report.key, now, self._lease, token):
            other = await self._await_report(report.owner, report.week, after=report)
            return Generated(other, created=False)
        rewritten = await self._rewrite([job], now, token, "request")
        view = await self.view(report.owner, report.week)
        if view is None:
            raise NoReport(f"there is no report for {report.week}")
        return Generated(view, created=False, rewritten=report.key in rewritten)

    async def generate_once(
        self, owner: Owner, week: str, request: IdempotentRequest, present: Presenter
    ) -> StoredResponse:
        """`generate` at most once per idempotency key; a repeat replays the first answer."""
        # The LLM call cannot be inside a transaction, so the key is looked up in one unit and
        # remembered in another; the report itself is stored once whatever happens in between.
        stored = await self._uow.recall(request)
        if stored is not None:
            return stored
        response = present(await self.generate(owner, week))
        await self._uow.remember(request, response)
        return response

    async def _await_report(
        self, owner: Owner, week: str, after: Report | None = None
    ) -> ReportView:
        """The report another writer is storing (a new one, or one newer than `after`)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._wait_seconds
        while loop.time() < deadline:
            view = await self.view(owner, week)
            if view is not None and (after is None or view.report != after):
                return view
            await asyncio.sleep(0.2)
        raise GenerationInProgress(f"the report for {week} is being written; try again shortly")

    # --- the work ------------------------------------------------------------------------------

    async def _produce(self, jobs: Sequence[ReportJob], now: datetime, trigger: str) -> set[str]:
        """Write and store the reports of claimed jobs; return the keys stored by this call."""

        async def read(store: ReportsStore) -> list[_Draft]:
            return await _drafts(store, jobs)

        drafts = await self._uow.run(read)  # one snapshot of the fold
        drafted = {d.job.key for d in drafts}
        empty = [j.key for j in jobs if j.key not in drafted]
        if empty:
            # The fold keeps `active` in step with the check-ins, so this is a race with an
            # undo: the claim is left to expire, and the week is looked at again after it.
            log.warning("no check-ins left in %d claimed week(s): %s", len(empty), empty[:5])
        reports = await self._write_all(drafts, now)
        stored = await self._store(reports, now + self._settle)
        self._count(reports, stored, trigger)
        return stored

    async def _rewrite(
        self, jobs: Sequence[ReportJob], now: datetime, token: str, trigger: str
    ) -> set[str]:
        """Rewrite the reports of jobs claimed with `token`; return the keys replaced."""

        async def read(store: ReportsStore) -> list[_Draft]:
            return await _rewrite_drafts(store, jobs)

        drafts = await self._uow.run(read)
        reports = await self._write_all(drafts, now)

        async def work(store: ReportsStore) -> set[str]:
            kept = await store.rewrite_reports(reports, token, now + self._settle)
            for report in kept:
                store.emit(topics.REPORT_GENERATED, _generated_event(report), subject=report.id)
            return {r.key for r in kept}

        stored = await self._uow.run(work) if reports else set()
        self._count(reports, stored, f"rewrite_{trigger}")
        return stored

    async def _write_all(self, drafts: Sequence[_Draft], now: datetime) -> list[Report]:
        written = await asyncio.gather(*(self._write(d) for d in drafts))
        return [d.report(w, now) for d, w in zip(drafts, written, strict=True)]

    @staticmethod
    def _count(reports: Sequence[Report], stored: set[str], trigger: str) -> None:
        for report in reports:
            if report.key in stored:
                REPORTS_STORED.labels(trigger, report.generator).inc()

    async def _write(self, draft: _Draft) -> Written:
        if not may_call_llm(draft.calls_so_far):
            # The user-week has had its LLM calls: the new numbers, in the deterministic text.
            return Written(
                fallback_summary(draft.stats, draft.locale), "fallback", "week_cap_reached"
            )
        async with self._limit:
            return await self._writer.write(
                draft.job.owner, draft.stats, draft.job.week, draft.locale
            )

    async def _store(self, reports: Sequence[Report], rewrite_at: datetime) -> set[str]:
        """Store reports with their job state and event; return the keys stored."""
        # One unit for the lot, or one per report when another writer got there first.
        if not reports:
            return set()
        try:
            return await self._store_together(reports, rewrite_at)
        except ReportExists:
            stored: set[str] = set()
            for report in reports:
                try:
                    stored |= await self._store_together([report], rewrite_at)
                except ReportExists:
                    await self._leases.finish([report.key])
            return stored

    async def _store_together(self, reports: Sequence[Report], rewrite_at: datetime) -> set[str]:
        """Store the reports and their events in one unit; the keys stored (a report whose
        user was erased meanwhile is not, and tells nothing)."""

        async def work(store: ReportsStore) -> set[str]:
            kept = await store.add_reports(reports, rewrite_at)
            for report in kept:
                store.emit(topics.REPORT_GENERATED, _generated_event(report), subject=report.id)
            return {r.key for r in kept}

        return await self._uow.run(work)
