"""The streak sweep and tenants' streak repairs on the real MongoDB-compatible server: the
indexed next-decision instants, the repairs collection and the walk over a tenant's users."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from gamification.bootstrap import mongo_handler, mongo_unit_of_work
from gamification.domain.streaks import RepairCommand
from gamification.service import GamificationService
from gamification.store.mongo import ensure_indexes
from mandaact_common.consumer import IdempotentConsumer
from mandaact_common.domain.owner import Owner
from mandaact_common.outbox import pending_events
from mandaact_common.testing import SettableClock
from mandaact_contracts import topics
from services.gamification.tests.support import TENANT, change, goal

pytestmark = pytest.mark.integration

MON = date(2026, 11, 2)
USERS = ("alice", "bob", "carol")


def seoul(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC) - timedelta(hours=9)


async def streak_events(db: Any) -> list[dict[str, Any]]:
    return [e["payload"] for e in await pending_events(db, topics.STREAK_CHANGED)]


async def test_the_sweep_and_a_repair_decide_streaks_over_mongodb(
    mongo_client: Any, unique_db_name: str
) -> None:
    db = mongo_client[unique_db_name]
    await ensure_indexes(db)
    clock = SettableClock(seoul(MON, 21))
    consumer = IdempotentConsumer(
        group="gamification",
        client=mongo_client,
        db=db,
        handler=mongo_handler(mongo_client, db, clock),
        dead_letters=None,  # type: ignore[arg-type]
    )
    service = GamificationService(mongo_unit_of_work(mongo_client, db), clock)
    await consumer.process([goal(user=u) for u in USERS])
    for i in range(7):
        clock.now = seoul(MON + timedelta(days=i), 21)
        await consumer.process([change("a1", MON + timedelta(days=i), 1, user=u) for u in USERS])
    told = len(await streak_events(db))

    outage = MON + timedelta(days=7)
    clock.now = seoul(outage, 23)
    assert await service.sweep_streaks() == 0  # the outage date is not over yet
    clock.now = seoul(outage + timedelta(days=1), 0, 1)
    assert await service.sweep_streaks(limit=2) == 2  # a batch at a time
    assert await service.sweep_streaks(limit=2) == 1
    assert await service.sweep_streaks() == 0
    used = (await streak_events(db))[told:]
    assert sorted(e["user_id"] for e in used) == sorted(USERS)
    assert {(e["current"], e["freezes"], tuple(e["frozen_dates"])) for e in used} == {
        (7, 0, (outage.isoformat(),))
    }

    command = RepairCommand(outage, outage, "broker outage", frozenset({"alice", "bob"}))
    repair = await service.create_repair(TENANT, command)
    assert await service.create_repair(TENANT, command) == repair
    assert [r.id for r in await service.repairs(TENANT)] == [repair.id]
    assert await service.apply_repairs(limit=2) == 2
    assert await service.apply_repairs(limit=2) == 1  # carol is walked too: nothing changes
    assert await service.apply_repairs(limit=2) == 0  # the repair is applied to every user
    for user, freezes in (("alice", 1), ("bob", 1), ("carol", 0)):
        streak = (await service.progress(Owner(TENANT, user))).streak
        assert (streak.current, streak.freezes) == (7, freezes), user
    repaired = (await streak_events(db))[told + len(used) :]
    assert sorted(e["user_id"] for e in repaired) == ["alice", "bob"]
    assert all((e["freezes"], e["frozen_dates"]) == (1, []) for e in repaired)
