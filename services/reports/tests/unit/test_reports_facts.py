"""The fold's facts converge whatever the order or repetition of events."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mandaact_common.domain.pauses import Pause
from mandaact_common.keys import owner_of
from mandaact_contracts.events import (
    ActionCompleted,
    ActionSnapshot,
    ActionUncompleted,
    BadgeUnlocked,
    EventPayload,
    GoalChanged,
    LevelReached,
    MandalartSnapshot,
    ScheduleSnapshot,
    StreakChanged,
    SubGoalSnapshot,
    UserChanged,
    XpAwarded,
    XpRevoked,
)
from reports.domain.facts import UserFacts
from reports.domain.report import report_due_at
from reports.service import _Batch
from reports.store.mongo import (
    bucket_from_doc,
    bucket_to_doc,
    user_from_doc,
    user_to_doc,
    week_from_doc,
    week_to_doc,
)

pytestmark = pytest.mark.unit

T, U = "acme", "alice"
MON = date(2026, 11, 16)
BASE = datetime(2026, 11, 16, tzinfo=UTC)


def _grid(version: int, hours: int) -> GoalChanged:
    at = BASE + timedelta(hours=hours)
    return GoalChanged(
        tenant_id=T,
        user_id=U,
        timezone="Asia/Seoul",
        mandalart=MandalartSnapshot(
            id="m1",
            title="Core",
            description=None,
            active=True,
            version=version,
            created_at=BASE,
            updated_at=at,
            sub_goals=[
                SubGoalSnapshot(
                    position=1,
                    title=f"Sub v{version}",
                    actions=[
                        ActionSnapshot(
                            id="a1",
                            position=1,
                            title="Daily",
                            type="routine",
                            schedule=ScheduleSnapshot(frequency="daily"),
                            due_date=None,
                            added_on=MON,
                        ),
                        ActionSnapshot(
                            id="r1",
                            position=2,
                            title="Note",
                            type="reference",
                            schedule=None,
                            due_date=None,
                            added_on=MON,
                        ),
                    ],
                )
            ],
        ),
    )


def _checkin(seq: int, done: bool, day: int = 0, kind: str = "routine") -> EventPayload:
    cls = ActionCompleted if done else ActionUncompleted
    return cls(
        tenant_id=T,
        user_id=U,
        checkin_id=str(uuid.uuid4()),
        action_id="a1" if kind == "routine" else "m9",
        mandalart_id="m1",
        sub_goal_position=1,
        sub_goal_title="Sub",
        action_title="Daily",
        action_type="mission" if kind == "mission" else "routine",
        local_date=MON + timedelta(days=day),
        timezone="Asia/Seoul",
        occurred_at=BASE + timedelta(days=day, minutes=seq),
        seq=seq,
    )


def _xp(entry: str, amount: int, local: date | None) -> EventPayload:
    cls = XpAwarded if amount > 0 else XpRevoked
    return cls(
        tenant_id=T,
        user_id=U,
        entry_id=entry,
        amount=amount,
        reason="checkin" if local else "badge",
        action_id=None,
        local_date=local,
        badge=None,
        source_event_id=str(uuid.uuid4()),
        xp_total=100,
        level=2,
        created_at=BASE + timedelta(days=2),
    )


EVENTS: list[EventPayload] = [
    UserChanged(
        tenant_id=T,
        user_id=U,
        version=1,
        timezone="Asia/Seoul",
        locale="ko",
        display_name=None,
        changed_at=BASE,
    ),
    UserChanged(
        tenant_id=T,
        user_id=U,
        version=2,
        timezone="America/New_York",
        locale="en",
        display_name="A",
        changed_at=BASE + timedelta(hours=1),
    ),
    _grid(1, 1),
    _grid(2, 2),
    _grid(3, 24 * 8),  # next week: another bucket
    _checkin(1, True),
    _checkin(2, False),
    _checkin(3, True),
    _checkin(1, True, day=1),
    _checkin(1, True, day=2, kind="mission"),
    _checkin(2, False, day=2, kind="mission"),
    _xp("x1", 10, MON),
    _xp("x2", -10, MON),
    _xp("b1", 50, None),
    LevelReached(tenant_id=T, user_id=U, level=2, xp_total=100, reached_at=BASE),
    LevelReached(tenant_id=T, user_id=U, level=2, xp_total=100, reached_at=BASE + timedelta(1)),
    BadgeUnlocked(tenant_id=T, user_id=U, badge="first_checkin", xp_reward=50, unlocked_at=BASE),
    StreakChanged(
        tenant_id=T,
        user_id=U,
        current=1,
        longest=1,
        last_active_date=MON,
        changed_at=BASE,
    ),
    StreakChanged(
        tenant_id=T,
        user_id=U,
        current=2,
        longest=2,
        last_active_date=MON + timedelta(days=1),
        changed_at=BASE + timedelta(days=1),
    ),
]


def _fold(events: list[EventPayload]) -> tuple[object, object, object]:
    batch = _Batch(users={}, weeks={}, buckets={})
    for e in events:
        batch.apply(e)
    # Compare through the stored form, as a later batch would read it back.
    users = {k: user_from_doc(user_to_doc(k, v)) for k, v in batch.users.items()}
    for user in users.values():
        # A stand-in for the settings' timezone: not kept once the settings are known.
        if user.version > 0:
            user.checkin_timezone = user.checkin_timezone_at = None
    weeks = {k: week_from_doc(week_to_doc(owner_of(k), v)) for k, v in batch.weeks.items()}
    buckets = {k: bucket_from_doc(bucket_to_doc(owner_of(k), v)) for k, v in batch.buckets.items()}
    return users, weeks, buckets


@settings(max_examples=100, deadline=None)
@given(st.permutations(EVENTS), st.lists(st.sampled_from(EVENTS), max_size=6))
def test_any_order_and_any_repetition_give_the_same_facts(
    order: list[EventPayload], repeats: list[EventPayload]
) -> None:
    assert _fold([*order, *repeats]) == _fold(EVENTS)


def test_what_the_facts_hold() -> None:
    users, weeks, buckets = _fold(EVENTS)
    assert isinstance(users, dict)
    assert isinstance(weeks, dict)
    assert isinstance(buckets, dict)
    (user,) = users.values()
    assert (user.version, user.timezone, user.locale) == (2, "America/New_York", "en")
    assert user.mission_done_dates() == {}  # the mission was undone (seq 2)
    assert list(user.undated_xp) == ["b1"]
    assert user.levels == {2: BASE}
    (week,) = weeks.values()
    assert sorted((a, d.isoformat(), c.done) for (a, d), c in week.checkins.items()) == [
        ("a1", "2026-11-16", True),
        ("a1", "2026-11-17", True),
        ("m9", "2026-11-18", False),
    ]
    assert week.xp == {"x1": 10, "x2": -10}
    assert week.streak is not None
    assert week.streak.current == 2
    assert sorted((b.week, b.grid.version) for b in buckets.values()) == [
        ("2026-W47", 2),
        ("2026-W48", 3),
    ]
    # references are not checkable, so the grid keeps only the routine
    assert [a.id for b in buckets.values() for sg in b.grid.sub_goals for a in sg.actions] == [
        "a1",
        "a1",
    ]


def test_reports_are_due_monday_0600_local() -> None:
    assert report_due_at("2026-W47", "Asia/Seoul") == datetime(2026, 11, 22, 21, 0, tzinfo=UTC)
    assert report_due_at("2026-W47", "America/New_York") == datetime(
        2026, 11, 23, 11, 0, tzinfo=UTC
    )


def test_a_day_start_after_0600_moves_the_report_to_when_monday_begins() -> None:
    # With the day starting at 09:00, Sunday lasts until Monday 09:00 in Seoul (00:00 UTC).
    assert report_due_at("2026-W47", "Asia/Seoul", "09:00") == datetime(
        2026, 11, 23, 0, 0, tzinfo=UTC
    )
    assert report_due_at("2026-W47", "Asia/Seoul", "04:00") == report_due_at(
        "2026-W47", "Asia/Seoul"
    )


def test_a_user_changed_carries_the_day_start_and_pauses_into_the_weeks() -> None:
    user = UserFacts("acme", "alice")
    pause = (Pause(date(2026, 11, 18), date(2026, 11, 20)),)
    assert user.record_settings(1, "Asia/Seoul", "en", "04:00", pause)
    assert not user.record_settings(1, "UTC", "ko")  # an older or equal version is ignored
    # 2026-11-23 01:30 in Seoul is still Sunday of W47 for this user.
    assert user.week_of(datetime(2026, 11, 22, 16, 30, tzinfo=UTC)) == "2026-W47"
    assert user.unpaused([date(2026, 11, 17), date(2026, 11, 18)]) == [date(2026, 11, 17)]
