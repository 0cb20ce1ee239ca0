"""SPEC §9 on the real server: the export of a user, and the erasure of a user and of a tenant
through the real consumer, timers and erasure jobs (nothing naming them is left, nothing more
is sent to them; the others keep all)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from mandaact_common.lifecycle import Eraser
from mandaact_common.mongo import Doc
from mandaact_common.testing import (
    SettableClock,
    auth_header,
    documents_naming,
    drain_outbox,
    erasure_of,
)
from mandaact_contracts import topics
from notifications.service import NotificationsService
from services.notifications.tests.integration.conftest import Feed
from services.notifications.tests.support import (
    TODAY,
    badge_unlocked,
    checkin,
    goal_changed,
    level_reached,
    seoul,
    streak_changed,
    user_changed,
)

pytestmark = pytest.mark.integration

Outbox = Callable[..., Awaitable[list[dict[str, Any]]]]

# Ids no other text contains, so `documents_naming` finds exactly their documents.
TENANT, OTHER_TENANT = "tn-erase-acme", "tn-keep-globex"
ALICE, BOB, CAROL = "us-erase-alice", "us-keep-bob", "us-keep-carol"
EVERY_COLLECTION = {"users", "grids", "checkins", "timers", "notifications", "daily_counts"}


async def a_user_with_data(feed: Feed, clock: SettableClock, tenant: str, user: str) -> None:
    """Settings, a grid, check-ins, a streak, a badge told at once and a level waiting for the
    end of quiet hours: a document in every collection."""
    clock.now = seoul(TODAY, 12)
    await feed(user_changed(user, 1, tenant=tenant))
    await feed(goal_changed(user, [{"id": f"{user}-run"}], tenant=tenant))
    days = [TODAY - timedelta(days=n) for n in (3, 2, 1)]
    await feed(*(checkin(user, f"{user}-run", d, tenant=tenant) for d in days))
    await feed(streak_changed(user, 3, days[-1], at=clock.now, tenant=tenant))
    await feed(badge_unlocked(user, "streak_3", clock.now, tenant=tenant))
    clock.now = seoul(TODAY, 23)
    await feed(level_reached(user, 2, clock.now, tenant=tenant))


async def world(feed: Feed, clock: SettableClock, db: AsyncDatabase[Doc]) -> None:
    """Alice and Bob of one tenant, Carol of another, each with data; the outbox relayed."""
    for tenant, user in ((TENANT, ALICE), (TENANT, BOB), (OTHER_TENANT, CAROL)):
        await a_user_with_data(feed, clock, tenant, user)
    await drain_outbox(db)


async def told(outbox: Outbox) -> set[tuple[str, str]]:
    return {
        (e["payload"]["user_id"], e["payload"]["kind"])
        for e in await outbox(topics.NOTIFICATION_REQUESTED)
    }


async def test_a_user_is_erased_nothing_more_is_sent_and_nothing_comes_back(
    feed: Feed,
    clock: SettableClock,
    db: AsyncDatabase[Doc],
    workers: list[NotificationsService],
    eraser: Eraser,
    outbox: Outbox,
) -> None:
    await world(feed, clock, db)
    # Plus the counter of her events' numbers (`notification.requested`, SPEC §12).
    named = {name for name, _ in await documents_naming(db, ALICE)}
    assert named == EVERY_COLLECTION | {"user_sequences"}

    await feed(erasure_of(TENANT, ALICE))
    # Before the erasure job runs (its grace period), the timers send nothing more to Alice.
    clock.now = seoul(TODAY + timedelta(days=1), 8, 0, 30)
    await workers[0].run_due()
    assert await told(outbox) == {(BOB, "level_reached"), (CAROL, "level_reached")}
    # Her rows that came due went; the later ones wait for the erasure job.
    assert await db["timers"].count_documents({"user_id": ALICE, "type": "pending"}) == 0
    due = {"user_id": ALICE, "fire_at": {"$lte": clock.now}}
    assert await db["timers"].count_documents(due) == 0
    await drain_outbox(db)
    kept = await documents_naming(db, BOB, OTHER_TENANT)

    assert await eraser.run_due() == 1

    [erased] = await outbox(topics.USER_ERASED)
    assert (erased["payload"]["service"], erased["payload"]["scope"]) == ("notifications", "user")
    assert (erased["payload"]["tenant_id"], erased["payload"]["user_id"]) == (TENANT, ALICE)
    assert [e["topic"] for e in await outbox()] == [topics.USER_ERASED]
    await drain_outbox(db)
    assert await documents_naming(db, ALICE) == []
    assert await documents_naming(db, BOB, OTHER_TENANT) == kept

    # Late events of Alice, and her reminder time: nothing is stored or sent.
    await feed(badge_unlocked(ALICE, "streak_7", clock.now, tenant=TENANT))
    await feed(goal_changed(ALICE, [{"id": "late-run"}], tenant=TENANT, version=2))
    await feed(user_changed(ALICE, 2, tenant=TENANT))
    clock.now = seoul(TODAY + timedelta(days=1), 21, 0, 30)
    await workers[1].run_due()
    assert ALICE not in {user for user, _ in await told(outbox)}
    assert await documents_naming(db, ALICE) == []
    assert await eraser.run_due() == 0


async def test_a_tenant_is_erased_and_the_other_tenant_keeps_everything(
    feed: Feed,
    clock: SettableClock,
    db: AsyncDatabase[Doc],
    workers: list[NotificationsService],
    eraser: Eraser,
    outbox: Outbox,
) -> None:
    await world(feed, clock, db)
    kept = await documents_naming(db, OTHER_TENANT)

    await feed(erasure_of(TENANT))
    assert await eraser.run_due() == 1

    [erased] = await outbox(topics.USER_ERASED)
    assert (erased["payload"]["service"], erased["payload"]["scope"]) == (
        "notifications",
        "tenant",
    )
    assert [e["topic"] for e in await outbox()] == [topics.USER_ERASED]
    await drain_outbox(db)
    assert await documents_naming(db, TENANT) == []
    assert await documents_naming(db, OTHER_TENANT) == kept

    await feed(badge_unlocked(BOB, "streak_7", clock.now, tenant=TENANT))
    clock.now = seoul(TODAY + timedelta(days=1), 8, 0, 30)
    await workers[0].run_due()
    assert await told(outbox) == {(CAROL, "level_reached")}
    await drain_outbox(db)
    assert await documents_naming(db, TENANT) == []


async def test_the_export_holds_the_callers_documents_and_nobody_elses(
    feed: Feed, clock: SettableClock, db: AsyncDatabase[Doc], http: httpx.AsyncClient
) -> None:
    await world(feed, clock, db)
    response = await http.get("/v1/me/export", headers=auth_header(TENANT, ALICE))
    assert response.status_code == 200
    body = response.json()
    assert (body["service"], body["tenant_id"], body["user_id"]) == (
        "notifications",
        TENANT,
        ALICE,
    )
    collections = body["collections"]
    assert set(collections) >= EVERY_COLLECTION
    assert all(collections[name] for name in EVERY_COLLECTION)
    assert [n["kind"] for n in collections["notifications"]] == ["badge_unlocked"]
    assert len(collections["checkins"]) == 3
    for documents in collections.values():
        assert all(doc["user_id"] == ALICE for doc in documents)
    assert BOB not in response.text
    assert CAROL not in response.text
    assert OTHER_TENANT not in response.text
