"""The use cases on the in-memory adapter, wired by the same bootstrap as the worker and the API."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import cast

import pytest
from starlette.testclient import TestClient

from gamification.bootstrap import (
    CONSUMES,
    GROUP,
    PUBLISHES,
    build_app,
    consumer_handler,
    worker_spec,
)
from gamification.service import GamificationService
from gamification.settings import Settings
from gamification.store.memory import InMemoryGamificationStore, Tables, in_memory_unit_of_work
from gamification.store.mongo import LIFECYCLE, ensure_indexes
from mandaact_common.consumer import BatchHandler
from mandaact_common.domain.owner import Owner
from mandaact_common.http import AppState
from mandaact_common.keys import owner_key
from mandaact_common.mongo import make_client
from mandaact_common.outbox import Transaction
from mandaact_common.testing import MemoryRecord, SettableClock, auth_header, offline, record_of
from mandaact_common.unit_of_work import InMemoryUnitOfWork
from mandaact_contracts import topics
from mandaact_contracts.events import ActionCompleted, GoalChanged
from services.gamification.tests.support import TENANT, USER, change, goal, inbound

pytestmark = pytest.mark.unit

ALICE = Owner(TENANT, USER)
DAY = date(2026, 11, 3)  # a Tuesday: no weekend multiplier
NOW = datetime(2026, 11, 3, 12, tzinfo=UTC)  # 21:00 that day in Seoul
# The in-memory unit of work's store_in ignores the transaction the consumer would pass.
NO_TRANSACTION = cast(Transaction, None)


class World:
    """The handler and the use cases over one set of in-memory tables, with a settable clock."""

    def __init__(self) -> None:
        self.clock = SettableClock(NOW)
        self.uow: InMemoryUnitOfWork[Tables, InMemoryGamificationStore] = in_memory_unit_of_work()
        self.handler: BatchHandler = consumer_handler(self.uow, self.clock)
        self.service = GamificationService(self.uow, self.clock)

    async def deliver(self, *records: MemoryRecord) -> None:
        await self.handler(NO_TRANSACTION, [inbound(r) for r in records])

    def topics(self) -> list[str]:
        return [topic for topic, _payload, _subject in self.uow.events]


async def test_a_check_in_awards_ten_and_its_undo_takes_exactly_that_back() -> None:
    world = World()
    await world.deliver(goal(), change("a1", DAY, 1))
    progress = await world.service.progress(ALICE)
    page = await world.service.ledger(ALICE, 50, None)
    assert [e.amount for e in page.items if e.reason == "checkin"] == [10]
    badge_xp = sum(e.amount for e in page.items if e.reason == "badge")
    assert progress.xp_total == 10 + badge_xp == sum(e.amount for e in page.items)
    assert (progress.streak.current, progress.streak.longest) == (1, 1)

    await world.deliver(change("a1", DAY, 2, done=False))
    progress = await world.service.progress(ALICE)
    page = await world.service.ledger(ALICE, 50, None)
    assert [e.amount for e in page.items if e.reason == "checkin"] == [-10, 10]
    assert progress.xp_total == badge_xp  # badges are never taken back
    assert world.topics().count(topics.XP_REVOKED) == 1
    awarded = [e for e in page.items if e.amount > 0]
    assert world.topics().count(topics.XP_AWARDED) == len(awarded)
    assert topics.BADGE_UNLOCKED in world.topics()


async def test_state_and_ledger_are_filed_under_the_shared_owner_key() -> None:
    world = World()
    await world.deliver(goal(), change("a1", DAY, 1))
    assert {o.key for o in world.uow.tables.progress} == {owner_key(TENANT, USER)}
    assert {e.owner.key for e in world.uow.tables.ledger.values()} == {owner_key(TENANT, USER)}


async def test_a_repeated_fact_changes_nothing_and_announces_nothing() -> None:
    world = World()
    first = change("a1", DAY, 1)
    await world.deliver(goal(), first)
    before = (await world.service.progress(ALICE), len(world.uow.events))
    await world.deliver(first, first)
    assert (await world.service.progress(ALICE), len(world.uow.events)) == before


async def test_the_streak_lapses_on_the_users_clock_when_a_day_is_missed() -> None:
    world = World()
    await world.deliver(goal(), change("a1", DAY, 1))
    world.clock.advance(timedelta(days=1))
    assert (await world.service.progress(ALICE)).streak.current == 1  # yesterday still counts
    world.clock.advance(timedelta(days=1))
    progress = await world.service.progress(ALICE)
    assert (progress.streak.current, progress.streak.longest) == (0, 1)


async def test_ledger_pages_go_back_in_time_until_the_end() -> None:
    world = World()
    await world.deliver(goal(), change("a1", DAY, 1), change("a2", DAY, 1))
    everything = (await world.service.ledger(ALICE, 200, None)).items
    first = await world.service.ledger(ALICE, 2, None)
    assert first.next_before is not None
    rest = await world.service.ledger(ALICE, 200, first.next_before)
    assert rest.next_before is None
    assert [e.id for e in first.items + rest.items] == [e.id for e in everything]


async def test_the_leaderboard_ranks_one_tenant_with_ties_broken_by_user_id() -> None:
    world = World()
    await world.deliver(
        goal(),
        goal(user="bob"),
        goal(user="mallory", tenant="globex"),
        change("a1", DAY, 1, user="bob"),
        change("a1", DAY, 1),
        change("a1", DAY, 1, user="mallory", tenant="globex"),
    )
    for period in ("week", "all"):
        board = await world.service.leaderboard(ALICE, period, 20)
        assert [(s.rank, s.user_id) for s in board.items] == [(1, "alice"), (2, "bob")]
        assert board.items[0].xp == board.items[1].xp > 0
    assert (await world.service.leaderboard(ALICE, "week", 20)).week == "2026-W45"
    world.clock.advance(timedelta(days=7))
    assert (await world.service.leaderboard(ALICE, "week", 20)).items == []


async def test_badges_show_unlocks_in_the_users_language_and_hide_secrets() -> None:
    world = World()
    await world.deliver(goal(), change("a1", DAY, 1))
    english = await world.service.badges(ALICE, "en")
    korean = await world.service.badges(ALICE, "ko")
    assert {b.code for b in english if b.unlocked_at} >= {"first_checkin", "first_grid"}
    hidden = [b for b in english if b.secret and not b.unlocked_at]
    assert hidden
    assert all(b.title == "???" and b.description is None for b in hidden)
    assert [b.code for b in korean] == [b.code for b in english]
    assert any(k.title != e.title for k, e in zip(korean, english, strict=True) if not k.secret)


async def test_the_http_app_answers_progress_from_the_same_use_cases() -> None:
    world = World()
    await world.deliver(goal(), change("a1", DAY, 1))
    settings = Settings(env="test")
    app = build_app(settings, service_factory=lambda _state: world.service, clock=world.clock)
    mongo = make_client("mongodb://127.0.0.1:9/?directConnection=true")  # never contacted
    app.state.mandaact = AppState(settings, mongo, mongo["unused"])
    offline(app)  # no database in unit tests
    http = TestClient(app)  # no lifespan: nothing is connected
    try:
        r = http.get("/v1/me/progress", headers=auth_header(TENANT, USER))
        assert r.status_code == 200, r.text
        expected = await world.service.progress(ALICE)
        assert r.json()["xp_total"] == expected.xp_total > 0
        assert r.json()["streak"] == {
            "current": 1,
            "longest": 1,
            "freezes": 0,
            "frozen_dates": [],
        }
        assert http.get("/v1/me/progress").status_code == 401
    finally:
        await mongo.close()


def test_the_worker_consumes_grids_and_check_ins_and_makes_its_indexes_at_start() -> None:
    spec = worker_spec()
    [consumer] = spec.consumers
    assert (consumer.group, consumer.topics) == (GROUP, CONSUMES)
    assert spec.publishes == PUBLISHES
    assert spec.ensure_indexes is ensure_indexes
    assert spec.on_start is None
    # The streak sweep and the repairs; an erasure takes its user off the boards first.
    assert len(spec.background) == 1
    assert {topics.USER_DELETED, topics.TENANT_DELETED} <= set(consumer.topics)
    assert topics.USER_ERASED in spec.publishes
    assert spec.lifecycle is LIFECYCLE
    assert LIFECYCLE.prepare is not None


async def test_a_key_a_rebuild_took_back_is_numbered_after_its_entries_when_it_comes_back() -> None:
    """Made perfect twice, then a late undo: the rebuilt fold has the date perfect only once, so
    `perfect:…:2` goes back to 0. When the date becomes perfect again, its entry is the 3rd."""
    world = World()
    await world.deliver(goal(), change("a1", DAY, 1), change("a2", DAY, 1))
    await world.deliver(change("a2", DAY, 2, done=False))
    await world.deliver(change("a2", DAY, 3))
    await world.deliver(change("a1", DAY, 2, done=False))  # belongs before a2's third change
    again = ActionCompleted.model_validate(
        {
            **inbound(change("a1", DAY, 3)).payload.model_dump(),
            "occurred_at": datetime(2026, 11, 3, 2, tzinfo=UTC),
        }
    )
    await world.deliver(record_of(again))
    perfect = sorted(
        (e.key, e.n, e.amount)
        for e in world.uow.tables.ledger.values()
        if e.key.startswith(f"perfect:{DAY}:2")
    )
    assert perfect == [
        (f"perfect:{DAY}:2", 0, 50),
        (f"perfect:{DAY}:2", 1, -50),
        (f"perfect:{DAY}:2", 2, 50),
    ]
    progress = await world.service.progress(ALICE)
    page = await world.service.ledger(ALICE, 200, None)
    assert progress.xp_total == sum(e.amount for e in page.items)
    assert progress.perfect_days == 1


async def test_a_rebuild_moves_xp_to_the_date_the_rebuilt_fold_gives_it() -> None:
    """The first grid earns its badge on the day it was made; a grid made earlier but delivered
    later is the first one: the badge's XP moves to that day's week, and the totals stay."""
    world = World()
    later = inbound(goal()).payload
    assert isinstance(later, GoalChanged)
    made = datetime(2026, 10, 20, tzinfo=UTC)  # two weeks before `goal()`'s grid
    snapshot = later.mandalart.model_copy(
        update={"id": "m0", "created_at": made, "updated_at": made}
    )
    earlier = later.model_copy(update={"mandalart": snapshot})
    await world.deliver(goal())
    await world.deliver(record_of(earlier))
    moves = sorted(
        (str(e.local_date), e.amount)
        for e in world.uow.tables.ledger.values()
        if e.key == "badge:first_grid"
    )
    assert moves == [("2026-10-20", 20), ("2026-11-02", -20), ("2026-11-02", 20)]
    weeks = {w: xp for (_, p, w, _), xp in world.uow.tables.boards.items() if p == "week"}
    assert weeks == {"2026-W43": 20, "2026-W45": 0}
    assert (await world.service.progress(ALICE)).xp_total == 20
