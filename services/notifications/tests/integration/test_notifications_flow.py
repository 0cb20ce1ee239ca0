"""The service on the real MongoDB-compatible server: the consumer, the timers, the outbox."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from mandaact_common.domain.owner import Owner
from mandaact_common.mongo import Doc
from mandaact_common.testing import SettableClock, auth_header, watched_client
from mandaact_contracts import topics
from notifications.domain.records import SentCursor
from notifications.service import NotificationsService
from notifications.store.mongo import MongoNotificationsStore
from services.notifications.tests.integration.conftest import Feed
from services.notifications.tests.support import (
    TODAY,
    badge_unlocked,
    checkin,
    goal_changed,
    seoul,
    streak_changed,
)

pytestmark = pytest.mark.integration

Outbox = Callable[..., Awaitable[list[dict[str, Any]]]]


async def test_streak_at_risk_is_announced_through_the_outbox_and_listed(
    feed: Feed,
    workers: list[NotificationsService],
    clock: SettableClock,
    outbox: Outbox,
    http: httpx.AsyncClient,
) -> None:
    for user, days in (("bob", (3, 2, 1)), ("carol", (3, 2, 1, 0))):
        await feed(goal_changed(user, [{"id": f"{user}-run"}]))
        await feed(*(checkin(user, f"{user}-run", TODAY - timedelta(days=d)) for d in days))
        await feed(streak_changed(user, 3, TODAY - timedelta(days=1), at=clock.now))

    clock.now = seoul(TODAY, 21, 0, 30)
    await workers[0].run_due()

    requested = await outbox(topics.NOTIFICATION_REQUESTED)
    assert sorted((e["payload"]["user_id"], e["payload"]["kind"]) for e in requested) == [
        ("bob", "daily_reminder"),
        ("bob", "streak_at_risk"),
    ]
    at_risk = next(e for e in requested if e["payload"]["kind"] == "streak_at_risk")
    assert at_risk["header_map"]["ce_type"] == "mandaact.notification.requested.v1"
    assert at_risk["payload"]["local_date"] == TODAY.isoformat()
    listed = await http.get("/v1/me/notifications", headers=auth_header("acme", "bob"))
    assert listed.status_code == 200
    # Both were decided by one worker's pass at 21:00:30.
    assert {n["kind"] for n in listed.json()["items"]} == {"streak_at_risk", "daily_reminder"}
    carol = await http.get("/v1/me/notifications", headers=auth_header("acme", "carol"))
    assert carol.json()["items"] == []


async def test_two_workers_together_send_each_notification_once(
    feed: Feed,
    workers: list[NotificationsService],
    clock: SettableClock,
    outbox: Outbox,
    db: AsyncDatabase[Doc],
) -> None:
    users = [f"user{n}" for n in range(12)]
    await feed(*(goal_changed(u, [{"id": f"{u}-a"}]) for u in users))
    assert await db["timers"].count_documents({"kind": "daily_reminder"}) == len(users)

    clock.now = seoul(TODAY, 20, 0, 5)
    sent = await asyncio.gather(*(w.run_due() for w in workers))
    again = await asyncio.gather(*(w.run_due() for w in workers))

    assert sum(sent) == len(users)
    assert sum(again) == 0
    requested = await outbox(topics.NOTIFICATION_REQUESTED)
    assert sorted(e["payload"]["user_id"] for e in requested) == sorted(users)
    tomorrow = seoul(TODAY + timedelta(days=1), 20)
    fire_times = await db["timers"].distinct("fire_at", {"kind": "daily_reminder"})
    assert [t.replace(tzinfo=tomorrow.tzinfo) for t in fire_times] == [tomorrow]


async def test_a_badge_at_23_waits_for_08_and_a_redelivery_changes_nothing(
    feed: Feed,
    workers: list[NotificationsService],
    clock: SettableClock,
    outbox: Outbox,
) -> None:
    clock.now = seoul(TODAY, 23)
    [envelope] = await feed(badge_unlocked("dana", "first_checkin", clock.now))
    await feed(envelope)  # the same event again: the processed id drops it
    await feed(badge_unlocked("dana", "first_checkin", clock.now))  # a copy with a new id
    assert await outbox(topics.NOTIFICATION_REQUESTED) == []

    clock.now = seoul(TODAY + timedelta(days=1), 8, 0, 1)
    await asyncio.gather(*(w.run_due() for w in workers))

    [told] = await outbox(topics.NOTIFICATION_REQUESTED)
    assert told["payload"]["kind"] == "badge_unlocked"
    assert told["payload"]["local_date"] == (TODAY + timedelta(days=1)).isoformat()


async def test_the_fifth_notification_of_a_day_is_not_sent(feed: Feed, outbox: Outbox) -> None:
    await feed(*(badge_unlocked("erin", f"badge_{n}", seoul(TODAY, 12)) for n in range(5)))
    await feed(badge_unlocked("erin", "badge_6", seoul(TODAY, 12)))
    assert len(await outbox(topics.NOTIFICATION_REQUESTED)) == 4


async def test_done_dates_and_sent_pages_read_by_the_index_not_a_scan_of_every_tenant(
    feed: Feed,
    workers: list[NotificationsService],
    clock: SettableClock,
    db: AsyncDatabase[Doc],
    infra: Any,
) -> None:
    """What a reminder decision reads (a day's check-ins, any date of the missions) and a page
    of sent notifications after a cursor are index reads: the server used here answers an
    `$or` by scanning every tenant's rows."""
    await feed(goal_changed("bob", [{"id": "run"}, {"id": "ship"}]))
    await feed(*(checkin("bob", "run", TODAY - timedelta(days=d)) for d in (3, 2, 1)))
    await feed(checkin("bob", "ship", TODAY - timedelta(days=5)), checkin("carol", "run", TODAY))
    await feed(streak_changed("bob", 3, TODAY - timedelta(days=1), at=clock.now))
    clock.now = seoul(TODAY, 21, 0, 30)
    await workers[0].run_due()
    async with watched_client(infra.mongodb_url) as (client, plans):
        store = MongoNotificationsStore(client[db.name], None)
        bob = Owner("acme", "bob")
        yesterday = TODAY - timedelta(days=1)
        done = await store.done_dates(bob, since=yesterday, until=yesterday, missions=["ship"])
        assert done == {"run": {yesterday}, "ship": {TODAY - timedelta(days=5)}}
        first = await store.sent_page(bob, limit=1, after=None)
        rest = await store.sent_page(
            bob, limit=5, after=SentCursor(first[0].created_at, first[0].id)
        )
        assert len(first) == 1
        assert len(rest) >= 1
        assert not {s.id for s in first} & {s.id for s in rest}
        assert await plans.scans(client) == []
