"""Streaks people can keep, end to end over the use cases (in-memory store): freezes decided
when a date is over, pauses, the day start, the sweep and tenants' streak repairs (SPEC §6)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any, cast

import pytest
from starlette.testclient import TestClient

from gamification.bootstrap import build_app, consumer_handler
from gamification.domain.streaks import RepairCommand, RepairNotAllowed
from gamification.service import GamificationService
from gamification.settings import Settings
from gamification.store.memory import InMemoryGamificationStore, Tables, in_memory_unit_of_work
from mandaact_common.consumer import BatchHandler
from mandaact_common.domain.owner import Owner
from mandaact_common.http import AppState
from mandaact_common.mongo import make_client
from mandaact_common.outbox import Transaction
from mandaact_common.testing import MemoryRecord, SettableClock, auth_header, offline, record_of
from mandaact_common.unit_of_work import InMemoryUnitOfWork
from mandaact_contracts import topics
from mandaact_contracts.events import StreakChanged, UserChanged
from services.gamification.tests.support import TENANT, USER, change, goal, inbound

pytestmark = pytest.mark.unit

ALICE = Owner(TENANT, USER)
MON = date(2026, 11, 2)
NO_TRANSACTION = cast(Transaction, None)


def seoul(day: date, hour: int = 21) -> datetime:
    """`hour` o'clock in Seoul on `day`, as UTC."""
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC) - timedelta(hours=9)


def settings_of(version: int, user: str = USER, **extra: Any) -> MemoryRecord:
    base = {
        "tenant_id": TENANT,
        "user_id": user,
        "version": version,
        "timezone": "Asia/Seoul",
        "locale": "en",
        "display_name": None,
        "changed_at": datetime(2026, 11, 1, tzinfo=UTC),
    }
    return record_of(UserChanged.model_validate({**base, **extra}))


class World:
    def __init__(self, now: datetime) -> None:
        self.clock = SettableClock(now)
        self.uow: InMemoryUnitOfWork[Tables, InMemoryGamificationStore] = in_memory_unit_of_work()
        self.handler: BatchHandler = consumer_handler(self.uow, self.clock)
        self.service = GamificationService(self.uow, self.clock)

    async def deliver(self, *records: MemoryRecord) -> None:
        await self.handler(NO_TRANSACTION, [inbound(r) for r in records])

    async def days(
        self, first: date, n: int, actions: tuple[str, ...] = ("a1",), user: str = USER
    ) -> None:
        """Check in on `n` dates from `first`, each delivered on its own evening."""
        for i in range(n):
            day = first + timedelta(days=i)
            self.clock.now = seoul(day)
            await self.deliver(*(change(a, day, 1, user=user) for a in actions))

    def told(self) -> list[StreakChanged]:
        return [p for t, p, _ in self.uow.events if t == topics.STREAK_CHANGED]  # type: ignore[misc]


async def test_a_missed_day_uses_the_freeze_at_the_next_read_with_no_event_since() -> None:
    world = World(seoul(MON))
    await world.deliver(goal())
    await world.days(MON, 7)
    seven = (await world.service.progress(ALICE)).streak
    assert (seven.current, seven.freezes, seven.frozen_dates) == (7, 1, ())

    world.clock.now = seoul(MON + timedelta(days=8), 9)  # the 9th day began; the 8th is over
    kept = (await world.service.progress(ALICE)).streak
    assert (kept.current, kept.freezes, kept.frozen_dates) == (7, 0, (MON + timedelta(days=7),))

    world.clock.now = seoul(MON + timedelta(days=9), 9)  # a second date missed, no freeze left
    broken = (await world.service.progress(ALICE)).streak
    assert (broken.current, broken.longest, broken.freezes) == (0, 7, 0)


