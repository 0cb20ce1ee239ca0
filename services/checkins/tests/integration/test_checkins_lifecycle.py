"""SPEC §9 on the real server: the export of a user, and the erasure of a user and of a tenant
through the real consumer and erasure jobs (nothing naming them is left; the others keep all)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from mandaact_common.lifecycle import Eraser
from mandaact_common.mongo import Doc
from mandaact_common.testing import auth_header, documents_naming, drain_outbox, erasure_of
from mandaact_contracts import topics
from services.checkins.tests.support import Feed, action, goal_changed, new_id, user_changed

pytestmark = pytest.mark.integration

Outbox = Callable[..., Awaitable[list[dict[str, Any]]]]

# Ids no other text contains, so `documents_naming` finds exactly their documents.
TENANT, OTHER_TENANT = "tn-erase-acme", "tn-keep-globex"
ALICE, BOB, CAROL = "us-erase-alice", "us-keep-bob", "us-keep-carol"


async def a_user_with_data(feed: Feed, http: httpx.AsyncClient, tenant: str, user: str) -> str:
    """Settings, a grid, a routine's check-in and a mission's: a document in every collection.
    Returns the routine's id."""
    run, mission = action("Run"), action("Ship it", "mission")
    await feed(user_changed(tenant, user, 1, "Asia/Seoul"))
    await feed(goal_changed(tenant, user, new_id(), 1, [("Body", [run, mission])]))
    headers = auth_header(tenant, user)
    assert (await http.put(f"/v1/checkins/{run['id']}", headers=headers)).status_code == 201
    assert (await http.put(f"/v1/checkins/{mission['id']}", headers=headers)).status_code == 201
    return str(run["id"])


async def world(feed: Feed, http: httpx.AsyncClient, db: AsyncDatabase[Doc]) -> dict[str, str]:
    """Alice and Bob of one tenant, Carol of another, each with data; the outbox relayed."""
    runs = {user: await a_user_with_data(feed, http, TENANT, user) for user in (ALICE, BOB)}
    runs[CAROL] = await a_user_with_data(feed, http, OTHER_TENANT, CAROL)
    await drain_outbox(db)
    return runs


async def test_a_user_is_erased_and_nothing_of_them_comes_back(
    feed: Feed,
    http: httpx.AsyncClient,
    db: AsyncDatabase[Doc],
    eraser: Eraser,
    outbox: Outbox,
) -> None:
    runs = await world(feed, http, db)
    assert {name for name, _ in await documents_naming(db, ALICE)} >= {
        "users",
        "grids",
        "checkins",
        "mission_locks",
    }
    kept = await documents_naming(db, BOB, OTHER_TENANT)

    await feed(erasure_of(TENANT, ALICE))
    assert await eraser.run_due() == 1

    [erased] = await outbox(topics.USER_ERASED)
    assert erased["payload"]["service"] == "checkins"
    assert erased["payload"]["scope"] == "user"
    assert (erased["payload"]["tenant_id"], erased["payload"]["user_id"]) == (TENANT, ALICE)
    assert [e["topic"] for e in await outbox()] == [topics.USER_ERASED]
    await drain_outbox(db)
    assert await documents_naming(db, ALICE) == []
    assert await documents_naming(db, BOB, OTHER_TENANT) == kept

    # Late: a grid change, replayed settings, a check-in. Nothing of Alice is stored again.
    await feed(goal_changed(TENANT, ALICE, new_id(), 1, [("Mind", [action("Read")])]))
    await feed(user_changed(TENANT, ALICE, 2, "Europe/Paris"))
    late = await http.put(f"/v1/checkins/{runs[ALICE]}", headers=auth_header(TENANT, ALICE))
    assert late.status_code == 410
    assert late.json()["type"].endswith("erased")
    assert await documents_naming(db, ALICE) == []
    assert await eraser.run_due() == 0
    # Bob goes on as before.
    undo = await http.delete(f"/v1/checkins/{runs[BOB]}", headers=auth_header(TENANT, BOB))
    assert undo.status_code == 204


async def test_a_tenant_is_erased_and_the_other_tenant_keeps_everything(
    feed: Feed,
    http: httpx.AsyncClient,
    db: AsyncDatabase[Doc],
    eraser: Eraser,
    outbox: Outbox,
) -> None:
    runs = await world(feed, http, db)
    kept = await documents_naming(db, OTHER_TENANT)

    await feed(erasure_of(TENANT))
    assert await eraser.run_due() == 1

    [erased] = await outbox(topics.USER_ERASED)
    assert (erased["payload"]["service"], erased["payload"]["scope"]) == ("checkins", "tenant")
    assert [e["topic"] for e in await outbox()] == [topics.USER_ERASED]
    await drain_outbox(db)
    assert await documents_naming(db, TENANT) == []
    assert await documents_naming(db, OTHER_TENANT) == kept

    await feed(goal_changed(TENANT, BOB, new_id(), 2, [("Mind", [action("Read")])]))
    late = await http.put(f"/v1/checkins/{runs[BOB]}", headers=auth_header(TENANT, BOB))
    assert late.status_code == 410
    assert await documents_naming(db, TENANT) == []
    carol = await http.get("/v1/checkins", headers=auth_header(OTHER_TENANT, CAROL))
    assert carol.status_code == 200
    assert len(carol.json()["items"]) == 2


async def test_the_export_holds_the_callers_documents_and_nobody_elses(
    feed: Feed, http: httpx.AsyncClient, db: AsyncDatabase[Doc]
) -> None:
    await world(feed, http, db)
    response = await http.get("/v1/me/export", headers=auth_header(TENANT, ALICE))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert (body["service"], body["tenant_id"], body["user_id"]) == ("checkins", TENANT, ALICE)
    collections = body["collections"]
    assert {"users", "grids", "checkins", "mission_locks"} <= set(collections)
    assert len(collections["users"]) == len(collections["grids"]) == 1
    assert len(collections["checkins"]) == len(collections["mission_locks"]) + 1 == 2
    assert collections["users"][0]["timezone"] == "Asia/Seoul"
    assert {c["local_date"] for c in collections["checkins"]} == {"2026-11-20"}
    for documents in collections.values():
        assert all(doc["user_id"] == ALICE for doc in documents)
    assert BOB not in response.text
    assert CAROL not in response.text
    assert OTHER_TENANT not in response.text
