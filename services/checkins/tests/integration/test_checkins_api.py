"""The checkins API against the real MongoDB-compatible server: checklist, check-ins, outbox."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from mandaact_common.consistency import Token
from mandaact_common.mongo import Doc
from mandaact_common.testing import SettableClock
from mandaact_contracts import topics
from services.checkins.tests.support import (
    MON_THU,
    TWICE_A_MONTH,
    TWICE_A_WEEK,
    Feed,
    action,
    goal_changed,
    new_id,
)

pytestmark = pytest.mark.integration

Auth = Callable[..., dict[str, str]]
Outbox = Callable[..., Awaitable[list[dict[str, Any]]]]
Dump = Callable[[], Awaitable[dict[str, list[Doc]]]]


async def seed(feed: Feed, tenant: str = "acme", user: str = "alice") -> dict[str, str]:
    """One grid with one action of every kind; returns their ids by name."""
    actions = {
        "daily": action("Run"),
        "mon_thu": action("Review", schedule=MON_THU),
        "twice_week": action("Gym", schedule=TWICE_A_WEEK),
        "twice_month": action("Retro", schedule=TWICE_A_MONTH),
        "mission": action("Install Kafka", "mission", due_date="2026-12-01"),
        "note": action("Stay curious", "reference"),
    }
    await feed(goal_changed(tenant, user, new_id(), 1, [("Event flows", list(actions.values()))]))
    return {name: a["id"] for name, a in actions.items()}


async def checklist(http: httpx.AsyncClient, headers: dict[str, str], query: str = "") -> Any:
    response = await http.get(f"/v1/checklist{query}", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def due(body: Any, ids: dict[str, str]) -> dict[str, bool]:
    names = {v: k for k, v in ids.items()}
    return {names[item["action_id"]]: item["done"] for item in body["items"]}


async def check(http: httpx.AsyncClient, headers: dict[str, str], action_id: str) -> int:
    return (await http.put(f"/v1/checkins/{action_id}", headers=headers)).status_code


# --- the checklist -----------------------------------------------------------------------------


async def test_the_checklist_of_each_schedule_type_through_a_week(
    http: httpx.AsyncClient, feed: Feed, auth: Auth, clock: SettableClock
) -> None:
    ids = await seed(feed)
    h = auth()
    clock.now = datetime(2026, 11, 16, 3, 0, tzinfo=UTC)  # Monday noon in Seoul
    monday = await checklist(http, h)
    assert monday["date"] == "2026-11-16"
    assert due(monday, ids) == dict.fromkeys(
        ["daily", "mon_thu", "twice_week", "twice_month", "mission"], False
    )
    assert monday["items"][0] == {
        "action_id": ids["daily"],
        "mandalart_id": monday["items"][0]["mandalart_id"],
        "sub_goal_position": 1,
        "title": "Run",
        "type": "routine",
        "done": False,
    }
    for name in ("daily", "twice_week", "twice_month", "mon_thu", "mission"):
        assert await check(http, h, ids[name]) == 201
    done = await checklist(http, h)
    assert (done["due_count"], done["done_count"], done["perfect"]) == (5, 5, True)

    clock.now += timedelta(days=1)  # Tuesday: no weekday review; the mission is done
    for name in ("daily", "twice_week", "twice_month"):
        assert await check(http, h, ids[name]) == 201
    tuesday = await checklist(http, h)
    assert due(tuesday, ids) == {"daily": True, "twice_week": True, "twice_month": True}
    assert tuesday["perfect"] is True

    clock.now += timedelta(days=1)  # Wednesday: both N-times targets are met
    wednesday = await checklist(http, h)
    assert due(wednesday, ids) == {"daily": False}
    assert (wednesday["due_count"], wednesday["done_count"], wednesday["perfect"]) == (1, 0, False)

    thursday = await checklist(http, h, "?date=2026-11-19")
    assert due(thursday, ids) == {"daily": False, "mon_thu": False}
    next_monday = await checklist(http, h, "?date=2026-11-23")
    assert set(due(next_monday, ids)) == {"daily", "mon_thu", "twice_week"}  # monthly met


async def test_the_checklist_of_a_monday_counts_check_ins_before_the_action_was_added(
    http: httpx.AsyncClient, feed: Feed, auth: Auth, clock: SettableClock
) -> None:
    gym = action("Gym", schedule=TWICE_A_WEEK, added_on="2026-11-17")
    await feed(goal_changed("acme", "alice", new_id(), 1, [("S", [gym])]))
    clock.now = datetime(2026, 11, 17, 3, 0, tzinfo=UTC)  # Tuesday, the day it was added
    yesterday = await http.put(f"/v1/checkins/{gym['id']}?date=2026-11-16", headers=auth())
    assert yesterday.status_code == 201  # allowed before the action was added
    assert (await checklist(http, auth(), "?date=2026-11-16"))["items"] == []  # not due then
    assert await check(http, auth(), gym["id"]) == 201
    assert (await checklist(http, auth(), "?date=2026-11-18"))["items"] == []  # 2 done: met


# --- checking and undoing ----------------------------------------------------------------------


async def test_put_201_then_200_with_exactly_one_action_completed_in_the_outbox(
    http: httpx.AsyncClient, feed: Feed, auth: Auth, outbox: Outbox
) -> None:
    ids = await seed(feed)
    first = await http.put(f"/v1/checkins/{ids['twice_week']}", headers=auth())
    assert first.status_code == 201, first.text
    again = await http.put(f"/v1/checkins/{ids['twice_week']}?date=2026-11-20", headers=auth())
    assert again.status_code == 200
    assert again.json() == first.json()
    [row] = await outbox()
    assert row["topic"] == topics.ACTION_COMPLETED
    assert row["key"] == b"acme:alice"
    h = row["header_map"]
    assert (h["ce_source"], h["ce_type"]) == ("checkins", "mandaact.action.completed.v1")
    assert (h["ce_subject"], h["ce_tenantid"]) == (ids["twice_week"], "acme")
    assert h["traceparent"]
    uuid.UUID(h["ce_id"])
    p = row["payload"]
    assert p == {
        "tenant_id": "acme",
        "user_id": "alice",
        "checkin_id": first.json()["id"],
        "action_id": ids["twice_week"],
        "mandalart_id": first.json()["mandalart_id"],
        "sub_goal_position": 1,
        "sub_goal_title": "Event flows",
        "action_title": "Gym",
        "action_type": "routine",
        "local_date": "2026-11-20",
        "timezone": "Asia/Seoul",
        "occurred_at": "2026-11-20T03:00:00Z",
        "seq": 1,
        "schedule": {"frequency": "weekly", "days": None, "times": 2},
        "source_seq": 1,  # alice's first action.completed from checkins (SPEC §12)
    }
    # The response's token names that number (read-your-writes).
    token = Token.decode(first.headers["MandaAct-Consistency"])
    assert token is not None
    assert (token.source, token.tenant_id, token.user_id) == ("checkins", "acme", "alice")
    assert token.seqs == {topics.ACTION_COMPLETED: 1}


async def test_delete_emits_one_action_uncompleted_and_a_second_delete_is_a_no_op(
    http: httpx.AsyncClient, feed: Feed, auth: Auth, outbox: Outbox
) -> None:
    ids = await seed(feed)
    created = await http.put(f"/v1/checkins/{ids['mission']}", headers=auth())
    assert created.status_code == 201
    assert (await http.delete(f"/v1/checkins/{ids['mission']}", headers=auth())).status_code == 204
    assert (await http.delete(f"/v1/checkins/{ids['mission']}", headers=auth())).status_code == 204
    undo = await outbox(topics.ACTION_UNCOMPLETED)
    assert len(undo) == 1
    assert undo[0]["header_map"]["ce_subject"] == ids["mission"]
    p = undo[0]["payload"]
    assert (p["checkin_id"], p["seq"], p["action_type"]) == (created.json()["id"], 2, "mission")
    assert p["schedule"] is None
    assert len(await outbox()) == 2
    assert (await checklist(http, auth()))["done_count"] == 0


async def test_the_fourth_change_of_a_date_answers_429_and_changes_nothing(
    http: httpx.AsyncClient, feed: Feed, auth: Auth, outbox: Outbox, dump: Dump
) -> None:
    ids = await seed(feed)
    url = f"/v1/checkins/{ids['daily']}"
    assert (await http.put(url, headers=auth())).status_code == 201
    assert (await http.delete(url, headers=auth())).status_code == 204
    assert (await http.put(url, headers=auth())).status_code == 201
    before = await dump()
    refused = await http.delete(url, headers=auth())
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["type"].endswith("/too-many-changes")
    assert await dump() == before
    assert [r["payload"]["seq"] for r in await outbox()] == [1, 2, 3]
    # Yesterday has a budget of its own.
    assert (await http.put(f"{url}?date=2026-11-19", headers=auth())).status_code == 201


async def test_racing_requests_make_one_check_in_and_never_more_than_three_changes(
    http: httpx.AsyncClient, feed: Feed, auth: Auth, outbox: Outbox, db: AsyncDatabase[Doc]
) -> None:
    ids = await seed(feed)
    url = f"/v1/checkins/{ids['daily']}"
    puts = await asyncio.gather(*(http.put(url, headers=auth()) for _ in range(6)))
    assert sorted(r.status_code for r in puts) == [200] * 5 + [201]
    assert len({r.json()["id"] for r in puts}) == 1
    assert len(await outbox()) == 1

    other = f"/v1/checkins/{ids['twice_week']}"
    storm = await asyncio.gather(
        *(http.request("PUT" if n % 2 == 0 else "DELETE", other, headers=auth()) for n in range(12))
    )
    assert {r.status_code for r in storm} <= {200, 201, 204, 429}
    events = [r for r in await outbox() if r["payload"]["action_id"] == ids["twice_week"]]
    slot = await db["checkins"].find_one({"action_id": ids["twice_week"]})
    assert slot is not None
    assert slot["changes"] <= 3
    assert sorted(r["payload"]["seq"] for r in events) == list(range(1, slot["changes"] + 1))


async def test_concurrent_check_ins_of_many_users_share_transactions_and_each_counts_once(
    http: httpx.AsyncClient, feed: Feed, auth: Auth, outbox: Outbox, db: AsyncDatabase[Doc]
) -> None:
    """Group commit across requests: check-ins that arrive together are committed together
    (fewer outbox rows, one per transaction and tenant, than check-ins), and every user gets
    exactly their own check-in, event and event number."""
    users = [f"user-{k}" for k in range(24)]
    ids = {u: (await seed(feed, user=u))["daily"] for u in users}
    puts = await asyncio.gather(
        *(http.put(f"/v1/checkins/{ids[u]}", headers=auth("acme", u)) for u in users)
    )
    assert [r.status_code for r in puts] == [201] * len(users), [r.text for r in puts]
    events = await outbox()
    by_user = {e["payload"]["user_id"]: e["payload"] for e in events}
    assert len(events) == len(by_user) == len(users)
    for user, put in zip(users, puts, strict=True):
        assert by_user[user]["checkin_id"] == put.json()["id"]
        assert by_user[user]["source_seq"] == 1
    transactions = await db["outbox"].count_documents({})
    assert transactions < len(users), "every check-in had a transaction of its own"


async def test_racing_check_ins_of_a_mission_on_two_dates_leave_it_done_once(
    http: httpx.AsyncClient, feed: Feed, auth: Auth, outbox: Outbox
) -> None:
    ids = await seed(feed)
    url = f"/v1/checkins/{ids['mission']}"
    for round_ in (1, 2):
        today, yesterday = await asyncio.gather(
            http.put(url, headers=auth()), http.put(f"{url}?date=2026-11-19", headers=auth())
        )
        assert sorted([today.status_code, yesterday.status_code]) == [201, 422]
        loser = today if today.status_code == 422 else yesterday
        assert loser.json()["type"].endswith("/mission-already-done")
        if round_ == 1:  # undo, and race again
            winner = today if today.status_code == 201 else yesterday
            day = winner.json()["local_date"]
            assert (await http.delete(f"{url}?date={day}", headers=auth())).status_code == 204
    assert len(await outbox(topics.ACTION_COMPLETED)) == 2
    listed = (await http.get("/v1/checkins", headers=auth())).json()
    assert [c["action_id"] for c in listed["items"]] == [ids["mission"]]


# --- refusals ----------------------------------------------------------------------------------


async def test_another_tenants_or_users_action_is_not_found_and_nothing_changes(
    http: httpx.AsyncClient, feed: Feed, auth: Auth, dump: Dump
) -> None:
    ids = await seed(feed, "acme", "alice")
    before = await dump()
    for who in (auth("evil", "alice"), auth("acme", "bob")):
        for method in ("PUT", "DELETE"):
            response = await http.request(method, f"/v1/checkins/{ids['daily']}", headers=who)
            assert response.status_code == 404, response.text
            assert response.json()["type"].endswith("/not-found")
    unknown = await http.put(f"/v1/checkins/{new_id()}", headers=auth())
    assert unknown.status_code == 404
    assert await dump() == before


@pytest.mark.parametrize(
    ("name", "query", "slug"),
    [
        ("daily", "?date=2026-11-21", "date-in-future"),
        ("daily", "?date=2026-11-18", "date-too-old"),
        ("note", "", "not-checkable"),
    ],
)
async def test_future_too_old_and_reference_answer_422_and_nothing_changes(
    http: httpx.AsyncClient, feed: Feed, auth: Auth, dump: Dump, name: str, query: str, slug: str
) -> None:
    ids = await seed(feed)
    before = await dump()
    for method in ("PUT", "DELETE"):
        response = await http.request(method, f"/v1/checkins/{ids[name]}{query}", headers=auth())
        assert response.status_code == 422, response.text
        assert response.json()["type"].endswith(slug)
    assert await dump() == before


@pytest.mark.parametrize(
    ("method", "path", "field"),
    [
        ("PUT", "/v1/checkins/42", "path.action_id"),
        ("DELETE", "/v1/checkins/{daily}?date=2026-02-30", "query.date"),
        ("PUT", "/v1/checkins/{daily}?date=20.11.2026", "query.date"),
        ("GET", "/v1/checklist?date=2026-11-20T00:00:00Z", "query.date"),
        ("GET", "/v1/checkins?from=2026-11-20&to=2026-11-19", "query.from"),
        ("GET", "/v1/checkins?from=2025-01-01&to=2026-01-02", "query.to"),
        ("GET", "/v1/checkins?from=x", "query.from"),
    ],
)
async def test_bad_input_is_a_422_problem_naming_the_field_and_nothing_changes(
    http: httpx.AsyncClient,
    feed: Feed,
    auth: Auth,
    dump: Dump,
    method: str,
    path: str,
    field: str,
) -> None:
    ids = await seed(feed)
    before = await dump()
    response = await http.request(method, path.format(**ids), headers=auth())
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert field in [e["field"] for e in response.json()["errors"]]
    assert await dump() == before


async def test_no_token_is_a_401_problem(http: httpx.AsyncClient, feed: Feed) -> None:
    ids = await seed(feed)
    for method, path in [
        ("GET", "/v1/checklist"),
        ("GET", "/v1/checkins"),
        ("PUT", f"/v1/checkins/{ids['daily']}"),
        ("DELETE", f"/v1/checkins/{ids['daily']}"),
    ]:
        response = await http.request(method, path)
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"


# --- tenant isolation of the reads -------------------------------------------------------------


async def test_check_ins_and_checklists_are_the_callers_own(
    http: httpx.AsyncClient, feed: Feed, auth: Auth
) -> None:
    mine = await seed(feed, "acme", "alice")
    await seed(feed, "evil", "alice")  # the same user id in another tenant
    await seed(feed, "acme", "bob")
    assert await check(http, auth("acme", "alice"), mine["daily"]) == 201
    assert await check(http, auth("acme", "alice"), mine["mission"]) == 201
    week = "?from=2026-11-14&to=2026-11-20"
    listed = (await http.get(f"/v1/checkins{week}", headers=auth("acme", "alice"))).json()
    assert sorted(c["action_id"] for c in listed["items"]) == sorted(
        [mine["daily"], mine["mission"]]
    )
    for other in (auth("evil", "alice"), auth("acme", "bob")):
        assert (await http.get(f"/v1/checkins{week}", headers=other)).json()["items"] == []
        theirs = await checklist(http, other)
        assert theirs["done_count"] == 0
        assert theirs["due_count"] == 4  # a Friday: no weekday review
        assert not {i["action_id"] for i in theirs["items"]} & set(mine.values())


async def test_listing_shows_the_range_in_date_order_with_titles(
    http: httpx.AsyncClient, feed: Feed, auth: Auth
) -> None:
    ids = await seed(feed)
    assert (await http.put(f"/v1/checkins/{ids['daily']}", headers=auth())).status_code == 201
    yesterday = await http.put(f"/v1/checkins/{ids['daily']}?date=2026-11-19", headers=auth())
    assert yesterday.status_code == 201
    body = (await http.get("/v1/checkins", headers=auth())).json()
    assert (body["from"], body["to"]) == ("2026-11-14", "2026-11-20")
    assert [(c["local_date"], c["title"], c["sub_goal_title"]) for c in body["items"]] == [
        ("2026-11-19", "Run", "Event flows"),
        ("2026-11-20", "Run", "Event flows"),
    ]
    only = (await http.get("/v1/checkins?from=2026-11-20&to=2026-11-20", headers=auth())).json()
    assert [c["local_date"] for c in only["items"]] == ["2026-11-20"]
