"""SPEC §11 limits through the goals app on the real server: the 64 KiB body cap, rate limits."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from goals.bootstrap import build_app
from goals.settings import Settings
from mandaact_common.keys import deletion_id
from mandaact_common.limits import MAX_BODY_BYTES, RATE_LIMITS, RateLimiter
from mandaact_common.mongo import Doc
from mandaact_common.settings import DEV_ERASURE_KEY
from mandaact_common.testing import documents_naming

pytestmark = pytest.mark.integration

Auth = Callable[..., dict[str, str]]
Dump = Callable[[], Awaitable[dict[str, list[Doc]]]]

PROBLEM = "application/problem+json"
GRID = {"title": "Run a marathon", "sub_goals": [{"position": 1, "title": "Base miles"}]}
RATE_HEADERS = ("ratelimit-limit", "ratelimit-remaining", "ratelimit-reset", "ratelimit-policy")


def body_of_size(size: int) -> bytes:
    """A valid grid as JSON text padded with spaces to exactly `size` bytes."""
    text = json.dumps(GRID).encode()
    return text[:-1] + b" " * (size - len(text)) + b"}"


class StepClock:
    """A clock tests move by hand (seconds since the epoch; by default weeks ahead of the
    database's, so the limiter judges at this clock)."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def delete_unknown(http: httpx.AsyncClient, headers: dict[str, str]) -> Awaitable[httpx.Response]:
    """A cheap mutating request (404: no such grid) that the rate limits still count."""
    return http.delete(f"/v1/mandalarts/{uuid.uuid4()}", headers=headers)


# -- 413 -------------------------------------------------------------------------------------


async def test_a_body_over_64_kib_with_content_length_is_413_before_auth(
    http: httpx.AsyncClient, dump: Dump
) -> None:
    before = await dump()
    content = body_of_size(MAX_BODY_BYTES + 1)
    response = await http.post(
        "/v1/mandalarts", content=content, headers={"content-type": "application/json"}
    )  # no token: the cap comes before authentication
    assert response.status_code == 413, response.text
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["status"] == 413
    assert problem["type"].endswith("/content-too-large")
    assert "65536" in problem["detail"]
    assert "65537" in problem["detail"]
    assert await dump() == before


async def test_a_streamed_body_over_64_kib_is_413(
    http: httpx.AsyncClient, auth: Auth, dump: Dump
) -> None:
    before = await dump()
    content = body_of_size(MAX_BODY_BYTES + 1)

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(content), 4096):
            yield content[start : start + 4096]

    response = await http.post(
        "/v1/mandalarts",
        content=chunks(),
        headers={**auth(), "content-type": "application/json"},
    )
    assert response.status_code == 413, response.text
    assert response.headers["content-type"] == PROBLEM
    assert "65536" in response.json()["detail"]
    assert await dump() == before


async def test_a_body_of_exactly_64_kib_is_accepted(http: httpx.AsyncClient, auth: Auth) -> None:
    content = body_of_size(MAX_BODY_BYTES)
    assert len(content) == MAX_BODY_BYTES
    response = await http.post(
        "/v1/mandalarts", content=content, headers={**auth(), "content-type": "application/json"}
    )
    assert response.status_code == 201, response.text


# -- rate limits -----------------------------------------------------------------------------


@asynccontextmanager
async def replica(
    settings: Settings, client: AsyncMongoClient[Doc], clock: StepClock
) -> AsyncIterator[httpx.AsyncClient]:
    """One more API replica on the same database, on the test's clock."""
    app: FastAPI = build_app(settings, client=client)
    limiter: RateLimiter = app.state.rate_limiter
    limiter.clock = clock
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://goals") as http:
            yield http


def limited(
    infra: Any, database: str, *, user_burst: int = 40, tenant_per_s: float, tenant_burst: int
) -> Settings:
    """Settings of a replica of the test's database with these limits."""
    return Settings(
        env="test",
        mongodb_url=infra.mongodb_url,
        mongodb_database=database,
        rate_limit_user_burst=user_burst,
        rate_limit_tenant_per_s=tenant_per_s,
        rate_limit_tenant_burst=tenant_burst,
    )


@pytest.fixture
def clock(goals_app: FastAPI) -> StepClock:
    """The test's clock, on the `http` fixture's app."""
    step = StepClock()
    goals_app.state.rate_limiter.clock = step
    return step


