"""The reports service's data lifecycle (SPEC §9) on the real database and a real local
OpenAI-compatible server: a user's and a tenant's erasure through the real consumer and
erasure job (reports, facts, jobs and the LLM cache rows their reports used), and the export."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from mandaact_common.consumer import IdempotentConsumer
from mandaact_common.lifecycle import Eraser
from mandaact_common.mongo import Doc
from mandaact_common.outbox import OUTBOX, OUTBOX_EVENTS, pending_events
from mandaact_common.settings import DEV_ERASURE_KEY
from mandaact_common.testing import (
    RecordingDeadLetters,
    SettableClock,
    documents_naming,
    erasure_of,
    record_of,
)
from mandaact_common.worker import WorkerDeps
from mandaact_contracts import topics
from mandaact_contracts.events import EventPayload
from reports.bootstrap import fold_handler, mongo_service
from reports.settings import Settings
from reports.store.mongo import (
    LIFECYCLE,
    LLM_BUDGET,
    LLM_CACHE,
    REPORTS,
    report_from_doc,
    unit_of_work,
    user_mark,
)
from reports.store.ports import ReportsStore

pytestmark = pytest.mark.integration

MON = date(2026, 11, 16)
WEEK = "2026-W47"
ACME, GLOBEX = "t-acme-rp", "t-globex-rp"
GONE, KEPT, OTHER = "u-gone-rp", "u-kept-rp", "u-other-rp"


class World:
    """The reports consumer with its eraser, and the scheduler, over this test's database."""

    def __init__(
        self, kit: Any, client: AsyncMongoClient[Doc], db: AsyncDatabase[Doc], settings: Settings
    ) -> None:
        self.kit, self.client, self.db, self.settings = kit, client, db, settings
        self.eraser = Eraser(
            LIFECYCLE, client, db, key=DEV_ERASURE_KEY.encode(), grace=timedelta(0)
        )
        deps = WorkerDeps(settings=Settings(env="test"), client=client, db=db, producer=None)
        self.consumer = (
            IdempotentConsumer(
                group="reports",
                client=client,
                db=db,
                handler=fold_handler(deps),
                dead_letters=RecordingDeadLetters(),
                eraser=self.eraser,
            ),
            RecordingDeadLetters(),
        )

    def week_of(self, tenant: str, user: str, days: int) -> list[EventPayload]:
        u = self.kit.Users(tenant=tenant, user=user, locale="en")
        events: list[EventPayload] = [
            u.settings(),
            u.grid([("Run 10km", [("a1", self.kit.DAILY)])], MON),
        ]
        return events + [u.check("a1", MON + timedelta(days=i), hour=8) for i in range(days)]

    async def build(self, clock: SettableClock) -> None:
        """Three users' reports of one week, each written by the LLM (three folds, three calls)."""
        events = self.week_of(ACME, GONE, 4) + self.week_of(ACME, KEPT, 2)
        events += self.week_of(GLOBEX, OTHER, 3)
        await self.kit.feed(self.consumer, events)
        scheduler = mongo_service(self.settings, self.client, self.db, clock=clock)
        try:
            assert await scheduler.run_due() == 3
        finally:
            await scheduler.aclose()
        await self.relay()

    async def erase(self, tenant: str, user: str | None = None) -> None:
        await self.kit.feed(self.consumer, [record_of(erasure_of(tenant, user))])
        assert await self.eraser.run_due() == 1

    async def relay(self) -> None:
        """What the relay does once the events are published: their rows go."""
        await self.db[OUTBOX].delete_many({})
        await self.db[OUTBOX_EVENTS].delete_many({})


async def only_erased_events(db: AsyncDatabase[Doc], needle: str, scope: str) -> None:
    """Nothing names `needle` but the outbox rows of the `user.erased` just emitted."""
    left = await documents_naming(db, needle)
    assert {name for name, _ in left} <= {OUTBOX, OUTBOX_EVENTS}, left
    [erased] = await pending_events(db)
    assert erased["topic"] == topics.USER_ERASED
    assert (erased["payload"]["service"], erased["payload"]["scope"]) == ("reports", scope)


