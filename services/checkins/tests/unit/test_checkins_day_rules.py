"""A user's day start and vacation pauses (SPEC §6) as the checklist and check-ins see them."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from checkins.consumers.handler import grid_of, profile_of
from checkins.domain.errors import DateInFuture
from checkins.domain.model import Owner, checkin_date
from checkins.service import CheckinsService, project
from checkins.store.memory import InMemoryCheckinsStore, InMemoryUnitOfWork
from mandaact_common.testing import SettableClock
from mandaact_contracts.events import ActionCompleted, UserChanged
from services.checkins.tests.support import MON_THU, action, goal_changed, new_id, user_changed

pytestmark = pytest.mark.unit

ALICE = Owner("acme", "alice")
# 16:30 UTC on Friday the 20th is 01:30 on Saturday the 21st in Seoul.
NOW = datetime(2026, 11, 20, 16, 30, tzinfo=UTC)


def settings_of(version: int, **extra: object) -> UserChanged:
    base = user_changed("acme", "alice", version, "Asia/Seoul").model_dump(mode="json")
    return UserChanged.model_validate({**base, **extra})


async def setup(*changes: UserChanged) -> tuple[CheckinsService, InMemoryUnitOfWork, list[str]]:
    uow = InMemoryUnitOfWork()
    service = CheckinsService(uow, backfill_days=1, clock=SettableClock(NOW), new_id=new_id)
    actions = [action("Run"), action("Review", schedule=MON_THU)]
    grid = goal_changed("acme", "alice", new_id(), 1, [("Body", actions)])

    async def work(store: InMemoryCheckinsStore) -> None:
        await project(store, [grid_of(grid)], [profile_of(c) for c in changes])

    await uow.run(work)
    return service, uow, [a["id"] for a in actions]


async def test_a_check_in_at_01_30_with_a_04_00_day_start_counts_for_the_day_before() -> None:
    service, uow, (run, _review) = await setup(settings_of(1, day_starts_at="04:00"))
    result = await service.check(ALICE, run, None)
    assert result.slot.day == date(2026, 11, 20)
    [(_topic, event, _subject)] = uow.tables.events
    assert isinstance(event, ActionCompleted)
    assert event.local_date == date(2026, 11, 20)
    today = await service.checklist(ALICE, None)
    assert (today.day, today.done_count) == (date(2026, 11, 20), 1)
    # Saturday has not begun for this user yet: it is still in the future.
    with pytest.raises(DateInFuture):
        await service.check(ALICE, run, date(2026, 11, 21))
    # Yesterday is Thursday the 19th, inside the one-day backfill.
    assert (await service.check(ALICE, run, date(2026, 11, 19))).created


async def test_without_a_day_start_the_same_instant_is_saturday() -> None:
    service, _uow, (run, _review) = await setup(settings_of(1))
    assert (await service.check(ALICE, run, None)).slot.day == date(2026, 11, 21)


async def test_on_a_paused_date_nothing_is_due_but_the_items_can_be_checked() -> None:
    pause = {"from": "2026-11-21", "to": "2026-11-23", "reason": "trip"}
    service, _uow, (run, _review) = await setup(settings_of(1, pauses=[pause]))
    saturday = await service.checklist(ALICE, None)
    assert saturday.day == date(2026, 11, 21)
    assert saturday.paused
    assert saturday.due_count == 0
    assert [e.action.title for e in saturday.entries] == ["Run"]
    assert (await service.check(ALICE, run, None)).created
    after = await service.checklist(ALICE, None)
    assert (after.paused, after.due_count, after.done_count, after.perfect) == (True, 0, 1, False)
    friday = await service.checklist(ALICE, date(2026, 11, 20))
    assert (friday.paused, friday.due_count) == (False, 1)


async def test_the_newest_settings_decide_the_pauses_whatever_the_order() -> None:
    pause = {"from": "2026-11-21", "to": "2026-11-23"}
    service, _uow, _ids = await setup(settings_of(2), settings_of(1, pauses=[pause]))
    assert not (await service.checklist(ALICE, None)).paused


def test_the_new_york_spring_forward_night_belongs_to_the_day_before_until_04_00() -> None:
    # 2026-03-08 in New York: 02:00 EST jumps to 03:00 EDT. 01:30 EST and 03:30 EDT are both
    # still Saturday the 7th for a user whose day starts at 04:00; 04:00 EDT begins Sunday.
    for instant in (
        datetime(2026, 3, 8, 6, 30, tzinfo=UTC),
        datetime(2026, 3, 8, 7, 30, tzinfo=UTC),
    ):
        assert checkin_date(None, instant, "America/New_York", 1, "04:00") == date(2026, 3, 7)
    sunday = datetime(2026, 3, 8, 8, 0, tzinfo=UTC)
    assert checkin_date(None, sunday, "America/New_York", 1, "04:00") == date(2026, 3, 8)
    assert checkin_date(date(2026, 3, 7), sunday, "America/New_York", 1, "04:00") == date(
        2026, 3, 7
    )