async def test_a_burst_past_the_user_limit_is_429_with_the_headers(
    http: httpx.AsyncClient, auth: Auth, clock: StepClock
) -> None:
    created = await http.post("/v1/mandalarts", json=GRID, headers=auth())
    assert created.status_code == 201
    assert created.headers["ratelimit-limit"] == "40"
    assert created.headers["ratelimit-remaining"] == "39"
    assert all(name in created.headers for name in RATE_HEADERS)
    for _ in range(39):
        assert (await delete_unknown(http, auth())).status_code == 404
    refused = await delete_unknown(http, auth())
    assert refused.status_code == 429, refused.text
    assert refused.headers["content-type"] == PROBLEM
    assert refused.json()["type"].endswith("/rate-limited")
    assert refused.headers["retry-after"] == "1"
    assert refused.headers["ratelimit-limit"] == "40"
    assert refused.headers["ratelimit-remaining"] == "0"
    assert int(refused.headers["ratelimit-reset"]) >= 1
    assert refused.headers["ratelimit-policy"] == "40;w=2, 2000;w=1"
    # reads are not limited
    assert (await http.get("/v1/mandalarts", headers=auth())).status_code == 200


async def test_two_replicas_together_hold_one_users_limit(
    http: httpx.AsyncClient,
    auth: Auth,
    clock: StepClock,
    goals_settings: Settings,
    mongo_client: AsyncMongoClient[Doc],
) -> None:
    async with replica(goals_settings, mongo_client, clock) as other:
        for i in range(40):
            replica_http = http if i % 2 else other
            assert (await delete_unknown(replica_http, auth())).status_code == 404
        assert (await delete_unknown(http, auth())).status_code == 429
        assert (await delete_unknown(other, auth())).status_code == 429


async def test_other_users_and_tenants_are_not_limited_by_one_user(
    http: httpx.AsyncClient, auth: Auth, clock: StepClock
) -> None:
    for _ in range(40):
        await delete_unknown(http, auth("acme", "alice"))
    assert (await delete_unknown(http, auth("acme", "alice"))).status_code == 429
    assert (await delete_unknown(http, auth("acme", "bob"))).status_code == 404
    assert (await delete_unknown(http, auth("globex", "alice"))).status_code == 404


async def test_requests_pass_again_after_waiting(
    http: httpx.AsyncClient, auth: Auth, clock: StepClock
) -> None:
    for _ in range(40):
        await delete_unknown(http, auth())
    refused = await delete_unknown(http, auth())
    assert refused.status_code == 429
    clock.now += int(refused.headers["retry-after"])  # 1 s at 20 a second: 20 more
    for _ in range(20):
        assert (await delete_unknown(http, auth())).status_code == 404
    assert (await delete_unknown(http, auth())).status_code == 429
    clock.now += 2  # the whole burst again
    assert (await delete_unknown(http, auth())).headers["ratelimit-remaining"] == "39"


async def test_the_tenant_limit_binds_every_user_of_the_tenant(
    auth: Auth,
    infra: Any,
    unique_db_name: str,
    mongo_client: AsyncMongoClient[Doc],
) -> None:
    settings = limited(infra, unique_db_name, user_burst=3, tenant_per_s=5, tenant_burst=5)
    clock = StepClock()
    try:
        async with replica(settings, mongo_client, clock) as http:
            for _ in range(4):  # alice's fourth is hers to refuse, and spends no tenant budget
                await delete_unknown(http, auth("acme", "alice"))
            assert (await delete_unknown(http, auth("acme", "bob"))).status_code == 404
            assert (await delete_unknown(http, auth("acme", "carol"))).status_code == 404
            refused = await delete_unknown(http, auth("acme", "dave"))
            assert refused.status_code == 429
            assert refused.headers["ratelimit-limit"] == "5"
            assert (await delete_unknown(http, auth("globex", "erin"))).status_code == 404
    finally:
        await mongo_client.drop_database(unique_db_name)


