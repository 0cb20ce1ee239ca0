"""The rules of SPEC §8 over the in-memory store, with a clock the tests move by hand."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from mandaact_common.consumer import Inbound
from mandaact_common.testing import SettableClock, record_of
from mandaact_contracts import topics
from mandaact_contracts.envelope import new_envelope
from mandaact_contracts.events import EVENT_TYPES, EventPayload, NotificationRequested
from notifications.consumers.handler import facts_of
from notifications.domain.records import Sent
from notifications.service import NotificationsService, project
from notifications.store.memory import (
    InMemoryNotificationsStore,
    InMemoryTimerLeases,
    InMemoryUnitOfWork,
)
from services.notifications.tests.support import (
    TODAY,
    badge_unlocked,
    checkin,
    goal_changed,
    level_reached,
    report_generated,
    seoul,
    streak_changed,
    user_changed,
)

pytestmark = pytest.mark.unit

_TOPIC = {spec.model: topic for topic, spec in EVENT_TYPES.items()}


def inbound(payload: EventPayload) -> Inbound:
    """The consumer's view of one delivered event."""
    envelope = new_envelope(_TOPIC[type(payload)], payload, "test")
    return Inbound(envelope, payload, record_of(envelope))


class Harness:
    """The use cases over the in-memory store; events go through the real handler's mapping."""

    def __init__(self, now: datetime) -> None:
        self.clock = SettableClock(now)
        self.uow = InMemoryUnitOfWork()
        self.service = NotificationsService(
            self.uow, InMemoryTimerLeases(self.uow), clock=self.clock
        )

    async def deliver(self, *payloads: EventPayload) -> None:
        facts = facts_of([inbound(p) for p in payloads])

        async def work(store: InMemoryNotificationsStore) -> None:
            await project(store, facts, self.clock())

        await self.uow.run(work)

    async def at(self, instant: datetime) -> int:
        """Move the clock to `instant` and let a worker fire what is due."""
        self.clock.now = instant
        return await self.service.run_due()

    def sent(self, user: str) -> list[Sent]:
        found = [s for s in self.uow.tables.sent.values() if s.owner.user_id == user]
        return sorted(found, key=lambda s: s.created_at)

    def kinds(self, user: str) -> list[str]:
        return [s.kind for s in self.sent(user)]

    def requested(self) -> list[NotificationRequested]:
        return [
            p
            for topic, p, _ in self.uow.events
            if topic == topics.NOTIFICATION_REQUESTED and isinstance(p, NotificationRequested)
        ]


def days_back(n: int) -> date:
    return TODAY - timedelta(days=n)


async def streak_user(h: Harness, user: str, *, today_too: bool = False) -> None:
    """A user with one daily action and check-ins on the three days before today."""
    await h.deliver(goal_changed(user, [{"id": f"{user}-run"}]))
    days = [days_back(3), days_back(2), days_back(1)] + ([TODAY] if today_too else [])
    await h.deliver(*(checkin(user, f"{user}-run", d) for d in days))
    await h.deliver(streak_changed(user, 3, days_back(1), at=seoul(days_back(1), 9)))


async def test_streak_at_risk_at_21_seoul_only_for_who_has_not_checked_in() -> None:
    h = Harness(seoul(TODAY, 12))
    await streak_user(h, "bob")
    await streak_user(h, "carol", today_too=True)  # streak.changed for today not yet arrived

    await h.at(seoul(TODAY, 20, 59))
    assert "streak_at_risk" not in h.kinds("bob")
    await h.at(seoul(TODAY, 21, 0))

    at_risk = [s for s in h.sent("bob") if s.kind == "streak_at_risk"]
    assert len(at_risk) == 1
    assert at_risk[0].local_date == TODAY
    assert "3" in at_risk[0].body
    assert at_risk[0].deep_link == "mandaact://checklist"
    assert h.kinds("carol") == []
    assert {(r.user_id, r.kind) for r in h.requested()} == {
        ("bob", "daily_reminder"),
        ("bob", "streak_at_risk"),
    }


