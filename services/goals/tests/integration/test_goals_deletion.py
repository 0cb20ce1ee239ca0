"""`DELETE /v1/me`, `DELETE /v1/admin/tenant` and the deletion record (SPEC §9), on the server."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from goals.bootstrap import answers_handler, worker_spec
from goals.settings import Settings
from goals.store.mongo import LIFECYCLE
from mandaact_common.consumer import IdempotentConsumer
from mandaact_common.lifecycle import Eraser
from mandaact_common.mongo import Doc
from mandaact_common.outbox import OUTBOX_EVENTS
from mandaact_common.settings import DEV_ERASURE_KEY
from mandaact_common.testing import (
    RecordingDeadLetters,
    documents_naming,
    drain_outbox,
    record_of,
    settings_for_tests,
)
from mandaact_common.worker import WorkerDeps
from mandaact_contracts import topics
from mandaact_contracts.events import UserErased

pytestmark = pytest.mark.integration

Auth = Callable[..., dict[str, str]]
GRID = {"title": "Ship it", "sub_goals": [{"position": 1, "title": "Design"}]}


async def events_of(db: AsyncDatabase[Doc], topic: str) -> list[dict[str, Any]]:
    rows = await db[OUTBOX_EVENTS].find({}).to_list()
    return [json.loads(e["value"]) for r in rows for e in r["events"] if e["topic"] == topic]


@pytest.fixture
def goals_settings(infra: Any, unique_db_name: str) -> Settings:
    """No grace before an erasure (the tests run the jobs themselves)."""
    return settings_for_tests(Settings, infra, unique_db_name)


def consumer_of(
    goals_settings: Settings, mongo_client: AsyncMongoClient[Doc], db: AsyncDatabase[Doc]
) -> tuple[IdempotentConsumer, Eraser]:
    eraser = Eraser(LIFECYCLE, mongo_client, db, DEV_ERASURE_KEY.encode(), grace=timedelta(0))
    deps = WorkerDeps(goals_settings, mongo_client, db, producer=None)
    consumer = IdempotentConsumer(
        group="goals",
        client=mongo_client,
        db=db,
        handler=answers_handler(deps),
        dead_letters=RecordingDeadLetters(),
        eraser=eraser,
    )
    return consumer, eraser


def answer(service: str, tenant: str, user: str, scope: str = "user") -> UserErased:
    return UserErased.model_validate(
        {
            "tenant_id": tenant,
            "user_id": user,
            "service": service,
            "scope": scope,
            "deletion_id": "whatever the service computed",
            "erased_at": "2026-12-02T10:00:00Z",
        }
    )


async def test_delete_me_erases_goals_data_and_completes_once_every_service_answered(
    http: httpx.AsyncClient,
    auth: Auth,
    db: AsyncDatabase[Doc],
    goals_settings: Settings,
    mongo_client: AsyncMongoClient[Doc],
) -> None:
    me, other = auth("acme", "alice-7f3a"), auth("acme", "bob-51c2")
    assert (await http.put("/v1/me", json={"timezone": "Europe/Berlin"}, headers=me)).is_success
    assert (await http.post("/v1/mandalarts", json=GRID, headers=me)).status_code == 201
    assert (await http.post("/v1/mandalarts", json=GRID, headers=other)).status_code == 201
    assert (await http.get("/v1/me/deletion", headers=me)).status_code == 404

    asked = await http.delete("/v1/me", headers=me)
    assert asked.status_code == 202
    assert asked.headers["Location"] == "/v1/me/deletion"
    body = asked.json()
    assert body["status"] == "pending"
    assert body["scope"] == "user"
    assert body["services"] == dict.fromkeys(topics.ERASING_SERVICES)
    (deleted,) = await events_of(db, topics.USER_DELETED)
    assert (deleted["tenant_id"], deleted["user_id"]) == ("acme", "alice-7f3a")

    # From now on the user's writes are refused, and leave nothing behind; asking again is fine.
    refused = await http.put("/v1/me", json={"timezone": "Asia/Seoul"}, headers=me)
    assert refused.status_code == 410
    assert refused.json()["type"].endswith("/erased")
    assert (await http.post("/v1/mandalarts", json=GRID, headers=me)).status_code == 410
    again = await http.delete("/v1/me", headers=me)
    assert again.status_code == 202
    assert again.json()["requested_at"] == body["requested_at"]
    assert len(await events_of(db, topics.USER_DELETED)) == 1

    consumer, eraser = consumer_of(goals_settings, mongo_client, db)
    assert await eraser.run_due() == 1  # goals' own erasure: settings, grids, markers
    (own,) = await events_of(db, topics.USER_ERASED)
    assert own["service"] == "goals"
    others = [s for s in topics.ERASING_SERVICES if s != "goals"]
    early = [record_of(answer(s, "acme", "alice-7f3a"), offset=i) for i, s in enumerate(others)]
    await consumer.process([record_of(UserErased.model_validate(own)), *early[:-1]])
    status = (await http.get("/v1/me/deletion", headers=me)).json()
    assert status["status"] == "pending"
    assert status["services"][others[-1]] is None
    await consumer.process([record_of(answer(others[-1], "acme", "alice-7f3a"))])
    status = (await http.get("/v1/me/deletion", headers=me)).json()
    assert status["status"] == "complete"
    assert all(status["services"].values())
    assert status["completed_at"] is not None

    # Nothing in goals' database names her once the outbox is sent (its rows are the events).
    await drain_outbox(db)
    assert await documents_naming(db, "alice-7f3a") == []
    grids = (await http.get("/v1/mandalarts", headers=other)).json()["items"]
    assert len(grids) == 1, "the other user keeps their grid"


async def test_a_tenant_admin_deletes_the_tenant_and_only_admins_may(
    http: httpx.AsyncClient,
    auth: Auth,
    db: AsyncDatabase[Doc],
    goals_settings: Settings,
    mongo_client: AsyncMongoClient[Doc],
) -> None:
    admin, member = auth("initech-9", "root", roles=["admin"]), auth("initech-9", "milton")
    outsider = auth("globex", "hank")
    for who in (member, outsider):
        assert (await http.post("/v1/mandalarts", json=GRID, headers=who)).status_code == 201
    assert (await http.delete("/v1/admin/tenant", headers=member)).status_code == 403
    asked = await http.delete("/v1/admin/tenant", headers=admin)
    assert asked.status_code == 202
    assert asked.json()["scope"] == "tenant"
    (event,) = await events_of(db, topics.TENANT_DELETED)
    assert event["tenant_id"] == "initech-9"
    assert (await http.post("/v1/mandalarts", json=GRID, headers=member)).status_code == 410

    consumer, eraser = consumer_of(goals_settings, mongo_client, db)
    assert await eraser.run_due() == 1
    await consumer.process(
        [
            record_of(answer(s, "initech-9", "initech-9", scope="tenant"), offset=i)
            for i, s in enumerate(topics.ERASING_SERVICES)
        ]
    )
    status = (await http.get("/v1/admin/tenant/deletion", headers=admin)).json()
    assert status["status"] == "complete"
    await drain_outbox(db)
    assert await documents_naming(db, "initech-9") == []
    assert len((await http.get("/v1/mandalarts", headers=outsider)).json()["items"]) == 1


def test_goals_answers_on_user_erased_and_starts_erasures_itself() -> None:
    spec = worker_spec()
    assert [c.topics for c in spec.consumers] == [(topics.USER_ERASED,)]
    assert {topics.USER_DELETED, topics.TENANT_DELETED, topics.USER_ERASED} <= set(spec.publishes)
    assert spec.lifecycle is LIFECYCLE