async def test_concurrent_requests_on_two_replicas_spend_the_tenant_burst_exactly_once(
    auth: Auth,
    infra: Any,
    unique_db_name: str,
    mongo_client: AsyncMongoClient[Doc],
) -> None:
    """Requests that arrive together are spent together (one move of the bucket for all that
    wait), judged as one after another: of 30 users' requests at once on two replicas, the
    tenant's burst of 10 passes, each remaining count once, and the rest are refused."""
    settings = limited(infra, unique_db_name, tenant_per_s=1, tenant_burst=10)
    clock = StepClock()
    try:
        async with (
            replica(settings, mongo_client, clock) as one,
            replica(settings, mongo_client, clock) as two,
        ):
            answers = await asyncio.gather(
                *(delete_unknown(one if k % 2 else two, auth("acme", f"u{k}")) for k in range(30))
            )
    finally:
        await mongo_client.drop_database(unique_db_name)
    passed = [r for r in answers if r.status_code == 404]
    refused = [r for r in answers if r.status_code == 429]
    assert (len(passed), len(refused)) == (10, 20), [r.status_code for r in answers]
    assert sorted(int(r.headers["ratelimit-remaining"]) for r in passed) == list(range(10))
    assert all(r.headers["ratelimit-limit"] == "10" for r in refused)


async def test_a_request_that_reaches_the_bucket_late_is_judged_when_it_does(
    auth: Auth,
    infra: Any,
    unique_db_name: str,
    mongo_client: AsyncMongoClient[Doc],
) -> None:
    """Under load a request can wait seconds between its replica reading the clock and its
    bucket moving, while requests sent after it move the bucket first: it is judged at the
    database's time then, not refused for being seconds behind them (tenant tolerance: 1 s)."""
    settings = Settings(env="test", mongodb_url=infra.mongodb_url, mongodb_database=unique_db_name)
    now = time.time()
    try:
        async with (
            replica(settings, mongo_client, StepClock(now)) as current,
            replica(settings, mongo_client, StepClock(now - 5)) as late,
        ):
            assert (await delete_unknown(current, auth("acme", "alice"))).status_code == 404
            passed = await delete_unknown(late, auth("acme", "bob"))
            assert passed.status_code == 404, passed.text
            assert passed.headers["ratelimit-remaining"] == "39"  # his first of 40
    finally:
        await mongo_client.drop_database(unique_db_name)


async def test_buckets_are_small_documents_that_name_nobody_and_expire(
    http: httpx.AsyncClient, auth: Auth, clock: StepClock, db: AsyncDatabase[Doc]
) -> None:
    await delete_unknown(http, auth("acme", "alice"))
    buckets = await db[RATE_LIMITS].find({}).sort("_id", 1).to_list()
    key = DEV_ERASURE_KEY.encode()
    # Keyed hashes of the tenant and of the user (SPEC §9: an erased user leaves no id behind).
    assert [b["_id"] for b in buckets] == sorted(
        [deletion_id(key, "acme"), deletion_id(key, "acme", "alice")]
    )
    assert all(set(b) == {"_id", "tat", "at", "base", "passed", "expires_at"} for b in buckets)
    assert await documents_naming(db, "acme", "alice") == []
    indexes = await db[RATE_LIMITS].index_information()
    assert any(
        spec["key"] == [("expires_at", 1)] and spec.get("expireAfterSeconds") == 0
        for spec in indexes.values()
    )


async def test_the_limits_can_be_switched_off(
    auth: Auth,
    infra: Any,
    unique_db_name: str,
    mongo_client: AsyncMongoClient[Doc],
) -> None:
    settings = Settings(
        env="test",
        mongodb_url=infra.mongodb_url,
        mongodb_database=unique_db_name,
        rate_limit_enabled=False,
        rate_limit_user_burst=1,
    )
    try:
        async with replica(settings, mongo_client, StepClock()) as http:
            for _ in range(3):
                response = await delete_unknown(http, auth())
                assert response.status_code == 404
                assert "ratelimit-limit" not in response.headers
    finally:
        await mongo_client.drop_database(unique_db_name)


async def test_the_document_names_413_and_429_for_mutations_only(http: httpx.AsyncClient) -> None:
    document = (await http.get("/openapi.json")).json()
    post = document["paths"]["/v1/mandalarts"]["post"]["responses"]
    get = document["paths"]["/v1/mandalarts"]["get"]["responses"]
    delete = document["paths"]["/v1/mandalarts/{id}"]["delete"]["responses"]
    assert {"413", "429"} <= set(post)
    assert "429" in delete
    assert not {"413", "429"} & set(get)
    assert "Retry-After" in post["429"]["headers"]
