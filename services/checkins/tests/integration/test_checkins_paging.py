"""SPEC §11 limits of `GET /v1/checkins` against the real server: paging and the 92-day span."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import httpx
import pytest

from checkins.domain.model import MAX_RANGE_DAYS, CheckinCursor
from checkins.store.mongo import MongoCheckinsStore
from mandaact_common.domain.owner import Owner
from mandaact_common.testing import SettableClock, watched_client
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
WEEK = "from=2026-11-14&to=2026-11-20"


async def seed_checkins(http: httpx.AsyncClient, feed: Feed, auth: Auth) -> None:
    """Nine check-ins: four routines on 2026-11-19 and 11-20, and a mission on 11-20."""
    actions = [
        action("Run"),
        action("Review", schedule=MON_THU),
        action("Gym", schedule=TWICE_A_WEEK),
        action("Retro", schedule=TWICE_A_MONTH),
        action("Install Kafka", "mission", due_date="2026-12-01"),
    ]
    await feed(goal_changed("acme", "alice", new_id(), 1, [("Event flows", actions)]))
    for item in actions:
        dates = ["2026-11-20"] if item["type"] == "mission" else ["2026-11-19", "2026-11-20"]
        for day in dates:
            put = await http.put(f"/v1/checkins/{item['id']}?date={day}", headers=auth())
            assert put.status_code == 201, put.text


async def test_listing_pages_through_every_check_in_once_in_order(
    http: httpx.AsyncClient, feed: Feed, auth: Auth, clock: SettableClock
) -> None:
    clock.now = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)
    await seed_checkins(http, feed, auth)
    whole = (await http.get(f"/v1/checkins?{WEEK}", headers=auth())).json()
    assert len(whole["items"]) == 9
    assert whole["next_cursor"] is None
    seen: list[Any] = []
    page = (await http.get(f"/v1/checkins?{WEEK}&limit=2", headers=auth())).json()
    pages = 1
    while page["next_cursor"]:
        assert len(page["items"]) == 2
        seen += page["items"]
        response = await http.get(
            f"/v1/checkins?{WEEK}&limit=2&cursor={page['next_cursor']}", headers=auth()
        )
        assert response.status_code == 200, response.text
        page = response.json()
        pages += 1
    seen += page["items"]
    assert pages == 5
    assert seen == whole["items"]
    assert [c["local_date"] for c in seen] == sorted(c["local_date"] for c in seen)


@pytest.mark.parametrize(
    "query",
    ["limit=0", "limit=201", "limit=x", "cursor=bm90LWEtY3Vyc29y", "cursor=%21%21"],
)
async def test_bad_limits_and_cursors_are_422_naming_the_parameter(
    http: httpx.AsyncClient, auth: Auth, query: str
) -> None:
    response = await http.get(f"/v1/checkins?{query}", headers=auth())
    assert response.status_code == 422, response.text
    name = query.split("=")[0]
    assert f"query.{name}" in [e["field"] for e in response.json()["errors"]]


async def test_a_listing_spans_at_most_92_days(http: httpx.AsyncClient, auth: Auth) -> None:
    assert MAX_RANGE_DAYS == 92
    longest = await http.get("/v1/checkins?from=2026-08-21&to=2026-11-20", headers=auth())
    assert longest.status_code == 200, longest.text
    too_long = await http.get("/v1/checkins?from=2026-08-20&to=2026-11-20", headers=auth())
    assert too_long.status_code == 422
    assert too_long.headers["content-type"].startswith("application/problem+json")
    body = too_long.json()
    assert "at most 92 days" in body["detail"]
    assert [e["field"] for e in body["errors"]] == ["query.to"]


async def test_the_checklist_and_listing_reads_use_indexes_not_a_scan_of_every_tenant(
    http: httpx.AsyncClient, feed: Feed, auth: Auth, clock: SettableClock, db: Any, infra: Any
) -> None:
    """The done dates a checklist needs (a week, and any date of its missions) and a listing
    page after a cursor are index reads: the server used here answers an `$or`, or an `$in`
    followed by another predicate, by scanning every tenant's check-ins."""
    clock.now = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)
    await seed_checkins(http, feed, auth)
    async with watched_client(infra.mongodb_url) as (client, plans):
        store = MongoCheckinsStore(client[db.name], None)
        alice = Owner("acme", "alice")
        (grid,) = await store.live_grids(alice)
        mission = next(a.id for a in grid.actions if a.type == "mission")
        done = await store.done_dates(
            alice, until=date(2026, 11, 20), since=date(2026, 11, 20), any_date_of=[mission]
        )
        assert done[mission] == {date(2026, 11, 20)}
        assert len(done) == 5  # every action checked on the 20th
        # Earlier dates come only for the any-date actions named: the routines' 19th stays out.
        assert all(days == {date(2026, 11, 20)} for days in done.values())
        later = await store.done_dates(
            alice, until=date(2026, 11, 21), since=date(2026, 11, 21), any_date_of=[mission]
        )
        assert later == {mission: {date(2026, 11, 20)}}
        first = await store.checkins(alice, date(2026, 11, 14), date(2026, 11, 20), limit=4)
        rest = await store.checkins(
            alice,
            date(2026, 11, 14),
            date(2026, 11, 20),
            limit=10,
            after=CheckinCursor.after(first[-1]),
        )
        assert len(first) + len(rest) == 9
        assert {s.action_id for s in first} | {s.action_id for s in rest} >= {mission}
        assert await plans.scans(client) == []