async def test_the_next_day_streak_at_risk_fires_again_only_while_the_streak_stands() -> None:
    h = Harness(seoul(TODAY, 12))
    await streak_user(h, "bob")
    await h.at(seoul(TODAY, 21, 0))
    await h.at(seoul(TODAY + timedelta(days=1), 21, 0))  # today ended without a check-in
    assert h.kinds("bob").count("streak_at_risk") == 1


async def test_a_badge_at_23_waits_for_the_end_of_quiet_hours() -> None:
    h = Harness(seoul(TODAY, 23))
    await h.deliver(badge_unlocked("dana", "first_checkin", seoul(TODAY, 23)))
    assert h.kinds("dana") == []

    await h.at(seoul(TODAY + timedelta(days=1), 7, 59))
    assert h.kinds("dana") == []
    await h.at(seoul(TODAY + timedelta(days=1), 8, 0))

    [sent] = h.sent("dana")
    assert sent.kind == "badge_unlocked"
    assert sent.local_date == TODAY + timedelta(days=1)
    assert sent.created_at == seoul(TODAY + timedelta(days=1), 8, 0)
    assert sent.deep_link == "mandaact://badges/first_checkin"
    assert await h.at(seoul(TODAY + timedelta(days=1), 9, 0)) == 0  # sent once


async def test_the_fifth_notification_of_a_day_is_not_sent() -> None:
    h = Harness(seoul(TODAY, 12))
    badges = [f"badge_{n}" for n in range(1, 6)]
    await h.deliver(*(badge_unlocked("erin", b, seoul(TODAY, 12)) for b in badges))

    assert [s.kind for s in h.sent("erin")] == ["badge_unlocked"] * 4
    assert len(h.requested()) == 4
    h.clock.now = seoul(TODAY + timedelta(days=1), 12)
    await h.deliver(level_reached("erin", 3, seoul(TODAY + timedelta(days=1), 12)))
    assert len(h.sent("erin")) == 5  # a new day, a new allowance


async def test_the_same_badge_is_told_once_even_when_its_event_comes_twice() -> None:
    h = Harness(seoul(TODAY, 12))
    event = badge_unlocked("fay", "streak_3", seoul(TODAY, 12))
    await h.deliver(event)
    await h.deliver(event)  # a redelivery with a new envelope: the dedupe key holds
    assert h.kinds("fay") == ["badge_unlocked"]


async def test_settings_of_the_user_decide_quiet_hours_locale_and_kinds() -> None:
    h = Harness(seoul(TODAY, 14))
    await h.deliver(
        user_changed(
            "gus",
            locale="en",
            quiet_hours={"from": "13:00", "to": "15:00"},
            notifications={"level_reached": False},
        )
    )
    await h.deliver(
        report_generated("gus", "2026-W46", seoul(TODAY, 14)),
        level_reached("gus", 4, seoul(TODAY, 14)),
    )
    assert h.kinds("gus") == []
    await h.at(seoul(TODAY, 15, 0))

    [sent] = h.sent("gus")
    assert sent.kind == "report_ready"
    assert sent.locale == "en"
    assert sent.title == "Your weekly report"
    assert "2026-W46" in sent.body
    assert sent.deep_link == "mandaact://reports/2026-W46"


async def test_nothing_is_sent_on_a_paused_date() -> None:
    h = Harness(seoul(TODAY, 12))
    await h.deliver(
        user_changed("hana", pauses=[{"from": days_back(1).isoformat(), "to": TODAY.isoformat()}])
    )
    await streak_user(h, "hana")
    await h.deliver(badge_unlocked("hana", "streak_3", seoul(TODAY, 12)))
    await h.at(seoul(TODAY, 21, 0))
    assert h.kinds("hana") == []


async def test_the_daily_reminder_counts_what_is_left_and_stays_quiet_when_all_is_done() -> None:
    h = Harness(seoul(TODAY, 12))
    await h.deliver(goal_changed("ivy", [{"id": "a1"}, {"id": "a2"}]))
    await h.deliver(goal_changed("jon", [{"id": "b1"}]))
    await h.deliver(checkin("ivy", "a1", TODAY), checkin("jon", "b1", TODAY))

    await h.at(seoul(TODAY, 20, 0))

    [reminder] = h.sent("ivy")
    assert reminder.kind == "daily_reminder"
    assert "1" in reminder.body
    assert h.kinds("jon") == []