@pytest.fixture
def world(
    kit: Any,
    mongo_client: AsyncMongoClient[Doc],
    db: AsyncDatabase[Doc],
    make_settings: Any,
    fake_llm: Any,
) -> World:
    settings = make_settings(
        openai_api_key="sk-test", openai_base_url=fake_llm.base_url, llm_model="fake-model"
    )
    return World(kit, mongo_client, db, settings)


async def test_a_users_erasure_leaves_nothing_of_them_and_the_others_as_they_were(
    world: World, db: AsyncDatabase[Doc], clock: SettableClock
) -> None:
    await world.build(clock)
    mine = user_mark(ACME, GONE)
    assert await db[LLM_CACHE].count_documents({"used_by": mine}) == 1
    in_flight = await db[REPORTS].find_one({"user_id": GONE})
    assert in_flight is not None
    kept_before = await documents_naming(db, KEPT)
    other_before = await documents_naming(db, OTHER)
    cache_before = await db[LLM_CACHE].count_documents({})

    await world.erase(ACME, GONE)

    await only_erased_events(db, GONE, "user")
    assert await documents_naming(db, KEPT) == kept_before
    assert await documents_naming(db, OTHER) == other_before
    # The cached call their report used went with them; the others' stay.
    assert await db[LLM_CACHE].count_documents({"used_by": mine}) == 0
    assert await db[LLM_CACHE].count_documents({}) == cache_before - 1
    assert await db[LLM_BUDGET].count_documents({"tenant_id": ACME}) == 1

    await world.relay()
    # A late check-in, and a report that was being written when the erasure ran.
    late = world.kit.Users(tenant=ACME, user=GONE, locale="en").check("a1", MON, hour=9)
    await world.kit.feed(world.consumer, [late])

    async def store_late(store: ReportsStore) -> int:
        report = report_from_doc(in_flight)
        return len(await store.add_reports([report], report.generated_at))

    assert await unit_of_work(world.client, db).run(store_late) == 0
    assert await documents_naming(db, GONE) == []
    assert await documents_naming(db, KEPT) == kept_before
    assert await pending_events(db) == []


async def test_a_tenants_erasure_leaves_nothing_of_it_and_other_tenants_as_they_were(
    world: World, db: AsyncDatabase[Doc], clock: SettableClock
) -> None:
    await world.build(clock)
    other_before = await documents_naming(db, GLOBEX)

    await world.erase(ACME)

    await only_erased_events(db, ACME, "tenant")
    assert await documents_naming(db, GONE) == []
    assert await documents_naming(db, KEPT) == []
    assert await documents_naming(db, GLOBEX) == other_before
    assert await db[LLM_BUDGET].count_documents({}) == 1  # globex's

    await world.relay()
    await world.kit.feed(world.consumer, world.week_of(ACME, KEPT, 1))
    assert await documents_naming(db, ACME) == []


async def test_export_returns_the_callers_documents_and_no_one_elses(
    world: World, start_api: Any, clock: SettableClock
) -> None:
    await world.build(clock)
    async with start_api(world.settings) as api:
        r = await api.http.get("/v1/me/export", headers=world.kit.auth(ACME, GONE))
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["service"], body["tenant_id"], body["user_id"]) == ("reports", ACME, GONE)
    found = body["collections"]
    assert set(found) == {"users", "weeks", "grids", "report_jobs", "reports"}
    for name, docs in found.items():
        assert docs, name
        assert {d["user_id"] for d in docs} == {GONE}, name
    [report] = found["reports"]
    assert (report["week"], report["generator"]) == (WEEK, "llm")
    assert KEPT not in r.text
    assert OTHER not in r.text
