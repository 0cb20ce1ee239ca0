"""Reports are written at Monday 06:00 in each user's timezone, once, by any number of workers."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from mandaact_common.mongo import Doc
from mandaact_common.outbox import pending_events
from mandaact_common.testing import watched_client
from mandaact_common.worker import WorkerDeps
from mandaact_contracts import topics
from reports.bootstrap import mongo_service, scheduler_job
from reports.llm import FallbackWriter
from reports.store.mongo import JOBS, REPORTS, MongoJobLeases

pytestmark = pytest.mark.integration

MON = date(2026, 11, 16)  # 2026-W47; reports due Monday 2026-11-23 06:00 local
SEOUL_0600 = datetime(2026, 11, 22, 21, 0, tzinfo=UTC)
NEW_YORK_0600 = datetime(2026, 11, 23, 11, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
PER_ZONE = 12


async def seed(kit: Any, consumer: Any) -> tuple[list[Any], list[Any]]:
    """Users in Seoul and New York with check-ins in 2026-W47, and one whose were undone."""
    seoul = [kit.Users(user=f"seoul-{i}", timezone="Asia/Seoul") for i in range(PER_ZONE)]
    ny = [kit.Users(user=f"ny-{i}", timezone="America/New_York") for i in range(PER_ZONE)]
    events: list[Any] = []
    for u in [*seoul, *ny]:
        events += [u.settings(), u.grid([("Sub", [("a1", kit.DAILY)])], added=MON)]
        events += [u.check("a1", MON + timedelta(days=i)) for i in range(3)]
    undone = kit.Users(user="undone", timezone="Asia/Seoul")
    events += [undone.check("a1", MON), undone.check("a1", MON, undo=True)]
    await kit.feed(consumer, events, batch=50)
    return seoul, ny


async def reports_by_user(db: AsyncDatabase[Doc]) -> dict[str, list[Doc]]:
    out: dict[str, list[Doc]] = {}
    for doc in await db[REPORTS].find({}).to_list():
        out.setdefault(doc["user_id"], []).append(doc)
    return out


async def generated_events(db: AsyncDatabase[Doc]) -> list[Doc]:
    return await pending_events(db, topics.REPORT_GENERATED)


async def test_each_user_gets_one_report_at_their_own_0600_with_two_schedulers(
    kit: Any,
    consumer: Any,
    mongo_client: AsyncMongoClient[Doc],
    db: AsyncDatabase[Doc],
    make_settings: Any,
) -> None:
    seoul, ny = await seed(kit, consumer)
    settings = make_settings(scheduler_chunk=5)
    schedulers = [
        mongo_service(settings, mongo_client, db, writer=FallbackWriter()),
        mongo_service(settings, mongo_client, db, writer=FallbackWriter()),
    ]

    async def tick(now: datetime) -> int:
        written = await asyncio.gather(*(s.run_due(now) for s in schedulers))
        return sum(written)

    assert await tick(SEOUL_0600 - MINUTE) == 0
    assert await tick(SEOUL_0600) == PER_ZONE
    by_user = await reports_by_user(db)
    assert sorted(by_user) == sorted(u.user for u in seoul)
    assert await tick(NEW_YORK_0600 - MINUTE) == 0
    assert await tick(NEW_YORK_0600) == PER_ZONE
    assert await tick(NEW_YORK_0600 + 60 * MINUTE) == 0

    by_user = await reports_by_user(db)
    assert sorted(by_user) == sorted(u.user for u in [*seoul, *ny])  # not the undone user
    for u in seoul:
        (report,) = by_user[u.user]
        assert (report["week"], report["generated_at"]) == ("2026-W47", SEOUL_0600)
    for u in ny:
        (report,) = by_user[u.user]
        assert (report["week"], report["generated_at"]) == ("2026-W47", NEW_YORK_0600)
    events = await generated_events(db)
    assert sorted(e["key"] for e in events) == sorted(
        f"acme:{u.user}".encode() for u in [*seoul, *ny]
    )
    assert await db[JOBS].count_documents({"state": "done"}) == 2 * PER_ZONE


async def test_a_timezone_change_moves_the_due_time(
    kit: Any,
    consumer: Any,
    mongo_client: AsyncMongoClient[Doc],
    db: AsyncDatabase[Doc],
    make_settings: Any,
) -> None:
    u = kit.Users(user="traveller", timezone="Asia/Seoul")
    await kit.feed(consumer, [u.settings(), u.check("a1", MON)])
    moved = kit.Users(user="traveller", timezone="America/New_York")
    await kit.feed(consumer, [moved.settings(version=2)])
    generator = mongo_service(make_settings(), mongo_client, db, writer=FallbackWriter())
    assert await generator.run_due(SEOUL_0600) == 0
    assert await generator.run_due(NEW_YORK_0600) == 1


async def test_the_background_job_survives_a_restart_and_never_writes_twice(
    kit: Any,
    consumer: Any,
    mongo_client: AsyncMongoClient[Doc],
    db: AsyncDatabase[Doc],
    make_settings: Any,
) -> None:
    seoul, ny = await seed(kit, consumer)
    settings = make_settings(scheduler_poll_seconds=0.05)
    deps = WorkerDeps(settings=settings, client=mongo_client, db=db, producer=None)
    clock = kit.Clock(SEOUL_0600 - MINUTE)

    async def run_workers(count: int) -> tuple[asyncio.Event, list[asyncio.Task[None]]]:
        stop = asyncio.Event()
        job = scheduler_job(clock)
        return stop, [asyncio.create_task(job(deps, stop)) for _ in range(count)]

    async def wait_for_reports(n: int) -> None:
        for _ in range(1200):  # up to 30 s on a busy machine; usually a few polls
            if await db[REPORTS].count_documents({}) >= n:
                return
            await asyncio.sleep(0.025)
        raise AssertionError(f"expected {n} reports, have {await db[REPORTS].count_documents({})}")

    stop, tasks = await run_workers(2)
    clock.now = SEOUL_0600
    await wait_for_reports(PER_ZONE)
    stop.set()
    await asyncio.gather(*tasks)

    # A restart: new workers pick up from the state in MongoDB.
    stop, tasks = await run_workers(2)
    clock.now = NEW_YORK_0600
    await wait_for_reports(2 * PER_ZONE)
    await asyncio.sleep(0.3)  # a few more polls: nothing more must be written
    stop.set()
    await asyncio.gather(*tasks)

    by_user = await reports_by_user(db)
    assert {k: len(v) for k, v in by_user.items()} == {u.user: 1 for u in [*seoul, *ny]}
    assert len(await generated_events(db)) == 2 * PER_ZONE


async def test_a_claim_left_by_a_dead_worker_is_taken_over_after_its_lease(
    kit: Any,
    consumer: Any,
    mongo_client: AsyncMongoClient[Doc],
    db: AsyncDatabase[Doc],
    make_settings: Any,
) -> None:
    u = kit.Users(user="solo", timezone="Asia/Seoul")
    await kit.feed(consumer, [u.settings(), u.check("a1", MON)])
    lease = timedelta(minutes=5)
    # A worker claims the week and dies before storing anything.
    await db[JOBS].update_many(
        {}, {"$set": {"claim_owner": "dead", "claim_expires": SEOUL_0600 + lease}}
    )
    settings = make_settings(claim_lease_seconds=lease.total_seconds())
    generator = mongo_service(settings, mongo_client, db, writer=FallbackWriter())
    assert await generator.run_due(SEOUL_0600) == 0
    assert await generator.run_due(SEOUL_0600 + lease - MINUTE) == 0
    assert await generator.run_due(SEOUL_0600 + lease) == 1
    assert len(await generated_events(db)) == 1


async def test_the_schedulers_claims_read_by_indexes_not_a_scan_of_every_tenant(
    kit: Any, consumer: Any, db: AsyncDatabase[Doc], infra: Any
) -> None:
    """The due jobs and the due rewrites are claimed by index reads, a claimed one passed
    over: on the server used here `claim_expires` beside the due index, or a partial index,
    means a scan of every tenant's jobs on each tick."""
    seoul, _ = await seed(kit, consumer)
    lease = timedelta(minutes=5)
    async with watched_client(infra.mongodb_url) as (client, plans):
        leases = MongoJobLeases(client[db.name])
        await db[JOBS].update_one(
            {"user_id": seoul[0].user},
            {"$set": {"claim_owner": "x", "claim_expires": SEOUL_0600 + lease}},
        )
        found, won = await leases.claim_due(SEOUL_0600, lease, 100, "w1")
        assert found
        assert sorted(j.owner.user_id for j in won) == sorted(u.user for u in seoul[1:])
        assert (await leases.claim_due(SEOUL_0600, lease, 100, "w2"))[1] == []
        await db[JOBS].update_many(
            {"user_id": {"$in": [u.user for u in seoul[1:4]]}},
            {"$set": {"state": "done", "claim_expires": SEOUL_0600, "rewrite_due_at": SEOUL_0600}},
        )
        rewrites = await leases.claim_rewrites(SEOUL_0600, lease, 2, "w3")
        more = await leases.claim_rewrites(SEOUL_0600, lease, 5, "w4")
        assert len(rewrites) == 2
        assert len(more) == 1
        assert await plans.scans(client) == []
