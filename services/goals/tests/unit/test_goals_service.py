"""Use cases over the in-memory store: events, local dates, preconditions, paging, idempotency."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta

import pytest

from goals.domain.errors import NotFound, VersionMismatch
from goals.domain.model import (
    ActionDraft,
    IfMatch,
    Mandalart,
    MandalartDraft,
    Owner,
    SubGoalDraft,
)
from goals.service import ChangeSettings, EditMandalart, GoalsService
from goals.store.memory import InMemoryUnitOfWork
from mandaact_common.domain.schedule import Schedule
from mandaact_common.idempotency import (
    IdempotencyKeyReused,
    IdempotentRequest,
    StoredResponse,
)
from mandaact_common.testing import SettableClock
from mandaact_contracts import topics
from mandaact_contracts.events import GoalChanged, UserChanged

pytestmark = pytest.mark.unit

ALICE = Owner("acme", "alice")
MALLORY = Owner("evil", "alice")
# 16:30 UTC is already the next day in Seoul (UTC+9) but not in Los Angeles.
CLOCK_AT = datetime(2026, 11, 24, 16, 30, tzinfo=UTC)


def make() -> tuple[GoalsService, InMemoryUnitOfWork, SettableClock]:
    uow = InMemoryUnitOfWork()
    clock = SettableClock(CLOCK_AT)
    ids = itertools.count(1)
    return GoalsService(uow, clock=clock, new_id=lambda: f"id-{next(ids)}"), uow, clock


def draft(title: str = "Goal") -> MandalartDraft:
    return MandalartDraft(
        title=title,
        sub_goals=(SubGoalDraft(1, "S1", (ActionDraft(1, "A", "routine", Schedule.daily()),)),),
    )


async def test_create_emits_the_whole_grid_with_the_owner_timezone_and_local_date() -> None:
    goals, uow, _ = make()
    grid = await goals.create_mandalart(ALICE, draft())
    assert grid.sub_goals[0].actions[0].added_on == date(2026, 11, 25)  # Seoul's date
    [(topic, payload, subject)] = uow.events
    assert topic == topics.GOAL_CHANGED
    assert subject == f"mandalarts/{grid.id}"
    assert isinstance(payload, GoalChanged)
    assert payload.timezone == "Asia/Seoul"
    assert payload.mandalart == grid.snapshot()


async def test_settings_timezone_drives_added_on_and_the_event() -> None:
    goals, uow, _ = make()
    saved = await goals.change_settings(ALICE, ChangeSettings(timezone="America/Los_Angeles"))
    assert saved.version == 1
    grid = await goals.create_mandalart(ALICE, draft())
    assert grid.sub_goals[0].actions[0].added_on == date(2026, 11, 24)
    user_event, goal_event = (payload for _, payload, _ in uow.events)
    assert isinstance(user_event, UserChanged)
    assert (user_event.version, user_event.timezone) == (1, "America/Los_Angeles")
    assert isinstance(goal_event, GoalChanged)
    assert goal_event.timezone == "America/Los_Angeles"


async def test_settings_defaults_then_versions_increase_only_on_change() -> None:
    goals, uow, _ = make()
    defaults = await goals.get_settings(ALICE)
    assert (defaults.timezone, defaults.locale, defaults.version) == ("Asia/Seoul", "ko", 0)
    assert (await goals.change_settings(ALICE, ChangeSettings(locale="en"))).version == 1
    assert (await goals.change_settings(ALICE, ChangeSettings(locale="en"))).version == 1
    assert (await goals.change_settings(ALICE, ChangeSettings(display_name="A"))).version == 2
    versions = [p.version for _, p, _ in uow.events if isinstance(p, UserChanged)]
    assert versions == [1, 2]
    with pytest.raises(VersionMismatch):
        await goals.change_settings(ALICE, ChangeSettings(locale="ko"), IfMatch(frozenset({1})))


async def test_changes_bump_version_and_emit_once_each() -> None:
    goals, uow, clock = make()
    grid = await goals.create_mandalart(ALICE, draft())
    clock.now += timedelta(days=2)
    grid = await goals.edit_mandalart(ALICE, grid.id, EditMandalart(title="New"))
    grid = await goals.edit_mandalart(ALICE, grid.id, EditMandalart(title="New"))  # no-op
    grid = await goals.put_sub_goal(
        ALICE,
        grid.id,
        SubGoalDraft(1, "S1", (ActionDraft(1, "A2", "mission"), ActionDraft(2, "B", "mission"))),
    )
    first = grid.sub_goals[0].actions
    assert first[0].id == "id-2"  # kept from creation
    assert first[0].added_on == date(2026, 11, 25)
    assert first[1].added_on == date(2026, 11, 27)
    grid = await goals.put_action(ALICE, grid.id, 1, ActionDraft(2, "B2", "reference"))
    grid = await goals.remove_action(ALICE, grid.id, 1, 1)
    deleted = await goals.delete_mandalart(ALICE, grid.id)
    versions = [p.mandalart.version for _, p, _ in uow.events if isinstance(p, GoalChanged)]
    assert versions == [1, 2, 3, 4, 5, 6]
    assert deleted.deleted
    last = uow.events[-1][1]
    assert isinstance(last, GoalChanged)
    assert last.mandalart.deleted is True
    with pytest.raises(NotFound):
        await goals.get_mandalart(ALICE, grid.id)
    assert (await goals.list_mandalarts(ALICE, limit=10)).items == []


async def test_stale_if_match_changes_nothing() -> None:
    goals, uow, _ = make()
    grid = await goals.create_mandalart(ALICE, draft())
    await goals.edit_mandalart(ALICE, grid.id, EditMandalart(active=False), IfMatch(frozenset({1})))
    with pytest.raises(VersionMismatch) as caught:
        await goals.edit_mandalart(
            ALICE, grid.id, EditMandalart(title="X"), IfMatch(frozenset({1}))
        )
    assert caught.value.current == 2
    with pytest.raises(VersionMismatch):
        await goals.delete_mandalart(ALICE, grid.id, IfMatch(frozenset({1})))
    assert (await goals.get_mandalart(ALICE, grid.id)).title == "Goal"
    assert len(uow.events) == 2


async def test_another_tenant_sees_nothing() -> None:
    goals, uow, _ = make()
    grid = await goals.create_mandalart(ALICE, draft())
    with pytest.raises(NotFound):
        await goals.get_mandalart(MALLORY, grid.id)
    with pytest.raises(NotFound):
        await goals.edit_mandalart(MALLORY, grid.id, EditMandalart(title="pwned"))
    with pytest.raises(NotFound):
        await goals.delete_mandalart(MALLORY, grid.id)
    assert (await goals.list_mandalarts(MALLORY, limit=10)).items == []
    assert len(uow.events) == 1


async def test_paging_newest_first() -> None:
    goals, _, clock = make()
    created: list[Mandalart] = []
    for n in range(5):
        clock.now = CLOCK_AT + timedelta(minutes=n // 2)  # pairs share a timestamp
        created.append(await goals.create_mandalart(ALICE, draft(f"G{n}")))
    await goals.edit_mandalart(ALICE, created[4].id, EditMandalart(active=False))
    seen: list[str] = []
    page = await goals.list_mandalarts(ALICE, limit=2)
    seen += [g.title for g in page.items]
    while page.next_cursor is not None:
        page = await goals.list_mandalarts(ALICE, limit=2, cursor=page.next_cursor)
        seen += [g.title for g in page.items]
    assert sorted(seen) == ["G0", "G1", "G2", "G3", "G4"]
    assert seen[0] == "G4"
    assert len(set(seen)) == 5
    active = await goals.list_mandalarts(ALICE, limit=10, active=True)
    assert [g.title for g in active.items if g.title == "G4"] == []


async def test_idempotent_create_replays_and_refuses_another_body() -> None:
    goals, uow, _ = make()

    def present(grid: Mandalart) -> StoredResponse:
        return StoredResponse(201, {"id": grid.id})

    request = IdempotentRequest("acme", "alice", "POST /v1/mandalarts", "k1", "hash-a")
    first = await goals.create_mandalart_once(ALICE, draft(), request, present)
    again = await goals.create_mandalart_once(ALICE, draft(), request, present)
    assert first == again
    assert len(uow.mandalarts) == 1
    other = IdempotentRequest("acme", "alice", "POST /v1/mandalarts", "k1", "hash-b")
    with pytest.raises(IdempotencyKeyReused):
        await goals.create_mandalart_once(ALICE, draft("Other"), other, present)
    assert len(uow.mandalarts) == 1
    assert len(uow.events) == 1
