"""A tenant's monthly LLM budget and its per-tenant cache, on the real database and a real local
OpenAI-compatible server: the cap holds across workers, and every document names its tenant."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from mandaact_common.domain.owner import Owner
from mandaact_common.mongo import Doc
from mandaact_common.testing import SettableClock
from mandaact_contracts.events import EventPayload
from reports.bootstrap import mongo_service
from reports.llm import make_writer
from reports.store.mongo import JOBS, LLM_BUDGET, LLM_CACHE, REPORTS, MongoLlmBudget
from services.reports.tests.support import stats

pytestmark = pytest.mark.integration

MON = date(2026, 11, 16)
WEEK = "2026-W47"
GENERATE = f"/v1/reports/weekly/{WEEK}/generate"
REPORT = f"/v1/reports/weekly/{WEEK}"


def week_of(kit: Any, tenant: str, user: str, days: int) -> tuple[Any, list[EventPayload]]:
    """A user with a daily action checked in on `days` days (the fold differs by `days`)."""
    u = kit.Users(tenant=tenant, user=user, locale="en")
    events: list[EventPayload] = [u.settings(), u.grid([("Run 10km", [("a1", kit.DAILY)])], MON)]
    events += [u.check("a1", MON + timedelta(days=i), hour=8) for i in range(days)]
    return u, events


def llm_settings(make_settings: Any, fake_llm: Any, **extra: Any) -> Any:
    return make_settings(
        openai_api_key="sk-test", openai_base_url=fake_llm.base_url, llm_model="fake-model", **extra
    )


async def budget_rows(db: AsyncDatabase[Doc]) -> dict[str, Doc]:
    return {d["tenant_id"]: d for d in await db[LLM_BUDGET].find({}).to_list()}


async def test_past_the_budget_the_report_is_the_fallback_and_says_why(
    kit: Any,
    consumer: Any,
    fake_llm: Any,
    start_api: Any,
    make_settings: Any,
    mongo_client: AsyncMongoClient[Doc],
    db: AsyncDatabase[Doc],
    clock: SettableClock,
) -> None:
    events: list[EventPayload] = []
    for tenant, user, days in [("acme", "alice", 4), ("acme", "bob", 2), ("globex", "carol", 3)]:
        events += week_of(kit, tenant, user, days)[1]
    await kit.feed(consumer, events)
    settings = llm_settings(make_settings, fake_llm, llm_monthly_calls_per_tenant=1)
    scheduler = mongo_service(settings, mongo_client, db, clock=clock)
    try:
        assert await scheduler.run_due() == 3
    finally:
        await scheduler.aclose()

    assert len(fake_llm.requests) == 2  # one for acme (its whole month), one for globex
    reports = {d["user_id"]: d for d in await db[REPORTS].find({}).to_list()}
    acme = sorted((reports["alice"], reports["bob"]), key=lambda d: d["generator"])
    assert [(d["generator"], d["llm_outcome"]) for d in acme] == [
        ("fallback", "budget_exhausted"),
        ("llm", "ok"),
    ]
    assert reports["carol"]["generator"] == "llm"
    rows = await budget_rows(db)
    assert {t: (r["month"], r["calls"], r["refused"]) for t, r in rows.items()} == {
        "acme": ("2026-11", 1, 1),
        "globex": ("2026-11", 1, 0),
    }
    cached = await db[LLM_CACHE].find({}).to_list()
    assert sorted(c["tenant_id"] for c in cached) == ["acme", "globex"]  # no row for the refused

    refused = acme[0]["user_id"]
    async with start_api(settings) as api:
        mine = await api.http.get(REPORT, headers=kit.auth("acme", refused))
        other = await api.http.get(REPORT, headers=kit.auth("globex", "carol"))
        listed = await api.http.get("/v1/reports", headers=kit.auth("acme", refused))
    assert mine.status_code == 200, mine.text
    assert (mine.json()["generator"], mine.json()["fallback_reason"]) == (
        "fallback",
        "monthly_llm_budget_exhausted",
    )
    assert (other.json()["generator"], other.json()["fallback_reason"]) == ("llm", None)
    assert listed.json()["items"][0]["fallback_reason"] == "monthly_llm_budget_exhausted"


async def test_a_retried_job_never_spends_twice(
    kit: Any,
    consumer: Any,
    fake_llm: Any,
    start_api: Any,
    make_settings: Any,
    db: AsyncDatabase[Doc],
) -> None:
    alice, events = week_of(kit, "acme", "alice", 4)
    await kit.feed(consumer, events)
    headers = kit.auth(alice.tenant, alice.user)
    async with start_api(llm_settings(make_settings, fake_llm)) as api:
        first = await api.http.post(GENERATE, headers=headers)
        # As if the worker had died after the call, before the report was stored: the job
        # is claimed and worked on again.
        await db[REPORTS].delete_many({})
        await db[JOBS].update_many({}, {"$set": {"state": "open"}})
        again = await api.http.post(GENERATE, headers=headers)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json()["generator"] == "llm"
    assert len(fake_llm.requests) == 1
    assert (await budget_rows(db))["acme"]["calls"] == 1


async def test_two_workers_racing_for_the_last_call_make_exactly_one(
    fake_llm: Any, make_settings: Any, db: AsyncDatabase[Doc], clock: SettableClock
) -> None:
    settings = llm_settings(make_settings, fake_llm, llm_monthly_calls_per_tenant=3)
    spent = MongoLlmBudget(db, 3)
    assert [await spent.spend("acme", clock()) for _ in range(2)] == [True, True]
    workers = [make_writer(settings, db, clock), make_writer(settings, db, clock)]
    alice = Owner("acme", "alice")
    try:
        # Six different folds (so six cache keys), written at once by two workers.
        written = await asyncio.gather(
            *(
                workers[n % 2].write(alice, stats(checkins_total=10 + n), WEEK, "en")
                for n in range(6)
            )
        )
    finally:
        for w in workers:
            await w.aclose()
    outcomes = sorted(w.outcome for w in written)
    assert outcomes == ["budget_exhausted"] * 5 + ["ok"]
    assert len(fake_llm.requests) == 1
    row = (await budget_rows(db))["acme"]
    assert (row["calls"], row["refused"]) == (3, 5)
    assert await db[LLM_CACHE].count_documents({}) == 1  # refused claims are not left behind


async def test_the_cap_holds_when_racing_writers_open_the_month(
    db: AsyncDatabase[Doc], clock: SettableClock
) -> None:
    budgets = [MongoLlmBudget(db, 5), MongoLlmBudget(db, 5)]
    taken = await asyncio.gather(*(budgets[n % 2].spend("acme", clock()) for n in range(20)))
    assert sum(taken) == 5
    assert await db[LLM_BUDGET].count_documents({}) == 1  # one row per tenant and month
    row = (await budget_rows(db))["acme"]
    assert (row["calls"], row["refused"], row["month"]) == (5, 15, "2026-11")


async def test_two_tenants_with_identical_inputs_get_separate_cache_entries(
    kit: Any,
    consumer: Any,
    fake_llm: Any,
    start_api: Any,
    make_settings: Any,
    db: AsyncDatabase[Doc],
) -> None:
    same = [week_of(kit, tenant, "alice", 3) for tenant in ("acme", "globex")]
    await kit.feed(consumer, [e for _, events in same for e in events])
    async with start_api(llm_settings(make_settings, fake_llm)) as api:
        for u, _ in same:
            response = await api.http.post(GENERATE, headers=kit.auth(u.tenant, u.user))
            assert response.json()["generator"] == "llm"
        first_folds = [kit.fold_of(r["body"]) for r in fake_llm.requests]
        # Written again (reports lost): each tenant finds its own entry, no new call.
        await db[REPORTS].delete_many({})
        await db[JOBS].update_many({}, {"$set": {"state": "open"}})
        for u, _ in same:
            response = await api.http.post(GENERATE, headers=kit.auth(u.tenant, u.user))
            assert response.json()["generator"] == "llm"
    assert first_folds[0] == first_folds[1]  # the same prompt for both tenants …
    assert len(fake_llm.requests) == 2  # … called once for each
    rows = await db[LLM_CACHE].find({}).to_list()
    assert sorted(r["tenant_id"] for r in rows) == ["acme", "globex"]
    assert rows[0]["key"] == rows[1]["key"]
    assert rows[0]["_id"] != rows[1]["_id"]
    assert all(r["_id"].startswith(f"{r['tenant_id']}|") for r in rows)


SHARED_ROWS = {
    "outbox",
    "outbox_events",
    "outbox_parked",
    "outbox_relay_lease",
    "processed_events",
    "erasure_jobs",
    "erased_subjects",
    "rate_limits",
}
"""Rows the shared libs write (libs/common: outbox relay, idempotent consumer, erasures, rate
limits keyed by keyed hashes), audited there."""


async def test_every_document_of_the_service_carries_its_tenant(
    kit: Any,
    consumer: Any,
    fake_llm: Any,
    start_api: Any,
    make_settings: Any,
    db: AsyncDatabase[Doc],
) -> None:
    events: list[EventPayload] = []
    for tenant, user, days in [("acme", "alice", 4), ("globex", "bob", 2)]:
        events += week_of(kit, tenant, user, days)[1]
    await kit.feed(consumer, events)
    async with start_api(llm_settings(make_settings, fake_llm)) as api:
        for tenant, user in [("acme", "alice"), ("globex", "bob")]:
            headers = {**kit.auth(tenant, user), "Idempotency-Key": f"k-{user}"}
            assert (await api.http.post(GENERATE, headers=headers)).status_code == 201

    names = set(await db.list_collection_names())
    own = names - SHARED_ROWS
    assert {
        "users",
        "weeks",
        "grids",
        "report_jobs",
        "reports",
        "llm_cache",
        "llm_budget",
        "idempotency_keys",
    } <= own
    for name in sorted(own):
        docs = await db[name].find({}).to_list()
        assert docs, name
        missing = [d["_id"] for d in docs if not d.get("tenant_id")]
        assert missing == [], f"{name}: documents without tenant_id: {missing[:3]}"
