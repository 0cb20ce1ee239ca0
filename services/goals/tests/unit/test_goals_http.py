"""The real goals app and routes, wired by bootstrap, over the in-memory unit of work."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI

from goals.bootstrap import build_app
from goals.service import GoalsService
from goals.settings import Settings
from goals.store.memory import InMemoryUnitOfWork
from mandaact_common.http import AppState
from mandaact_common.mongo import make_client
from mandaact_common.testing import SettableClock, auth_header, offline
from mandaact_contracts import topics

pytestmark = pytest.mark.unit

GRID = {
    "title": "Ship it",
    "sub_goals": [
        {
            "position": 1,
            "title": "Code",
            "actions": [
                {
                    "position": 1,
                    "title": "Write tests",
                    "type": "routine",
                    "schedule": {"frequency": "daily"},
                }
            ],
        }
    ],
}


@pytest.fixture
def uow() -> InMemoryUnitOfWork:
    return InMemoryUnitOfWork()


@pytest.fixture
async def http(uow: InMemoryUnitOfWork) -> AsyncIterator[httpx.AsyncClient]:
    ids = itertools.count(1)
    clock = SettableClock(datetime(2026, 11, 24, 3, 0, tzinfo=UTC))
    service = GoalsService(
        uow, clock=clock, new_id=lambda: f"00000000-0000-4000-8000-{next(ids):012d}"
    )
    app: FastAPI = build_app(Settings(env="test"), service_factory=lambda _state: service)
    client = make_client("mongodb://127.0.0.1:9/?directConnection=true")  # never contacted
    app.state.mandaact = AppState(Settings(env="test"), client, client["unused"])
    offline(app)  # no database in unit tests
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://goals") as http:
        yield http
    await client.close()


async def test_a_grid_is_created_read_back_and_announced(
    http: httpx.AsyncClient, uow: InMemoryUnitOfWork
) -> None:
    created = await http.post("/v1/mandalarts", json=GRID, headers=auth_header())
    assert created.status_code == 201
    grid_id = created.json()["id"]
    read = await http.get(f"/v1/mandalarts/{grid_id}", headers=auth_header())
    assert read.status_code == 200
    assert read.headers["ETag"] == '"1"'
    assert [topic for topic, _, _ in uow.events] == [topics.GOAL_CHANGED]
    other = await http.get(f"/v1/mandalarts/{grid_id}", headers=auth_header(user="bob"))
    assert other.status_code == 404


async def test_a_stale_if_match_is_a_412_problem_that_changes_nothing(
    http: httpx.AsyncClient, uow: InMemoryUnitOfWork
) -> None:
    grid_id = (await http.post("/v1/mandalarts", json=GRID, headers=auth_header())).json()["id"]
    stale = await http.patch(
        f"/v1/mandalarts/{grid_id}",
        json={"title": "New"},
        headers={**auth_header(), "If-Match": '"7"'},
    )
    assert stale.status_code == 412
    assert stale.headers["content-type"] == "application/problem+json"
    assert stale.headers["ETag"] == '"1"'
    assert stale.json()["current_version"] == 1
    assert uow.mandalarts[grid_id].title == "Ship it"


async def test_an_idempotency_key_gives_one_grid_and_refuses_another_body(
    http: httpx.AsyncClient, uow: InMemoryUnitOfWork
) -> None:
    headers = {**auth_header(), "Idempotency-Key": "k-1"}
    first = await http.post("/v1/mandalarts", json=GRID, headers=headers)
    again = await http.post("/v1/mandalarts", json=GRID, headers=headers)
    assert (first.status_code, again.status_code) == (201, 201)
    assert first.json() == again.json()
    assert len(uow.mandalarts) == 1
    other = await http.post("/v1/mandalarts", json={**GRID, "title": "Other"}, headers=headers)
    assert other.status_code == 422
    assert other.json()["type"].endswith("/idempotency-key-reused")
    assert len(uow.mandalarts) == 1


# --- pauses (SPEC §6); the clock reads 2026-11-24 12:00 in Seoul, so yesterday is the 23rd ----


def _pause(start: str, end: str, reason: str | None = None) -> dict[str, str | None]:
    return {"from": start, "to": end, "reason": reason}


async def _put_pauses(http: httpx.AsyncClient, *items: dict[str, str | None]) -> httpx.Response:
    return await http.put("/v1/me/pauses", json={"items": list(items)}, headers=auth_header())


async def test_pauses_are_stored_sorted_and_announced_once(
    http: httpx.AsyncClient, uow: InMemoryUnitOfWork
) -> None:
    later, sooner = (
        _pause("2026-12-20", "2026-12-31", "holidays"),
        _pause("2026-11-23", "2026-11-25"),
    )
    stored = await _put_pauses(http, later, sooner)
    assert stored.status_code == 200, stored.text
    assert stored.json()["items"] == [sooner, later]
    again = await _put_pauses(http, sooner, later)
    assert again.json() == stored.json()
    read = await http.get("/v1/me/pauses", headers=auth_header())
    assert read.json() == stored.json()
    changes = [payload for topic, payload, _ in uow.events if topic == topics.USER_CHANGED]
    assert len(changes) == 1  # the same list twice is one change


@pytest.mark.parametrize(
    ("items", "why"),
    [
        ([_pause("2026-12-01", "2026-12-31")], "at most 30 days"),
        ([_pause("2026-12-01", "2026-12-10"), _pause("2026-12-10", "2026-12-12")], "overlaps"),
        ([_pause("2026-11-30", "2026-11-29")], "before 'from'"),
        ([_pause("2026-11-22", "2026-11-24")], "before yesterday"),
        (
            [
                _pause("2027-01-01", "2027-01-30"),
                _pause("2027-03-01", "2027-03-30"),
                _pause("2027-05-01", "2027-05-01"),
            ],
            "61 paused days in 2027",
        ),
    ],
)
async def test_a_pause_list_that_breaks_a_rule_is_a_422_that_stores_nothing(
    http: httpx.AsyncClient,
    uow: InMemoryUnitOfWork,
    items: list[dict[str, str | None]],
    why: str,
) -> None:
    refused = await _put_pauses(http, *items)
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert why in refused.text
    assert (await http.get("/v1/me/pauses", headers=auth_header())).json()["items"] == []
    assert not uow.events


async def test_a_pause_under_way_can_be_ended_early_but_its_past_stays(
    http: httpx.AsyncClient,
) -> None:
    assert (await _put_pauses(http, _pause("2026-11-23", "2026-12-05"))).status_code == 200
    shortened = await _put_pauses(http, _pause("2026-11-23", "2026-11-24"))
    assert shortened.status_code == 200, shortened.text
    assert (await _put_pauses(http)).status_code == 200  # yesterday on may still change


async def test_the_day_start_moves_today_for_the_pause_rules(http: httpx.AsyncClient) -> None:
    # 2026-11-24 03:00 UTC is 17:00 on the 23rd in Honolulu: yesterday is the 22nd there.
    await http.put("/v1/me", json={"timezone": "Pacific/Honolulu"}, headers=auth_header())
    assert (await _put_pauses(http, _pause("2026-11-22", "2026-11-23"))).status_code == 200
    await http.put(
        "/v1/me", json={"timezone": "Asia/Seoul", "day_starts_at": "12:00"}, headers=auth_header()
    )
    # Seoul 12:00 with a 12:00 start is the 24th: yesterday the 23rd; the 22nd is history now.
    refused = await _put_pauses(http, _pause("2026-11-23", "2026-11-23"))
    assert refused.status_code == 422
    assert "before yesterday" in refused.text