async def test_an_undone_check_in_counts_as_not_done() -> None:
    h = Harness(seoul(TODAY, 12))
    await h.deliver(goal_changed("kim", [{"id": "k1"}]))
    await h.deliver(checkin("kim", "k1", TODAY, seq=2, done=False), checkin("kim", "k1", TODAY))
    await h.at(seoul(TODAY, 20, 0))
    assert h.kinds("kim") == ["daily_reminder"]  # seq 2 (the undo) wins whatever the order


async def test_comeback_on_the_third_day_after_the_last_check_in() -> None:
    h = Harness(seoul(days_back(3), 12))
    await h.deliver(goal_changed("lee", [{"id": "l1"}]), user_changed("lee"))
    await h.deliver(checkin("lee", "l1", days_back(3)))
    await h.at(seoul(days_back(3), 23))  # the day's reminder had nothing left to do

    for back in (2, 1):
        await h.at(seoul(days_back(back), 20, 0))
    assert "comeback" not in h.kinds("lee")
    await h.at(seoul(TODAY, 20, 0))

    comeback = [s for s in h.sent("lee") if s.kind == "comeback"]
    assert len(comeback) == 1
    assert "3" in comeback[0].body


async def test_a_timer_found_hours_late_is_skipped_and_set_for_the_next_day() -> None:
    h = Harness(seoul(TODAY, 12))
    await h.deliver(goal_changed("max", [{"id": "m1"}]))
    await h.at(seoul(TODAY + timedelta(days=1), 3, 0))  # the workers were down from 20:00
    assert h.kinds("max") == []
    await h.at(seoul(TODAY + timedelta(days=1), 20, 0))
    assert h.kinds("max") == ["daily_reminder"]


async def test_after_a_long_outage_todays_time_is_still_kept_if_within_reach() -> None:
    h = Harness(seoul(TODAY, 12))
    await h.deliver(goal_changed("ola", [{"id": "o1"}]))
    tomorrow = TODAY + timedelta(days=1)
    await h.at(seoul(tomorrow, 21, 0))  # yesterday's 20:00 is missed, today's only by an hour
    assert [(s.kind, s.local_date) for s in h.sent("ola")] == [("daily_reminder", tomorrow)]


async def test_an_event_from_days_ago_is_not_told() -> None:
    h = Harness(seoul(TODAY, 12))
    await h.deliver(badge_unlocked("ned", "first_checkin", seoul(days_back(3), 12)))
    assert h.kinds("ned") == []


async def test_two_workers_claiming_at_once_send_each_notification_once() -> None:
    h = Harness(seoul(TODAY, 12))
    for n in range(10):
        await h.deliver(goal_changed(f"u{n}", [{"id": f"u{n}-a"}]))
    other = NotificationsService(h.uow, InMemoryTimerLeases(h.uow), clock=h.clock, chunk=3)
    h.clock.now = seoul(TODAY, 20, 0)
    sent = await h.service.run_due() + await other.run_due()
    assert sent == 10
    assert len(h.requested()) == 10


async def test_nothing_is_sent_to_an_erased_user_and_their_due_timers_go() -> None:
    h = Harness(seoul(TODAY, 12))
    await streak_user(h, "gus")
    await streak_user(h, "hana")
    h.clock.now = seoul(TODAY, 23)
    await h.deliver(badge_unlocked("gus", "streak_3", h.clock.now))  # waits for 08:00
    assert any(t.type == "pending" for t in h.uow.tables.timers.values())
    # The tombstone is there, the erasure job has not run yet (its grace period).
    h.uow.tables.erased.add(next(o for o in h.uow.tables.users if o.user_id == "gus"))

    await h.at(seoul(TODAY + timedelta(days=1), 21, 0))

    assert h.kinds("gus") == []
    gus = [t for t in h.uow.tables.timers.values() if t.owner.user_id == "gus"]
    assert all(t.fire_at > h.clock.now for t in gus), "a due row of an erased user is removed"
    assert "daily_reminder" in h.kinds("hana")
