"""SPEC §11 limits of `GET /v1/checkins` against the real server: paging and the 92-day span."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from checkins.domain.model import MAX_RANGE_DAYS
from mandaact_common.testing import SettableClock
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
