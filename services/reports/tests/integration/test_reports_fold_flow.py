"""Check-ins spread over a past week, fed as events through the real consumer, fold exactly."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from mandaact_common.consumer import PROCESSED
from mandaact_common.mongo import Doc
from mandaact_common.testing import watched_client
from mandaact_contracts.events import (
    BadgeUnlocked,
    EventPayload,
    LevelReached,
    ScheduleSnapshot,
    StreakChanged,
    XpAwarded,
    XpRevoked,
)
from reports.store.mongo import GRIDS, JOBS, USERS, WEEKS, MongoReportsStore

pytestmark = pytest.mark.integration

MON = date(2026, 11, 16)  # 2026-W47


def d(i: int) -> date:
    return MON + timedelta(days=i)


def xp(u: Any, entry: str, amount: int, day: date) -> EventPayload:
    cls = XpAwarded if amount > 0 else XpRevoked
    return cls(
        tenant_id=u.tenant,
        user_id=u.user,
        entry_id=entry,
        amount=amount,
        reason="checkin",
        action_id="a1",
        local_date=day,
        badge=None,
        source_event_id=str(uuid.uuid4()),
        xp_total=100,
        level=2,
        created_at=datetime.combine(day, datetime.min.time(), UTC),
    )


def week_events(kit: Any) -> tuple[Any, list[EventPayload]]:
    u = kit.Users(timezone="Asia/Seoul", locale="en")
    grid = u.grid(
        [
            (
                "Health",
                [
                    ("a1", kit.DAILY),
                    ("a2", ScheduleSnapshot(frequency="weekly", days=["mon", "thu"])),
                ],
            ),
            ("Work 9-to-5", [("a3", ScheduleSnapshot(frequency="weekly", times=3)), ("m1", None)]),
        ],
        added=MON,
    )
    c = u.check
    events: list[EventPayload] = [
        u.settings(),
        grid,
        c("a1", d(0), hour=7),
        c("a1", d(1), hour=13),
        c("a1", d(2), hour=22),
        c("a1", d(3)),
        c("a1", d(3), undo=True),
        c("a1", d(3)),  # Thursday: checked, undone, checked again (seq 3)
        c("a1", d(5), hour=10),
        c("a1", d(5), undo=True),  # Saturday: undone (seq 2)
        c("a1", d(6), hour=23),  # Sunday 23:xx in Seoul is still Sunday
        c("a2", d(0), hour=6),
        c("a2", d(3), hour=20),
        c("a3", d(1), hour=18, sub_goal=2),
        c("a3", d(2), hour=19, sub_goal=2),
        c("a3", d(3), hour=12, sub_goal=2),
        c("a3", d(4), hour=3, sub_goal=2),  # the 4th of 3 a week: a check-in, not a due one
        c("m1", d(2), hour=9, sub_goal=2, mission=True),
        c("a1", d(-1), hour=9),  # the previous week
        xp(u, "x1", 10, d(0)),
        xp(u, "x2", 15, d(1)),
        xp(u, "x3", -15, d(5)),
        xp(u, "x0", 30, d(-1)),
        StreakChanged(
            tenant_id=u.tenant,
            user_id=u.user,
            current=4,
            longest=6,
            last_active_date=d(6),
            changed_at=datetime(2026, 11, 22, 14, 31, tzinfo=UTC),
        ),
        StreakChanged(
            tenant_id=u.tenant,
            user_id=u.user,
            current=3,
            longest=6,
            last_active_date=d(3),
            changed_at=datetime(2026, 11, 19, 3, 0, tzinfo=UTC),
        ),
        LevelReached(
            tenant_id=u.tenant,
            user_id=u.user,
            level=2,
            xp_total=100,
            reached_at=datetime(2026, 11, 17, 5, 0, tzinfo=UTC),
        ),
        BadgeUnlocked(
            tenant_id=u.tenant,
            user_id=u.user,
            badge="streak_3",
            xp_reward=0,
            unlocked_at=datetime(2026, 11, 18, 5, 0, tzinfo=UTC),
        ),
    ]
    return u, events


EXPECTED_BY_SUB_GOAL = [
    # Health: a1 due 7 days, done Mon Tue Wed Thu Sun; a2 due Mon Thu, done both
    ("Health", 1, 9, 7, 0.7778),
    # Work: a3 due Mon-Thu (met on Thu), done Tue Wed Thu and again Fri (not due: it counts
    # as a check-in, not in the rate); m1 due Mon-Wed, done Wed
    ("Work 9-to-5", 2, 7, 5, 0.5714),
]


async def test_the_fold_matches_what_was_checked_per_day_and_sub_goal(
    kit: Any, consumer: Any, db: AsyncDatabase[Doc], start_api: Any, make_settings: Any
) -> None:
    u, events = week_events(kit)
    records = [kit.record(e, i) for i, e in enumerate(events)]
    deliveries = records + random.Random(7).sample(records, 10)  # redeliveries, same ce_id
    random.Random(42).shuffle(deliveries)  # across topics, any order (late lower seqs too)
    await kit.feed(consumer, deliveries, batch=5)

    # The fold is compact: one doc per user, per week with events, per grid-week.
    assert await db[USERS].count_documents({}) == 1
    assert sorted(w["week"] for w in await db[WEEKS].find({}).to_list()) == [
        "2026-W46",
        "2026-W47",
    ]
    assert await db[GRIDS].count_documents({}) == 1
    assert await db[PROCESSED].count_documents({}) == len(events)
    job = await db[JOBS].find_one({"week": "2026-W47"})
    assert job is not None
    assert job["active"] is True
    assert job["due_at"] == datetime(2026, 11, 22, 21, 0, tzinfo=UTC)  # Mon 06:00 KST

    async with start_api(make_settings()) as api:
        created = await api.http.post(
            "/v1/reports/weekly/2026-W47/generate", headers=kit.auth(u.tenant, u.user)
        )
        assert created.status_code == 201, created.text
        report = (
            await api.http.get("/v1/reports/weekly/2026-W47", headers=kit.auth(u.tenant, u.user))
        ).json()
    stats = report["stats"]
    assert report["generator"] == "fallback"
    assert stats["checkins_by_weekday"] == {
        "mon": 2,
        "tue": 2,
        "wed": 3,
        "thu": 3,
        "fri": 1,
        "sat": 0,
        "sun": 1,
    }
    assert stats["checkins_total"] == 12
    assert stats["days_active"] == 6
    assert (stats["due_total"], stats["done_total"], stats["completion_rate"]) == (16, 11, 0.6875)
    assert [
        (s["title"], s["position"], s["due"], s["done"], s["rate"]) for s in stats["by_sub_goal"]
    ] == EXPECTED_BY_SUB_GOAL
    assert stats["best_sub_goal"]["title"] == "Health"
    assert stats["worst_sub_goal"]["title"] == "Work 9-to-5"
    assert (stats["best_day"], stats["worst_day"]) == ("wed", "sat")
    assert stats["time_of_day"] == {"morning": 4, "afternoon": 2, "evening": 3, "night": 3}
    assert (stats["routine_checkins"], stats["mission_checkins"]) == (11, 1)
    assert (stats["streak_current"], stats["streak_best"]) == (4, 6)
    assert stats["xp_gained"] == 10
    assert stats["levels_gained"] == 1
    assert stats["badges_unlocked"] == ["streak_3"]
    assert stats["vs_previous_week"] == {
        "checkins_total": 11,
        "completion_rate": None,  # nothing was due the week before the grid
        "xp_gained": -20,
    }


async def test_feeding_the_same_events_in_another_order_gives_the_same_fold(
    kit: Any, consumer: Any, db: AsyncDatabase[Doc]
) -> None:
    _, events = week_events(kit)
    await kit.feed(consumer, list(reversed(events)), batch=3)
    first = {d["_id"]: d for d in await db[WEEKS].find({}).to_list()}
    for doc in first.values():
        doc.pop("fold_version")  # counts the batches that changed the week: not a fact
        doc["checkins"].sort(key=lambda c: (c["a"], c["d"]))
        doc["xp"].sort(key=lambda x: x["id"])
    await db[WEEKS].delete_many({})
    await db[PROCESSED].delete_many({})
    await kit.feed(consumer, events, batch=500)
    again = {d["_id"]: d for d in await db[WEEKS].find({}).to_list()}
    for doc in again.values():
        doc.pop("fold_version")
        doc["checkins"].sort(key=lambda c: (c["a"], c["d"]))
        doc["xp"].sort(key=lambda x: x["id"])
    assert again == first


async def test_the_reads_a_report_folds_from_use_indexes_not_a_scan_of_every_tenant(
    kit: Any, consumer: Any, db: AsyncDatabase[Doc], infra: Any
) -> None:
    """A report's grid buckets and the open jobs of moved users are index reads: an `$in`
    followed by another predicate makes the server used here scan every tenant's rows."""
    u, events = week_events(kit)
    await kit.feed(consumer, [kit.record(e, i) for i, e in enumerate(events)], batch=50)
    async with watched_client(infra.mongodb_url) as (client, plans):
        store = MongoReportsStore(client[db.name], None)
        uk = f"{u.tenant}:{u.user}"
        buckets = await store.buckets_of([uk, "acme:nobody"], "2026-W47")
        assert [b.week for b in buckets[uk]] == ["2026-W47"]
        assert await store.buckets_of([uk], "2026-W46") == {}
        open_weeks = sorted(j.week for j in (await store.open_jobs([uk, "acme:nobody"])).values())
        assert open_weeks == sorted(j["week"] for j in await db[JOBS].find({}).to_list())
        assert await plans.scans(client) == []
