"""SPEC §11: a user owns at most 20 grids, against the real MongoDB-compatible server."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from goals.domain.model import MAX_GRIDS_PER_USER
from mandaact_common.mongo import Doc

pytestmark = pytest.mark.integration

Auth = Callable[..., dict[str, str]]
Dump = Callable[[], Awaitable[dict[str, list[Doc]]]]


async def stored(dump: Dump) -> dict[str, list[Doc]]:
    """Everything stored but the rate limiter's buckets (every request moves those)."""
    return {name: docs for name, docs in (await dump()).items() if name != "rate_limits"}


async def create(http: httpx.AsyncClient, headers: dict[str, str], title: str) -> httpx.Response:
    return await http.post("/v1/mandalarts", json={"title": title}, headers=headers)


def assert_grid_limit(response: httpx.Response, count: int) -> None:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["type"].endswith("/grid-limit-reached")
    assert body["limit"] == MAX_GRIDS_PER_USER
    assert body["count"] == count
    assert f"at most {MAX_GRIDS_PER_USER} grids" in body["detail"]


async def test_the_21st_grid_is_refused_with_the_reason_and_changes_nothing(
    http: httpx.AsyncClient, auth: Auth, dump: Dump
) -> None:
    for n in range(MAX_GRIDS_PER_USER):
        assert (await create(http, auth(), f"G{n}")).status_code == 201
    before = await stored(dump)
    assert_grid_limit(await create(http, auth(), "one too many"), MAX_GRIDS_PER_USER)
    keyed = {**auth(), "Idempotency-Key": str(uuid.uuid4())}
    assert_grid_limit(await create(http, keyed, "one too many"), MAX_GRIDS_PER_USER)
    assert await stored(dump) == before
    listed = (await http.get("/v1/mandalarts", headers=auth())).json()
    assert len(listed["items"]) == MAX_GRIDS_PER_USER
    # The cap is per user: another user (or tenant) is not affected.
    assert (await create(http, auth("acme", "bob"), "bob's")).status_code == 201
    assert (await create(http, auth("other", "alice"), "hers")).status_code == 201


async def test_paused_grids_count_and_deleted_ones_free_a_place(
    http: httpx.AsyncClient, auth: Auth
) -> None:
    ids = [(await create(http, auth(), f"G{n}")).json()["id"] for n in range(MAX_GRIDS_PER_USER)]
    paused = await http.patch(f"/v1/mandalarts/{ids[0]}", json={"active": False}, headers=auth())
    assert paused.status_code == 200
    assert_grid_limit(await create(http, auth(), "still full"), MAX_GRIDS_PER_USER)
    assert (await http.delete(f"/v1/mandalarts/{ids[1]}", headers=auth())).status_code == 204
    assert (await create(http, auth(), "in the freed place")).status_code == 201
    assert_grid_limit(await create(http, auth(), "full again"), MAX_GRIDS_PER_USER)


async def test_concurrent_creates_never_pass_the_cap(http: httpx.AsyncClient, auth: Auth) -> None:
    room = 2
    for n in range(MAX_GRIDS_PER_USER - room):
        assert (await create(http, auth(), f"G{n}")).status_code == 201
    answers = await asyncio.gather(*(create(http, auth(), f"racer {n}") for n in range(6)))
    statuses = sorted(r.status_code for r in answers)
    # A racer that keeps losing its retries may get 409 ("retry"); none may pass the cap.
    assert statuses.count(201) <= room, [r.text for r in answers]
    assert set(statuses) <= {201, 409, 422}, [r.text for r in answers]
    listed: dict[str, Any] = (await http.get("/v1/mandalarts", headers=auth())).json()
    assert len(listed["items"]) == MAX_GRIDS_PER_USER - room + statuses.count(201)
    assert len(listed["items"]) <= MAX_GRIDS_PER_USER
