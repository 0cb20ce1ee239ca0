"""Reports follow late events on the real server (SPEC §12): a backfilled check-in makes the
report stale with the new stats at once; the settle job rewrites it once the fold is quiet (one
more LLM call per new fold, at most 3 per user-week), once however many workers run it."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from mandaact_common.mongo import Doc
from mandaact_common.outbox import pending_events
from mandaact_contracts import topics
from reports.bootstrap import mongo_service
from reports.store.mongo import JOBS

pytestmark = pytest.mark.integration

MON = date(2026, 11, 16)
WEEK = "2026-W47"
URL = f"/v1/reports/weekly/{WEEK}"
SETTLE = timedelta(seconds=300)  # the default, which the test consumer folds with
DAY = timedelta(days=1)


def llm_settings(make_settings: Any, fake_llm: Any) -> Any:
    return make_settings(
        openai_api_key="sk-test", openai_base_url=fake_llm.base_url, llm_model="fake-model"
    )


async def alice_with_a_report(kit: Any, consumer: Any, api: Any) -> tuple[Any, dict[str, str]]:
    """Alice checked in on Monday and Tuesday of 2026-W47, and generated its report."""
    u = kit.Users(user="alice", locale="en")
    grid = u.grid([("Run", [("a1", kit.DAILY)])], added=MON)
    await kit.feed(consumer, [u.settings(), grid, u.check("a1", MON), u.check("a1", MON + DAY)])
    headers = kit.auth(u.tenant, u.user)
    created = await api.http.post(f"{URL}/generate", headers=headers)
    assert created.status_code == 201, created.text
    assert created.json()["stale"] is False
    return u, headers


async def generated(db: AsyncDatabase[Doc]) -> int:
    return len(await pending_events(db, topics.REPORT_GENERATED))


async def test_a_backfilled_check_in_is_shown_at_once_and_rewritten_after_the_settle_time(
    kit: Any,
    consumer: Any,
    fake_llm: Any,
    start_api: Any,
    make_settings: Any,
    mongo_client: AsyncMongoClient[Doc],
    db: AsyncDatabase[Doc],
    clock: Any,
) -> None:
    settings = llm_settings(make_settings, fake_llm)
    job = mongo_service(settings, mongo_client, db, clock=clock)
    async with start_api(settings) as api:
        u, headers = await alice_with_a_report(kit, consumer, api)
        before = (await api.http.get(URL, headers=headers)).json()
        assert len(fake_llm.requests) == 1

        await kit.feed(consumer, [u.check("a1", MON + 6 * DAY)])  # Sunday, folded on Tuesday
        stale = (await api.http.get(URL, headers=headers)).json()
        assert stale["stale"] is True
        assert stale["fold_version"] == before["fold_version"] + 1
        assert stale["stats"]["checkins_total"] == 3
        assert stale["stats"]["checkins_by_weekday"]["sun"] == 1
        assert stale["summary"] == before["summary"]  # the old text until the rewrite
        assert stale["summary"]["headline"] == "LLM: 2 check-ins on 2 of 7 days"

        assert await job.run_rewrites(clock.now + SETTLE - timedelta(seconds=1)) == 0
        assert len(fake_llm.requests) == 1
        assert await job.run_rewrites(clock.now + SETTLE) == 1
        assert len(fake_llm.requests) == 2
        fresh = (await api.http.get(URL, headers=headers)).json()
    assert (fresh["stale"], fresh["fold_version"]) == (False, stale["fold_version"])
    assert fresh["summary"]["headline"] == "LLM: 3 check-ins on 3 of 7 days"
    assert fresh["generator"] == "llm"
    assert await generated(db) == 2
    assert await db[JOBS].count_documents({"rewrite_due_at": {"$exists": True}}) == 0
    await job.aclose()


async def test_a_fourth_change_of_the_week_is_written_by_the_fallback_with_the_right_numbers(
    kit: Any,
    consumer: Any,
    fake_llm: Any,
    start_api: Any,
    make_settings: Any,
    mongo_client: AsyncMongoClient[Doc],
    db: AsyncDatabase[Doc],
    clock: Any,
) -> None:
    settings = llm_settings(make_settings, fake_llm)
    job = mongo_service(settings, mongo_client, db, clock=clock)
    async with start_api(settings) as api:
        u, headers = await alice_with_a_report(kit, consumer, api)
        for day in (2, 3, 4):
            await kit.feed(consumer, [u.check("a1", MON + day * DAY)])
            clock.now += SETTLE
            assert await job.run_rewrites() == 1
        report = (await api.http.get(URL, headers=headers)).json()
    assert len(fake_llm.requests) == 3
    assert (report["generator"], report["fallback_reason"]) == (
        "fallback",
        "weekly_llm_calls_exhausted",
    )
    assert report["stale"] is False
    assert report["stats"]["checkins_total"] == 5
    assert report["stats"]["days_active"] == 5
    assert "5" in report["summary"]["headline"]
    assert await generated(db) == 4
    await job.aclose()


async def test_two_rewrite_jobs_at_once_rewrite_the_report_once(
    kit: Any,
    consumer: Any,
    fake_llm: Any,
    start_api: Any,
    make_settings: Any,
    mongo_client: AsyncMongoClient[Doc],
    db: AsyncDatabase[Doc],
    clock: Any,
) -> None:
    settings = llm_settings(make_settings, fake_llm)
    jobs = [mongo_service(settings, mongo_client, db, clock=clock) for _ in range(2)]
    async with start_api(settings) as api:
        u, headers = await alice_with_a_report(kit, consumer, api)
        await kit.feed(consumer, [u.check("a1", MON + 6 * DAY)])
        at = clock.now + SETTLE
        assert sum(await asyncio.gather(*(j.run_rewrites(at) for j in jobs))) == 1
        assert sum(await asyncio.gather(*(j.run_rewrites(at) for j in jobs))) == 0
        report = (await api.http.get(URL, headers=headers)).json()
    assert (report["stale"], report["stats"]["checkins_total"]) == (False, 3)
    assert len(fake_llm.requests) == 2
    assert await generated(db) == 2
    for j in jobs:
        await j.aclose()


async def test_generate_on_a_stale_report_rewrites_it_now(
    kit: Any,
    consumer: Any,
    fake_llm: Any,
    start_api: Any,
    make_settings: Any,
    mongo_client: AsyncMongoClient[Doc],
    db: AsyncDatabase[Doc],
    clock: Any,
) -> None:
    settings = llm_settings(make_settings, fake_llm)
    job = mongo_service(settings, mongo_client, db, clock=clock)
    async with start_api(settings) as api:
        u, headers = await alice_with_a_report(kit, consumer, api)
        fresh = await api.http.post(f"{URL}/generate", headers=headers)
        assert fresh.status_code == 200
        await kit.feed(consumer, [u.check("a1", MON + 6 * DAY)])
        rewritten = await api.http.post(f"{URL}/generate", headers=headers)
        assert rewritten.status_code == 200, rewritten.text
        body = rewritten.json()
        assert (body["stale"], body["stats"]["checkins_total"]) == (False, 3)
        assert body["summary"]["headline"] == "LLM: 3 check-ins on 3 of 7 days"
        assert await job.run_rewrites(clock.now + 10 * SETTLE) == 0  # nothing left to do
    assert len(fake_llm.requests) == 2
    assert await generated(db) == 2
    await job.aclose()
