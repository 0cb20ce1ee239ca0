"""The HTTP edge over the in-memory store: status codes, problem documents, field names."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import jwt
import pytest
from fastapi import FastAPI

from checkins.bootstrap import build_app
from checkins.consumers.handler import grid_of
from checkins.service import CheckinsService, project
from checkins.settings import Settings
from checkins.store.memory import InMemoryCheckinsStore, InMemoryUnitOfWork
from mandaact_common.auth import mint_token
from mandaact_common.http import AppState
from mandaact_common.mongo import make_client
from mandaact_common.settings import DEV_JWT_SECRET
from mandaact_common.testing import offline
from services.checkins.tests.support import action, goal_changed, new_id

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)  # noon in Seoul
TOKEN = {"Authorization": f"Bearer {mint_token(DEV_JWT_SECRET, 'acme', 'alice')}"}
RUN = new_id()
NOTE = new_id()


@pytest.fixture
async def app() -> AsyncIterator[FastAPI]:
    """The real app and routes, its use cases over the in-memory store (no lifespan, no I/O)."""
    settings = Settings(env="test")
    uow = InMemoryUnitOfWork()
    grid = goal_changed(
        "acme",
        "alice",
        new_id(),
        1,
        [("Body", [action("Run", id=RUN), action("Note", "reference", id=NOTE)])],
    )

    async def seed(store: InMemoryCheckinsStore) -> None:
        await project(store, [grid_of(grid)], [])

    await uow.run(seed)
    ids = itertools.count(1)
    service = CheckinsService(
        uow, backfill_days=1, clock=lambda: NOW, new_id=lambda: f"c{next(ids)}"
    )
    app = build_app(settings, service_factory=lambda _state: service)
    client = make_client("mongodb://127.0.0.1:9/?directConnection=true")  # never contacted
    app.state.mandaact = AppState(settings, client, client["unused"])
    offline(app)  # no database in unit tests
    yield app
    await client.close()


@pytest.fixture
async def http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to the app in process."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://checkins") as client:
        yield client


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


def fields(body: dict[str, Any]) -> list[str]:
    return [e["field"] for e in body.get("errors", [])]


async def test_put_201_then_200_then_delete_204(http: httpx.AsyncClient) -> None:
    created = await http.put(f"/v1/checkins/{RUN}", headers=TOKEN)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["id"] == "c1"
    assert (body["local_date"], body["type"], body["changes_left"]) == ("2026-11-20", "routine", 2)
    again = await http.put(f"/v1/checkins/{RUN}?date=2026-11-20", headers=TOKEN)
    assert again.status_code == 200
    assert again.json()["id"] == "c1"
    gone = await http.delete(f"/v1/checkins/{RUN}", headers=TOKEN)
    assert gone.status_code == 204
    assert gone.content == b""
    assert (await http.delete(f"/v1/checkins/{RUN}", headers=TOKEN)).status_code == 204


async def test_the_fourth_change_answers_429(http: httpx.AsyncClient) -> None:
    url = f"/v1/checkins/{RUN}"
    assert (await http.put(url, headers=TOKEN)).status_code == 201
    assert (await http.delete(url, headers=TOKEN)).status_code == 204
    assert (await http.put(url, headers=TOKEN)).status_code == 201
    body = problem(await http.delete(url, headers=TOKEN), 429)
    assert body["type"].endswith("/too-many-changes")
    assert body["limit"] == 3
    # The refused undo changed nothing: the action is still done.
    checklist = (await http.get("/v1/checklist", headers=TOKEN)).json()
    assert checklist["done_count"] == 1


@pytest.mark.parametrize(
    ("query", "slug"),
    [("?date=2026-11-21", "date-in-future"), ("?date=2026-11-18", "date-too-old")],
)
async def test_dates_outside_the_window_answer_422_naming_the_date(
    http: httpx.AsyncClient, query: str, slug: str
) -> None:
    body = problem(await http.put(f"/v1/checkins/{RUN}{query}", headers=TOKEN), 422)
    assert body["type"].endswith(slug)
    assert fields(body) == ["query.date"]


async def test_a_reference_answers_422_and_an_unknown_action_404(http: httpx.AsyncClient) -> None:
    body = problem(await http.put(f"/v1/checkins/{NOTE}", headers=TOKEN), 422)
    assert body["type"].endswith("/not-checkable")
    problem(await http.put(f"/v1/checkins/{new_id()}", headers=TOKEN), 404)
    problem(await http.delete(f"/v1/checkins/{new_id()}", headers=TOKEN), 404)


@pytest.mark.parametrize(
    ("method", "url", "field"),
    [
        ("PUT", "/v1/checkins/not-a-uuid", "path.action_id"),
        ("PUT", f"/v1/checkins/{RUN}?date=2026-13-01", "query.date"),
        ("PUT", f"/v1/checkins/{RUN}?date=1700000000", "query.date"),
        ("DELETE", f"/v1/checkins/{RUN}?date=2026-11-20T00:00:00", "query.date"),
        ("GET", "/v1/checklist?date=yesterday", "query.date"),
        ("GET", "/v1/checklist?date=0001-01-01", "query.date"),
        ("GET", "/v1/checklist?date=9999-12-31", "query.date"),
        ("GET", "/v1/checkins?from=2026-11-20&to=2026-11-01", "query.from"),
        ("GET", "/v1/checkins?from=2024-01-01&to=2025-01-01", "query.to"),
        ("GET", "/v1/checkins?to=20261120", "query.to"),
    ],
)
async def test_bad_input_answers_422_naming_the_field(
    http: httpx.AsyncClient, method: str, url: str, field: str
) -> None:
    body = problem(await http.request(method, url, headers=TOKEN), 422)
    assert field in fields(body), body


def _token(claims: dict[str, Any], secret: str = DEV_JWT_SECRET) -> dict[str, str]:
    return {"Authorization": f"Bearer {jwt.encode(claims, secret, algorithm='HS256')}"}


EXP = int(NOW.timestamp()) + 10**9
UNAUTHORIZED = [
    {},
    {"Authorization": "Basic YWxpY2U6c2VjcmV0"},
    {"Authorization": "Bearer not-a-jwt"},
    _token({"sub": "alice", "tid": "acme", "exp": EXP}, "another-secret-another-secret-0123"),
    _token({"sub": "alice", "tid": "acme", "exp": 1_000_000}),
    _token({"sub": "alice", "exp": EXP}),
    _token({"tid": "acme", "exp": EXP}),
]


@pytest.mark.parametrize("headers", UNAUTHORIZED)
@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("GET", "/v1/checklist"),
        ("GET", "/v1/checkins"),
        ("PUT", f"/v1/checkins/{RUN}"),
        ("DELETE", f"/v1/checkins/{RUN}"),
    ],
)
async def test_no_valid_token_answers_401(
    http: httpx.AsyncClient, headers: dict[str, str], method: str, url: str
) -> None:
    response = await http.request(method, url, headers=headers)
    problem(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"


async def test_listing_answers_the_range_with_its_check_ins(http: httpx.AsyncClient) -> None:
    await http.put(f"/v1/checkins/{RUN}?date=2026-11-19", headers=TOKEN)
    listed = await http.get("/v1/checkins?from=2026-11-19&to=2026-11-19", headers=TOKEN)
    assert listed.status_code == 200
    body = listed.json()
    assert (body["from"], body["to"]) == ("2026-11-19", "2026-11-19")
    assert [(c["action_id"], c["local_date"]) for c in body["items"]] == [(RUN, "2026-11-19")]
    default = (await http.get("/v1/checkins", headers=TOKEN)).json()
    assert (default["from"], default["to"]) == ("2026-11-14", "2026-11-20")