async def test_the_daily_sweep_tells_the_freeze_use_and_the_break_once_each() -> None:
    world = World(seoul(MON))
    await world.deliver(goal())
    await world.days(MON, 7)
    assert world.told()[-1].current == 7
    assert world.told()[-1].freezes == 1
    during = len(world.told())

    world.clock.now = seoul(MON + timedelta(days=7), 23)  # the 8th date is not over yet
    assert await world.service.sweep_streaks() == 0
    world.clock.now = seoul(MON + timedelta(days=8), 0) + timedelta(minutes=1)
    assert await world.service.sweep_streaks() == 1
    freeze_used = world.told()[-1]
    assert (freeze_used.current, freeze_used.freezes) == (7, 0)
    assert freeze_used.frozen_dates == [MON + timedelta(days=7)]
    assert await world.service.sweep_streaks() == 0  # nothing is due again before the next end

    world.clock.now = seoul(MON + timedelta(days=9), 0) + timedelta(minutes=1)
    assert await world.service.sweep_streaks() == 1
    assert (world.told()[-1].current, world.told()[-1].longest) == (0, 7)
    world.clock.advance(timedelta(days=3))
    assert await world.service.sweep_streaks() == 0  # no run open: the user is not looked at
    assert len(world.told()) == during + 2


async def test_a_check_in_at_01_30_before_a_04_00_day_start_keeps_the_day_open() -> None:
    world = World(seoul(MON))
    await world.deliver(goal(), settings_of(1, day_starts_at="04:00"))
    await world.days(MON, 7)
    # 01:30 on the 9th in Seoul: with the day starting at 04:00 it is still the 8th.
    world.clock.now = seoul(MON + timedelta(days=8), 1) + timedelta(minutes=30)
    early = (await world.service.progress(ALICE)).streak
    assert (early.current, early.freezes, early.frozen_dates) == (7, 1, ())
    world.clock.now = seoul(MON + timedelta(days=8), 4)
    late = (await world.service.progress(ALICE)).streak
    assert (late.freezes, late.frozen_dates) == (0, (MON + timedelta(days=7),))


async def test_a_paused_week_keeps_a_twenty_day_streak_and_yields_no_perfect_day_xp() -> None:
    away = MON + timedelta(days=20)
    pause = {"from": away.isoformat(), "to": (away + timedelta(days=6)).isoformat()}
    world = World(seoul(MON))
    await world.deliver(goal(), settings_of(1, pauses=[pause]))
    await world.days(MON, 20, ("a1", "a2"))
    on_vacation = away + timedelta(days=2)
    await world.days(on_vacation, 1, ("a1", "a2"))  # every due action done on a paused date
    world.clock.now = seoul(away + timedelta(days=7), 12)
    progress = await world.service.progress(ALICE)
    assert (progress.streak.current, progress.streak.freezes) == (21, 2)
    assert progress.streak.frozen_dates == ()
    page = await world.service.ledger(ALICE, 200, None)
    perfect = {e.local_date for e in page.items if e.reason == "perfect_day"}
    assert on_vacation not in perfect
    assert len(perfect) == 20
    assert any(e.local_date == on_vacation and e.reason == "checkin" for e in page.items)


async def test_pauses_that_arrive_after_the_check_ins_take_the_perfect_day_back() -> None:
    day = MON + timedelta(days=1)
    world = World(seoul(day))
    await world.deliver(goal())
    await world.days(day, 1, ("a1", "a2"))
    held = {e.key: e.amount for e in (await world.service.ledger(ALICE, 50, None)).items}
    assert held.get(f"perfect:{day}:1") == 50
    pause = {"from": day.isoformat(), "to": day.isoformat()}
    await world.deliver(settings_of(1, pauses=[pause]))
    page = await world.service.ledger(ALICE, 50, None)
    assert sum(e.amount for e in page.items if e.reason == "perfect_day") == 0
    progress = await world.service.progress(ALICE)
    assert progress.perfect_days == 0
    assert progress.xp_total == sum(e.amount for e in page.items)


