"""The reports use cases over the in-memory adapters, wired by the same bootstrap as production."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from mandaact_common.domain.owner import Owner
from mandaact_common.idempotency import IdempotencyKeyReused, IdempotentRequest
from mandaact_common.testing import SettableClock
from mandaact_contracts import topics
from mandaact_contracts.events import EventPayload, ReportGenerated
from reports.api.routes import present_generated
from reports.bootstrap import CONSUMES, GROUP, PUBLISHES, build_service, ensure_indexes, worker_spec
from reports.domain.errors import NoReport, WeekNotFinished
from reports.domain.facts import Locale
from reports.domain.fallback import fallback_summary
from reports.domain.report import Written, report_id
from reports.domain.stats import WeeklyStats
from reports.service import ReportsService
from reports.settings import Settings
from reports.store.memory import InMemoryJobLeases, InMemoryReportsUnitOfWork, memory_unit_of_work
from reports.store.mongo import LIFECYCLE
from services.reports.tests.support import DAILY, Users

pytestmark = pytest.mark.unit

W46_MON = date(2026, 11, 9)
W47_MON = date(2026, 11, 16)
TUESDAY = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)  # 2026-W47 is finished everywhere
SEOUL_0600 = datetime(2026, 11, 22, 21, 0, tzinfo=UTC)  # Monday after 2026-W47, 06:00 KST
NEW_YORK_0600 = datetime(2026, 11, 23, 11, 0, tzinfo=UTC)
ALICE = Owner("acme", "alice")


@dataclass
class FakeWriter:
    """A SummaryWriter that records what it was asked and answers like a good LLM."""

    calls: list[tuple[str, Locale, int]] = field(default_factory=list)
    owners: list[Owner] = field(default_factory=list)
    closed: bool = False

    async def write(self, owner: Owner, stats: WeeklyStats, week: str, locale: Locale) -> Written:
        self.owners.append(owner)
        self.calls.append((week, locale, stats.checkins_total))
        return Written(fallback_summary(stats, locale), "llm", "ok")

    async def aclose(self) -> None:
        self.closed = True


@dataclass
class Harness:
    service: ReportsService
    uow: InMemoryReportsUnitOfWork
    writer: FakeWriter
    clock: SettableClock

    def generated(self) -> list[ReportGenerated]:
        return [
            p
            for topic, p, _ in self.uow.events
            if topic == topics.REPORT_GENERATED and isinstance(p, ReportGenerated)
        ]


def make(**settings: Any) -> Harness:
    uow = memory_unit_of_work()
    writer = FakeWriter()
    clock = SettableClock(TUESDAY)
    service = build_service(
        Settings(env="test", **settings),
        uow=uow,
        leases=InMemoryJobLeases(uow),
        writer=writer,
        clock=clock,
    )
    return Harness(service, uow, writer, clock)


def alices_weeks() -> list[EventPayload]:
    """Alice (Seoul, English) checked in once in 2026-W46 and twice in 2026-W47."""
    u = Users(user="alice", locale="en")
    return [
        u.settings(),
        u.grid([("Sub", [("a1", DAILY)])], added=W46_MON),
        u.check("a1", W46_MON),
        u.check("a1", W47_MON),
        u.check("a1", W47_MON + timedelta(days=1)),
    ]


def request(key: str, week: str) -> IdempotentRequest:
    return IdempotentRequest("acme", "alice", "reports.generate_weekly", key, f"fp-{week}")


async def test_generate_writes_one_report_and_one_event_then_reads_and_lists_it() -> None:
    h = make()
    await h.service.fold(alices_weeks())
    with pytest.raises(NoReport):
        await h.service.report(ALICE, "2026-W47")

    first = await h.service.generate(ALICE, "2026-W47")
    assert first.created
    report = first.report
    assert (report.week, report.generator, report.llm_outcome) == ("2026-W47", "llm", "ok")
    assert report.stats.checkins_total == 2
    assert report.stats.vs_previous_week.checkins_total == 1
    assert (report.locale, report.generated_at) == ("en", TUESDAY)
    assert h.writer.calls == [("2026-W47", "en", 2)]
    assert h.writer.owners == [ALICE]  # the writer knows whose budget and cache it uses
    [event] = h.generated()
    assert event.report_id == report.id == report_id(ALICE.key, "2026-W47")

    again = await h.service.generate(ALICE, "2026-W47")
    assert (again.created, again.report) == (False, report)
    assert len(h.writer.calls) == 1
    assert len(h.generated()) == 1
    assert (await h.service.report(ALICE, "2026-W47")).report == report

    await h.service.generate(ALICE, "2026-W46")
    listed = await h.service.list_reports(ALICE, limit=10, before=None)
    assert [r.week for r in listed] == ["2026-W47", "2026-W46"]
    assert [r.week for r in await h.service.list_reports(ALICE, 1, "2026-W47")] == ["2026-W46"]
    assert await h.service.list_reports(Owner("other", "alice"), 10, None) == []


async def test_an_unfinished_week_and_a_week_without_check_ins_have_no_report() -> None:
    h = make()
    await h.service.fold(alices_weeks())
    with pytest.raises(WeekNotFinished) as unfinished:
        await h.service.generate(ALICE, "2026-W48")
    assert (unfinished.value.code, unfinished.value.field) == ("week-not-finished", "path.iso_week")
    h.clock.now = SEOUL_0600 - timedelta(hours=6, minutes=1)  # Sunday 23:59 in Seoul
    with pytest.raises(WeekNotFinished):
        await h.service.generate(ALICE, "2026-W47")
    with pytest.raises(NoReport):
        await h.service.generate(ALICE, "2026-W40")
    with pytest.raises(NoReport):
        await h.service.generate(Owner("acme", "bob"), "2026-W46")
    assert h.writer.calls == []
    assert h.generated() == []


async def test_an_idempotency_key_replays_the_first_answer() -> None:
    h = make()
    await h.service.fold(alices_weeks())
    first = await h.service.generate_once(
        ALICE, "2026-W47", request("k-1", "2026-W47"), present_generated
    )
    replay = await h.service.generate_once(
        ALICE, "2026-W47", request("k-1", "2026-W47"), present_generated
    )
    assert (first.status_code, replay.status_code) == (201, 201)
    assert replay == first
    assert first.headers == {"Location": "/v1/reports/weekly/2026-W47"}
    with pytest.raises(IdempotencyKeyReused):
        await h.service.generate_once(
            ALICE, "2026-W46", request("k-1", "2026-W46"), present_generated
        )
    other_key = await h.service.generate_once(
        ALICE, "2026-W47", request("k-2", "2026-W47"), present_generated
    )
    assert other_key.status_code == 200
    assert len(h.writer.calls) == 1


async def test_the_scheduler_writes_each_report_once_at_the_users_0600() -> None:
    h = make(scheduler_chunk=1)
    seoul = Users(user="seoul", timezone="Asia/Seoul")
    ny = Users(user="ny", timezone="America/New_York")
    await h.service.fold(
        [e for u in (seoul, ny) for e in (u.settings(), u.check("a1", W47_MON))],
    )
    assert await h.service.run_due(SEOUL_0600 - timedelta(minutes=1)) == 0
    assert await h.service.run_due(SEOUL_0600) == 1
    assert await h.service.run_due(NEW_YORK_0600) == 1
    assert await h.service.run_due(NEW_YORK_0600 + timedelta(hours=1)) == 0
    assert sorted(e.user_id for e in h.generated()) == ["ny", "seoul"]
    assert [r.generated_at for r in await h.service.list_reports(Owner("acme", "ny"), 5, None)] == [
        NEW_YORK_0600
    ]


async def test_a_timezone_change_moves_the_due_time() -> None:
    h = make()
    u = Users(user="traveller", timezone="Asia/Seoul")
    await h.service.fold([u.settings(), u.check("a1", W47_MON)])
    moved = Users(user="traveller", timezone="America/New_York")
    await h.service.fold([moved.settings(version=2)])
    assert await h.service.run_due(SEOUL_0600) == 0
    assert await h.service.run_due(NEW_YORK_0600) == 1


async def test_an_undone_week_is_not_reported() -> None:
    h = make()
    u = Users(user="alice")
    await h.service.fold([u.settings(), u.check("a1", W47_MON), u.check("a1", W47_MON, undo=True)])
    assert await h.service.run_due(NEW_YORK_0600) == 0
    with pytest.raises(NoReport):
        await h.service.generate(ALICE, "2026-W47")


async def test_closing_the_service_closes_its_writer() -> None:
    h = make()
    await h.service.aclose()
    assert h.writer.closed


def test_the_worker_folds_every_user_topic_and_makes_its_indexes_once() -> None:
    spec = worker_spec()
    [consumer] = spec.consumers
    assert (spec.service, consumer.group, consumer.topics) == ("reports", GROUP, CONSUMES)
    assert spec.publishes == PUBLISHES == (topics.REPORT_GENERATED, topics.USER_ERASED)
    assert {topics.USER_DELETED, topics.TENANT_DELETED} <= set(consumer.topics)
    assert spec.lifecycle is LIFECYCLE
    assert spec.ensure_indexes is ensure_indexes
    assert spec.on_start is None
    assert len(spec.background) == 1
