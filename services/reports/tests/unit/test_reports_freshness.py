"""Reports follow late events (SPEC §12): live stats, fold versions, the settle-then-rewrite job,
the 3-call cap per user-week, and a stale report rewritten on demand — over the in-memory ports."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import pytest

from mandaact_common.domain.owner import Owner
from mandaact_common.testing import SettableClock
from mandaact_contracts import topics
from mandaact_contracts.events import BadgeUnlocked, EventPayload, ReportGenerated
from reports.bootstrap import build_service
from reports.domain.facts import Locale
from reports.domain.fallback import fallback_summary
from reports.domain.report import (
    MAX_LLM_CALLS_PER_WEEK,
    Outcome,
    Written,
    fallback_reason,
    is_stale,
    made_a_call,
    may_call_llm,
)
from reports.domain.stats import WeeklyStats, next_week
from reports.service import ReportsService
from reports.settings import Settings
from reports.store.memory import InMemoryJobLeases, InMemoryReportsUnitOfWork, memory_unit_of_work
from reports.store.ports import week_key
from services.reports.tests.support import DAILY, Users

pytestmark = pytest.mark.unit

W47_MON = date(2026, 11, 16)
W48_MON = date(2026, 11, 23)
TUESDAY = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)  # 2026-W47 is finished everywhere
SETTLE = timedelta(seconds=300)
ALICE = Owner("acme", "alice")
WEEK = "2026-W47"


@dataclass
class CountingWriter:
    """A SummaryWriter that answers like a good LLM, one call per request; `during` runs while
    it writes (to fold events in the middle of a rewrite)."""

    calls: list[int] = field(default_factory=list)
    during: Callable[[], Awaitable[None]] | None = None

    async def write(self, owner: Owner, stats: WeeklyStats, week: str, locale: Locale) -> Written:
        self.calls.append(stats.checkins_total)
        if self.during is not None:
            during, self.during = self.during, None
            await during()
        return Written(fallback_summary(stats, locale), "llm", "ok")

    async def aclose(self) -> None:
        """Nothing to release."""


@dataclass
class Harness:
    service: ReportsService
    uow: InMemoryReportsUnitOfWork
    writer: CountingWriter
    clock: SettableClock
    user: Users

    def generated(self) -> list[ReportGenerated]:
        return [
            p
            for topic, p, _ in self.uow.events
            if topic == topics.REPORT_GENERATED and isinstance(p, ReportGenerated)
        ]

    async def backfill(self, day: date, action: str = "a1") -> None:
        """A check-in of `day` arriving now (after the report was written)."""
        await self.service.fold([self.user.check(action, day)])

    def rewrite_due_at(self, week: str = WEEK) -> datetime | None:
        return self.uow.tables.jobs[week_key(ALICE.key, week)].rewrite_due_at


def make() -> Harness:
    uow = memory_unit_of_work()
    writer = CountingWriter()
    clock = SettableClock(TUESDAY)
    settings = Settings(env="test", report_settle_seconds=SETTLE.total_seconds())
    service = build_service(
        settings, uow=uow, leases=InMemoryJobLeases(uow), writer=writer, clock=clock
    )
    return Harness(service, uow, writer, clock, Users(user="alice", locale="en"))


async def with_report(h: Harness) -> None:
    """Alice checked in on Monday and Tuesday of 2026-W47, and has its report."""
    u = h.user
    events: list[EventPayload] = [
        u.settings(),
        u.grid([("Sub", [("a1", DAILY), ("a2", DAILY)])], added=W47_MON),
        u.check("a1", W47_MON),
        u.check("a1", W47_MON + timedelta(days=1)),
    ]
    await h.service.fold(events)
    assert (await h.service.generate(ALICE, WEEK)).created


# --- the rules ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("outcome", "called"),
    [
        ("ok", True),
        ("timeout", True),
        ("error", True),
        ("malformed", True),
        ("invented_number", True),
        ("truncated", True),
        ("refused", True),
        ("cached", False),
        ("cached_failure", False),
        ("in_flight", False),
        ("no_key", False),
        ("budget_exhausted", False),
        ("week_cap_reached", False),
    ],
)
def test_only_a_request_sent_to_the_llm_counts_as_a_call(outcome: Outcome, called: bool) -> None:
    assert made_a_call(outcome) is called


def test_a_user_week_may_cost_three_calls() -> None:
    assert MAX_LLM_CALLS_PER_WEEK == 3
    assert [may_call_llm(n) for n in range(5)] == [True, True, True, False, False]
    assert fallback_reason("week_cap_reached") == "weekly_llm_calls_exhausted"


def test_a_report_is_stale_while_the_fold_has_moved_past_its_version() -> None:
    assert not is_stale(written_from=3, current=3)
    assert is_stale(written_from=3, current=4)
    assert not is_stale(written_from=0, current=0)  # reports from before versions were kept
    assert next_week("2026-W52") == "2026-W53"
    assert next_week("2026-W53") == "2027-W01"


# --- fold versions and live stats ---------------------------------------------------------------


async def test_a_backfilled_check_in_shows_at_once_and_marks_the_report_stale() -> None:
    h = make()
    await with_report(h)
    fresh = await h.service.report(ALICE, WEEK)
    assert (fresh.stale, fresh.fold_version) == (False, fresh.report.fold_version)
    assert fresh.report.llm_calls == 1
    assert h.rewrite_due_at() is None

    await h.backfill(W47_MON + timedelta(days=6))
    view = await h.service.report(ALICE, WEEK)
    assert view.stale
    assert view.fold_version == fresh.fold_version + 1
    assert view.stats.checkins_total == 3  # the latest fold ...
    assert view.report.stats.checkins_total == 2  # ... while the summary is the old one's
    assert h.rewrite_due_at() == TUESDAY + SETTLE

    # A second change pushes the rewrite back: the fold must be quiet for the settle time.
    h.clock.now = TUESDAY + timedelta(seconds=100)
    await h.backfill(W47_MON + timedelta(days=5))
    assert (await h.service.report(ALICE, WEEK)).fold_version == fresh.fold_version + 2
    assert h.rewrite_due_at() == TUESDAY + timedelta(seconds=100) + SETTLE


async def test_a_week_without_a_report_counts_versions_but_waits_for_no_rewrite() -> None:
    h = make()
    u = h.user
    await h.service.fold([u.settings(), u.check("a1", W47_MON)])
    await h.service.fold([u.check("a1", W47_MON + timedelta(days=1))])
    assert h.uow.tables.weeks[week_key(ALICE.key, WEEK)].fold_version == 2
    assert h.rewrite_due_at() is None
    report = (await h.service.generate(ALICE, WEEK)).report
    assert report.fold_version == 2


async def test_the_following_weeks_report_and_an_undated_badge_change_the_fold_too() -> None:
    h = make()
    await with_report(h)
    u = h.user
    h.clock.now = datetime(2026, 12, 1, 12, tzinfo=UTC)  # 2026-W48 is finished too
    await h.service.fold([u.check("a1", W48_MON)])
    w48 = (await h.service.generate(ALICE, "2026-W48")).report
    assert w48.stats.vs_previous_week.checkins_total == -1

    # A late check-in of W47 changes W48's comparison with its previous week.
    await h.backfill(W47_MON + timedelta(days=3))
    view = await h.service.report(ALICE, "2026-W48")
    assert view.stale
    assert view.stats.vs_previous_week.checkins_total == -2
    assert h.rewrite_due_at("2026-W48") == h.clock.now + SETTLE

    badge = BadgeUnlocked(
        tenant_id="acme",
        user_id="alice",
        badge="streak_3",
        xp_reward=50,
        unlocked_at=datetime(2026, 11, 18, 3, tzinfo=UTC),  # in 2026-W47 in Seoul
    )
    before = (await h.service.report(ALICE, WEEK)).fold_version
    await h.service.fold([badge])
    view = await h.service.report(ALICE, WEEK)
    assert view.fold_version == before + 1
    assert view.stats.badges_unlocked == ["streak_3"]


# --- the settle-then-rewrite job ----------------------------------------------------------------


async def test_the_job_rewrites_only_after_the_fold_has_been_quiet_for_the_settle_time() -> None:
    h = make()
    await with_report(h)
    await h.backfill(W47_MON + timedelta(days=6))
    assert await h.service.run_rewrites(TUESDAY + SETTLE - timedelta(seconds=1)) == 0
    assert h.writer.calls == [2]

    assert await h.service.run_rewrites(TUESDAY + SETTLE) == 1
    assert h.writer.calls == [2, 3]
    view = await h.service.report(ALICE, WEEK)
    assert (view.stale, view.report.stats.checkins_total, view.report.llm_calls) == (False, 3, 2)
    assert view.report.fold_version == view.fold_version
    assert view.report.generated_at == TUESDAY + SETTLE
    assert h.rewrite_due_at() is None
    assert [e.report_id for e in h.generated()] == [view.report.id] * 2
    assert await h.service.run_rewrites(TUESDAY + 10 * SETTLE) == 0


async def test_after_three_calls_a_change_is_written_by_the_fallback_with_the_new_numbers() -> None:
    h = make()
    await with_report(h)  # call 1
    at = TUESDAY
    for day in (2, 3, 4):  # calls 2 and 3, then the cap
        await h.backfill(W47_MON + timedelta(days=day))
        at += SETTLE
        assert await h.service.run_rewrites(at) == 1
    assert h.writer.calls == [2, 3, 4]
    report = (await h.service.report(ALICE, WEEK)).report
    assert (report.generator, report.llm_outcome) == ("fallback", "week_cap_reached")
    assert report.fallback_reason == "weekly_llm_calls_exhausted"
    assert report.stats.checkins_total == 5
    assert report.summary == fallback_summary(report.stats, "en")
    assert report.llm_calls == MAX_LLM_CALLS_PER_WEEK
    assert len(h.generated()) == 4


async def test_a_change_during_a_rewrite_leaves_the_report_stale_and_due_again() -> None:
    h = make()
    await with_report(h)
    await h.backfill(W47_MON + timedelta(days=6))
    at = TUESDAY + SETTLE
    h.clock.now = at

    async def late() -> None:
        await h.backfill(W47_MON + timedelta(days=5))

    h.writer.during = late
    assert await h.service.run_rewrites(at) == 1
    view = await h.service.report(ALICE, WEEK)
    assert view.stale
    assert (view.report.stats.checkins_total, view.stats.checkins_total) == (3, 4)
    assert h.rewrite_due_at() == at + SETTLE
    assert await h.service.run_rewrites(at + SETTLE) == 1
    assert not (await h.service.report(ALICE, WEEK)).stale


# --- on demand ----------------------------------------------------------------------------------


async def test_generate_rewrites_a_stale_report_now_and_leaves_a_fresh_one_alone() -> None:
    h = make()
    await with_report(h)
    fresh = await h.service.generate(ALICE, WEEK)
    assert (fresh.created, fresh.rewritten, h.writer.calls) == (False, False, [2])

    await h.backfill(W47_MON + timedelta(days=6))
    h.clock.now = TUESDAY + timedelta(seconds=10)  # long before the settle time
    again = await h.service.generate(ALICE, WEEK)
    assert (again.created, again.rewritten) == (False, True)
    assert (again.view.stale, again.report.stats.checkins_total) == (False, 3)
    assert h.writer.calls == [2, 3]
    assert h.rewrite_due_at() is None
    assert await h.service.run_rewrites(TUESDAY + 10 * SETTLE) == 0
    assert len(h.generated()) == 2
