"""The read model fed through the real idempotent consumer: order, repeats, tenants, poison."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from mandaact_common.consumer import PROCESSED
from mandaact_common.mongo import Doc
from mandaact_common.testing import RecordingDeadLetters
from services.checkins.tests.support import (
    Feed,
    action,
    goal_changed,
    new_id,
    user_changed,
)

pytestmark = pytest.mark.integration

Auth = Callable[..., dict[str, str]]


async def checklist_ids(http: httpx.AsyncClient, headers: dict[str, str], query: str = "") -> Any:
    response = await http.get(f"/v1/checklist{query}", headers=headers)
    assert response.status_code == 200, response.text
    return [item["action_id"] for item in response.json()["items"]]


async def test_an_older_goal_changed_after_a_newer_one_is_ignored(
    http: httpx.AsyncClient, feed: Feed, auth: Auth, db: AsyncDatabase[Doc]
) -> None:
    grid_id, first, second = new_id(), action("First"), action("Second")
    v1 = goal_changed("acme", "alice", grid_id, 1, [("S", [first])])
    v2 = goal_changed("acme", "alice", grid_id, 2, [("S", [first, second])])
    await feed(v2)
    await feed(v1)
    assert await checklist_ids(http, auth()) == [first["id"], second["id"]]
    [stored] = await db["grids"].find({}).to_list()
    assert stored["version"] == 2


async def test_versions_in_one_batch_in_any_order_keep_the_newest(
    http: httpx.AsyncClient, feed: Feed, auth: Auth
) -> None:
    grid_id, kept = new_id(), action("Kept")
    versions = [
        goal_changed("acme", "alice", grid_id, v, [("S", [kept, action(f"v{v}")])])
        for v in (1, 2, 3)
    ]
    await feed(versions[2], versions[0], versions[1])
    newest = versions[2].mandalart.sub_goals[0].actions[1].id
    assert await checklist_ids(http, auth()) == [kept["id"], newest]


async def test_a_redelivered_event_is_dropped_and_a_repeated_payload_changes_nothing(
    http: httpx.AsyncClient,
    feed: Feed,
    auth: Auth,
    db: AsyncDatabase[Doc],
    dead_letters: RecordingDeadLetters,
) -> None:
    run = action("Run")
    event = goal_changed("acme", "alice", new_id(), 1, [("S", [run])])
    [envelope] = await feed(event)
    before = await db["grids"].find({}).to_list()
    await feed(envelope, envelope)  # the same ce_id twice more
    await feed(event)  # the same grid version under a new ce_id
    assert await db["grids"].find({}).to_list() == before
    assert await db[PROCESSED].count_documents({}) == 2
    assert await checklist_ids(http, auth()) == [run["id"]]
    assert dead_letters.sent == []


async def test_deleted_and_inactive_grids_leave_the_checklist(
    http: httpx.AsyncClient, feed: Feed, auth: Auth
) -> None:
    paused_id, gone_id = new_id(), new_id()
    paused, gone = action("Paused"), action("Gone")
    await feed(
        goal_changed("acme", "alice", paused_id, 1, [("S", [paused])]),
        goal_changed("acme", "alice", gone_id, 1, [("S", [gone])]),
    )
    assert sorted(await checklist_ids(http, auth())) == sorted([paused["id"], gone["id"]])
    await feed(
        goal_changed("acme", "alice", paused_id, 2, [("S", [paused])], active=False),
        goal_changed("acme", "alice", gone_id, 2, [("S", [gone])], deleted=True),
    )
    assert await checklist_ids(http, auth()) == []
    gone_put = await http.put(f"/v1/checkins/{gone['id']}", headers=auth())
    assert gone_put.status_code == 404
    paused_put = await http.put(f"/v1/checkins/{paused['id']}", headers=auth())
    assert paused_put.status_code == 422
    assert paused_put.json()["type"].endswith("/grid-inactive")
    await feed(goal_changed("acme", "alice", paused_id, 3, [("S", [paused])]))
    assert await checklist_ids(http, auth()) == [paused["id"]]


async def test_goal_changed_timezone_is_used_until_user_changed_and_newer_settings_win(
    http: httpx.AsyncClient, feed: Feed, auth: Auth
) -> None:
    # NOW is Friday 20th noon in Seoul, Thursday 19th 22:00 in New York.
    nothing_known = await http.get("/v1/checklist", headers=auth())
    assert nothing_known.json()["date"] == "2026-11-20"  # Asia/Seoul, the default
    await feed(
        goal_changed(
            "acme", "alice", new_id(), 1, [("S", [action("Run")])], timezone="America/New_York"
        )
    )
    assert (await http.get("/v1/checklist", headers=auth())).json()["date"] == "2026-11-19"
    await feed(user_changed("acme", "alice", 2, "Asia/Seoul"))
    assert (await http.get("/v1/checklist", headers=auth())).json()["date"] == "2026-11-20"
    await feed(user_changed("acme", "alice", 1, "America/New_York"))  # older: ignored
    assert (await http.get("/v1/checklist", headers=auth())).json()["date"] == "2026-11-20"


async def test_another_tenants_grid_never_shows_even_with_the_same_ids(
    http: httpx.AsyncClient, feed: Feed, auth: Auth
) -> None:
    grid_id, mine, theirs = new_id(), action("Mine"), action("Theirs")
    await feed(
        goal_changed("acme", "alice", grid_id, 1, [("S", [mine])]),
        goal_changed("evil", "alice", grid_id, 5, [("S", [theirs])]),
    )
    assert await checklist_ids(http, auth("acme", "alice")) == [mine["id"]]
    assert await checklist_ids(http, auth("evil", "alice")) == [theirs["id"]]
    assert await checklist_ids(http, auth("acme", "bob")) == []


async def test_a_grid_that_breaks_the_due_rules_is_dead_lettered_and_the_rest_applied(
    http: httpx.AsyncClient, feed: Feed, auth: Auth, dead_letters: RecordingDeadLetters
) -> None:
    bad = action("Both", schedule={"frequency": "weekly", "days": ["mon"], "times": 2})
    good = action("Good")
    await feed(
        goal_changed("acme", "alice", new_id(), 1, [("S", [bad])]),
        goal_changed("acme", "alice", new_id(), 1, [("S", [good])]),
    )
    assert await checklist_ids(http, auth()) == [good["id"]]
    assert len(dead_letters.sent) == 1
    assert "days or times" in str(dead_letters.sent[0][1])
