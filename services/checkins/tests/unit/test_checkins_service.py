"""Use cases over the in-memory store: events, local dates, the change limit, the read model."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from checkins.consumers.handler import grid_of, profile_of
from checkins.domain.errors import (
    DateInFuture,
    DateTooOld,
    MissionAlreadyDone,
    NotCheckable,
    NotFound,
    TooManyChanges,
)
from checkins.domain.model import Owner
from checkins.service import CheckinsService, project
from checkins.store.memory import InMemoryCheckinsStore, InMemoryUnitOfWork, Tables
from mandaact_common.testing import SettableClock
from mandaact_contracts import topics
from mandaact_contracts.events import (
    ActionCompleted,
    ActionUncompleted,
    GoalChanged,
    UserChanged,
)
from services.checkins.tests.support import (
    MON_THU,
    action,
    goal_changed,
    new_id,
    user_changed,
)

pytestmark = pytest.mark.unit

ALICE = Owner("acme", "alice")
# 15:30 UTC on the 20th is 00:30 on the 21st in Seoul, but 10:30 on the 20th in New York.
NOW = datetime(2026, 11, 20, 15, 30, tzinfo=UTC)


def make(backfill_days: int = 1) -> tuple[CheckinsService, InMemoryUnitOfWork, SettableClock]:
    uow = InMemoryUnitOfWork()
    clock = SettableClock(NOW)
    ids = itertools.count(1)
    service = CheckinsService(
        uow, backfill_days=backfill_days, clock=clock, new_id=lambda: f"c{next(ids)}"
    )
    return service, uow, clock


Event = GoalChanged | UserChanged


async def feed(uow: InMemoryUnitOfWork, *events: Event) -> None:
    grids = [grid_of(e) for e in events if isinstance(e, GoalChanged)]
    profiles = [profile_of(e) for e in events if isinstance(e, UserChanged)]

    async def work(store: InMemoryCheckinsStore) -> None:
        await project(store, grids, profiles)

    await uow.run(work)


async def seeded(
    timezone: str = "Asia/Seoul",
) -> tuple[CheckinsService, InMemoryUnitOfWork, SettableClock, list[str]]:
    service, uow, clock = make()
    actions = [
        action("Run"),
        action("Review", schedule=MON_THU),
        action("Ship it", "mission"),
        action("Stay curious", "reference"),
    ]
    grid = goal_changed("acme", "alice", new_id(), 1, [("Body", actions)], timezone=timezone)
    await feed(uow, grid)
    return service, uow, clock, [a["id"] for a in actions]


async def test_a_check_emits_one_action_completed_with_everything_consumers_need() -> None:
    service, uow, _clock, (run, *_rest) = await seeded()
    result = await service.check(ALICE, run, None)
    assert result.created
    assert result.slot.day == date(2026, 11, 21)  # today in Seoul
    [(topic, event, subject)] = uow.tables.events
    assert (topic, subject) == (topics.ACTION_COMPLETED, run)
    assert isinstance(event, ActionCompleted)
    assert (event.tenant_id, event.user_id, event.action_id) == ("acme", "alice", run)
    assert (event.checkin_id, event.seq, event.local_date) == ("c1", 1, date(2026, 11, 21))
    assert (event.sub_goal_position, event.sub_goal_title) == (1, "Body")
    assert (event.action_title, event.action_type, event.timezone) == (
        "Run",
        "routine",
        "Asia/Seoul",
    )
    assert event.occurred_at == NOW
    assert event.schedule is not None
    assert event.schedule.frequency == "daily"


async def test_a_repeat_answers_the_existing_check_in_and_emits_nothing() -> None:
    service, uow, _clock, (run, *_rest) = await seeded()
    first = await service.check(ALICE, run, None)
    again = await service.check(ALICE, run, None)
    assert not again.created
    assert again.slot.checkin_id == first.slot.checkin_id
    assert len(uow.tables.events) == 1


async def test_undo_emits_action_uncompleted_with_the_undone_id_and_the_next_seq() -> None:
    service, uow, _clock, (run, *_rest) = await seeded()
    await service.check(ALICE, run, None)
    assert await service.uncheck(ALICE, run, None)
    assert not await service.uncheck(ALICE, run, None)  # nothing left to undo: no-op
    [_, (topic, event, _subject)] = uow.tables.events
    assert topic == topics.ACTION_UNCOMPLETED
    assert isinstance(event, ActionUncompleted)
    assert (event.checkin_id, event.seq) == ("c1", 2)


async def test_the_fourth_change_of_a_date_is_refused_and_changes_nothing() -> None:
    service, uow, _clock, (run, *_rest) = await seeded()
    await service.check(ALICE, run, None)
    await service.uncheck(ALICE, run, None)
    await service.check(ALICE, run, None)
    with pytest.raises(TooManyChanges):
        await service.uncheck(ALICE, run, None)
    assert [
        e.seq
        for _t, e, _s in uow.tables.events
        if isinstance(e, ActionCompleted | ActionUncompleted)
    ] == [1, 2, 3]
    assert (await service.checklist(ALICE, None)).done_count == 1
    # Another date has its own budget.
    yesterday = date(2026, 11, 20)
    assert (await service.check(ALICE, run, yesterday)).created


async def test_dates_outside_the_window_and_references_are_refused() -> None:
    service, uow, _clock, (run, _review, _mission, note) = await seeded()
    with pytest.raises(DateInFuture):
        await service.check(ALICE, run, date(2026, 11, 22))
    with pytest.raises(DateTooOld):
        await service.check(ALICE, run, date(2026, 11, 19))
    with pytest.raises(NotCheckable):
        await service.check(ALICE, note, None)
    assert uow.tables.events == []


async def test_someone_elses_or_an_unknown_action_is_not_found() -> None:
    service, _uow, _clock, (run, *_rest) = await seeded()
    for owner in (Owner("evil", "alice"), Owner("acme", "bob")):
        with pytest.raises(NotFound):
            await service.check(owner, run, None)
    with pytest.raises(NotFound):
        await service.check(ALICE, new_id(), None)


async def test_a_mission_is_checked_once() -> None:
    service, _uow, _clock, (_run, _review, mission, _note) = await seeded()
    await service.check(ALICE, mission, date(2026, 11, 20))
    with pytest.raises(MissionAlreadyDone):
        await service.check(ALICE, mission, date(2026, 11, 21))
    await service.uncheck(ALICE, mission, date(2026, 11, 20))
    assert (await service.check(ALICE, mission, date(2026, 11, 21))).created


async def test_the_timezone_of_goal_changed_is_used_until_user_changed_arrives() -> None:
    service, uow, _clock, (run, *_rest) = await seeded(timezone="America/New_York")
    assert (await service.checklist(ALICE, None)).day == date(2026, 11, 20)  # New York
    await feed(uow, user_changed("acme", "alice", 1, "Asia/Seoul"))
    assert (await service.checklist(ALICE, None)).day == date(2026, 11, 21)  # Seoul
    result = await service.check(ALICE, run, None)
    assert result.slot.day == date(2026, 11, 21)


async def test_a_user_with_nothing_known_lives_in_seoul() -> None:
    service, _uow, _clock = make()
    checklist = await service.checklist(Owner("acme", "nobody"), None)
    assert (checklist.day, checklist.due_count, checklist.perfect) == (date(2026, 11, 21), 0, False)


async def test_the_checklist_follows_the_clock_through_a_week() -> None:
    service, _uow, clock, (run, review, mission, _note) = await seeded()
    clock.now = datetime(2026, 11, 16, 3, 0, tzinfo=UTC)  # Monday noon in Seoul
    monday = await service.checklist(ALICE, None)
    assert [e.action.id for e in monday.entries] == [run, review, mission]
    await service.check(ALICE, mission, None)
    clock.now += timedelta(days=1)
    tuesday = await service.checklist(ALICE, None)
    assert [e.action.id for e in tuesday.entries] == [run]  # no review, mission done


# --- the read model: any order, any repetition, same state ------------------------------------


def _versions() -> list[GoalChanged]:
    grid_id = new_id()
    kept = action("Kept")
    return [
        goal_changed("acme", "alice", grid_id, 1, [("S", [kept])]),
        goal_changed("acme", "alice", grid_id, 2, [("S", [kept, action("Added")])]),
        goal_changed("acme", "alice", grid_id, 3, [("S", [kept])], active=False),
        goal_changed("acme", "alice", grid_id, 4, [("S", [kept])]),
    ]


VERSIONS = _versions()
USERS: list[Event] = [
    user_changed("acme", "alice", v, tz) for v, tz in [(1, "Asia/Seoul"), (2, "Europe/Paris")]
]


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.sampled_from([*VERSIONS, *USERS]), min_size=1, max_size=12),
    st.integers(min_value=1, max_value=4),
)
def test_the_read_model_converges_whatever_the_order_and_repetition(
    deliveries: list[Event], batch: int
) -> None:
    async def final_state(events: list[Event]) -> Tables:
        uow = InMemoryUnitOfWork()
        for start in range(0, len(events), batch):
            await feed(uow, *events[start : start + batch])
        return uow.tables

    got = asyncio.run(final_state(deliveries))
    once = list({id(e): e for e in deliveries}.values())
    expected = asyncio.run(final_state(sorted(once, key=_order)))  # in version order, once each
    assert got.grids == expected.grids
    assert got.profiles == expected.profiles


def _order(event: Event) -> tuple[int, int]:
    if isinstance(event, GoalChanged):
        return (0, event.mandalart.version)
    return (1, event.version)