async def test_a_tenant_repair_keeps_everyones_streak_without_freezes_and_twice_is_once() -> None:
    outage = MON + timedelta(days=7)
    world = World(seoul(MON))
    await world.deliver(goal(), goal(user="bob"), goal(user="carol"))
    for user in ("alice", "bob", "carol"):
        await world.days(MON, 7, user=user)
    # Carol checks in the day after the outage before the repair exists: her freeze is spent.
    await world.days(outage + timedelta(days=1), 1, user="carol")
    world.clock.now = seoul(outage + timedelta(days=1), 22)
    carol = Owner(TENANT, "carol")
    assert (await world.service.progress(carol)).streak.freezes == 0

    command = RepairCommand(outage, outage, "broker outage")
    first = await world.service.create_repair(TENANT, command)
    again = await world.service.create_repair(TENANT, command)
    assert first == again
    assert len(await world.service.repairs(TENANT)) == 1
    while await world.service.apply_repairs(limit=2):
        pass
    for user in ("alice", "bob", "carol"):
        streak = (await world.service.progress(Owner(TENANT, user))).streak
        assert (streak.freezes, streak.frozen_dates) == (1, ()), user
    assert (await world.service.progress(carol)).streak.current == 8
    told = len(world.told())
    while await world.service.apply_repairs(limit=2):
        pass
    await world.service.create_repair(TENANT, command)
    assert len(world.told()) == told  # applying it again changes nothing


async def test_a_repair_only_for_named_users_leaves_the_others_alone() -> None:
    outage = MON + timedelta(days=7)
    world = World(seoul(MON))
    await world.deliver(goal(), goal(user="bob"))
    for user in ("alice", "bob"):
        await world.days(MON, 7, user=user)
    world.clock.now = seoul(outage + timedelta(days=1), 9)
    await world.service.create_repair(
        TENANT, RepairCommand(outage, outage, "their phones", frozenset({"bob"}))
    )
    assert (await world.service.progress(ALICE)).streak.freezes == 0
    assert (await world.service.progress(Owner(TENANT, "bob"))).streak.freezes == 1


@pytest.mark.parametrize(
    ("start", "end", "field"),
    [
        (date(2026, 11, 20), date(2026, 11, 19), "to"),
        (date(2026, 11, 1), date(2026, 11, 8), "to"),  # 8 dates
        (date(2026, 11, 21), date(2026, 11, 22), "to"),  # the 22nd has begun nowhere yet
        (date(2026, 10, 1), date(2026, 10, 2), "from"),  # more than 30 days back
    ],
)
async def test_a_repair_that_breaks_a_rule_is_refused(start: date, end: date, field: str) -> None:
    world = World(datetime(2026, 11, 20, 12, tzinfo=UTC))
    with pytest.raises(RepairNotAllowed) as refused:
        await world.service.create_repair(TENANT, RepairCommand(start, end, "x"))
    assert refused.value.field == field
    assert await world.service.repairs(TENANT) == []


async def test_admins_repair_over_http_and_others_get_403() -> None:
    world = World(datetime(2026, 11, 20, 12, tzinfo=UTC))
    settings = Settings(env="test")
    app = build_app(settings, service_factory=lambda _state: world.service, clock=world.clock)
    mongo = make_client("mongodb://127.0.0.1:9/?directConnection=true")  # never contacted
    app.state.mandaact = AppState(settings, mongo, mongo["unused"])
    offline(app)  # no database in unit tests
    http = TestClient(app)
    body = {"from": "2026-11-18", "to": "2026-11-19", "reason": "outage"}
    admin = auth_header(TENANT, "root", roles=["admin"])
    try:
        refused = http.post("/v1/admin/streak-repairs", json=body, headers=auth_header())
        assert refused.status_code == 403
        assert refused.headers["content-type"] == "application/problem+json"
        assert http.get("/v1/admin/streak-repairs", headers=auth_header()).status_code == 403
        created = http.post("/v1/admin/streak-repairs", json=body, headers=admin)
        assert created.status_code == 201, created.text
        assert created.json()["from"] == "2026-11-18"
        assert created.json()["user_ids"] is None
        again = http.post("/v1/admin/streak-repairs", json=body, headers=admin)
        assert again.json()["id"] == created.json()["id"]
        listed = http.get("/v1/admin/streak-repairs", headers=admin).json()
        assert [r["id"] for r in listed["items"]] == [created.json()["id"]]
        bad = http.post(
            "/v1/admin/streak-repairs", json={**body, "to": "2026-12-30"}, headers=admin
        )
        assert bad.status_code == 422
        other = auth_header("globex", "root", roles=["admin"])
        assert http.get("/v1/admin/streak-repairs", headers=other).json()["items"] == []
    finally:
        await mongo.close()
