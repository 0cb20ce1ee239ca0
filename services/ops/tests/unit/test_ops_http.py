"""The ops HTTP edge over fakes: operator only, listing, redrive/discard, overview, dev tokens."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest
from fastapi import FastAPI

from mandaact_common.http import AppState
from mandaact_common.limits import InMemoryBuckets
from mandaact_common.mongo import make_client
from mandaact_common.settings import DEV_JWT_SECRET
from mandaact_common.testing import auth_header
from ops.bootstrap import build_app
from ops.service import OpsService
from ops.settings import Settings
from ops.store.memory import MemoryOpsStore
from services.ops.tests.support import FakeKafka, FakeProbes, letter

pytestmark = pytest.mark.unit

OPERATOR = auth_header("platform", "olga", roles=["operator"])
ADMIN = auth_header("acme", "alice", roles=["admin"])


@pytest.fixture
def kafka() -> FakeKafka:
    return FakeKafka(
        letters={
            "gamification": [
                letter("gamification", 0, 0, at_ms=100, ce_id="a"),
                letter("gamification", 1, 0, at_ms=300, ce_id="b"),
                letter("gamification", 0, 1, at_ms=200, ce_id="c", tenant="globex"),
            ],
            "reports": [letter("reports", 2, 5, at_ms=250, topic="xp.awarded")],
        },
        ends={("action.completed", 0): 12, ("action.completed", 1): 3},
        committed={"gamification": {("action.completed", 0): 10, ("action.completed", 1): 3}},
    )


@pytest.fixture
def store() -> MemoryOpsStore:
    return MemoryOpsStore()


async def make_app(settings: Settings, service: OpsService) -> AsyncIterator[FastAPI]:
    app = build_app(settings, service_factory=lambda _state: service)
    client = make_client("mongodb://127.0.0.1:9/?directConnection=true")  # never contacted
    app.state.mandaact = AppState(settings, client, client["unused"])
    app.state.rate_limiter.store = InMemoryBuckets()
    yield app
    await client.close()


@pytest.fixture
async def http(kafka: FakeKafka, store: MemoryOpsStore) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(env="test", service_urls="goals=http://g:1,checkins=http://c:2")
    service = OpsService(store, kafka, kafka, FakeProbes(down={"goals"}), kafka, settings.services)
    async for app in make_app(settings, service):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ops") as client:
            yield client


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/ops/overview"),
        ("GET", "/v1/ops/dead-letters"),
        ("POST", "/v1/ops/dead-letters/gamification/redrive"),
        ("POST", "/v1/ops/dead-letters/gamification/discard"),
        ("GET", "/v1/ops/events"),
    ],
)
async def test_only_operators_reach_the_ops_api(
    http: httpx.AsyncClient, method: str, path: str
) -> None:
    body = {"all": True}
    problem(await http.request(method, path, json=body), 401)
    refused = problem(await http.request(method, path, json=body, headers=ADMIN), 403)
    assert "operator" in refused["detail"]


async def test_dead_letters_are_listed_newest_first_across_groups_a_page_at_a_time(
    http: httpx.AsyncClient,
) -> None:
    first = (await http.get("/v1/ops/dead-letters?limit=2", headers=OPERATOR)).json()
    assert [(d["group"], d["id"]) for d in first["items"]] == [
        ("gamification", "1-0"),
        ("reports", "2-5"),
    ]
    rest = (
        await http.get(f"/v1/ops/dead-letters?limit=2&cursor={first['next']}", headers=OPERATOR)
    ).json()
    assert [d["id"] for d in rest["items"]] == ["0-1", "0-0"]
    assert rest["next"] is None
    shown = first["items"][0]
    assert shown["topic"] == "action.completed"
    assert shown["partition"] == 2
    assert shown["offset"] == 100
    assert shown["headers"]["ce_id"] == "b"
    assert shown["value"] == '{"broken": true}'
    assert shown["error"] == "ValidationError: 1 validation error"
    assert shown["dead_lettered_at"].startswith("2026-11-20T03:00:00")
    only = (await http.get("/v1/ops/dead-letters?group=reports", headers=OPERATOR)).json()
    assert [d["group"] for d in only["items"]] == ["reports"]


async def test_a_redriven_letter_goes_back_with_its_event_id_and_is_no_longer_listed(
    http: httpx.AsyncClient, kafka: FakeKafka, store: MemoryOpsStore
) -> None:
    done = await http.post(
        "/v1/ops/dead-letters/gamification/redrive",
        json={"ids": ["0-1", "9-9"]},
        headers=OPERATOR,
    )
    assert done.status_code == 200, done.text
    assert done.json() == {
        "group": "gamification",
        "action": "redriven",
        "count": 1,
        "ids": ["0-1"],
        "missing": ["9-9"],
    }
    assert [dict(d.original_headers())["ce_id"] for d in kafka.republished] == [b"c"]
    listed = (await http.get("/v1/ops/dead-letters?group=gamification", headers=OPERATOR)).json()
    assert [d["id"] for d in listed["items"]] == ["1-0", "0-0"]
    ((entry, state),) = store.audit.values()
    assert (entry.tenant_id, entry.user_id, entry.action, state) == (
        "platform",
        "olga",
        "redriven",
        "done",
    )


async def test_discarding_all_hides_every_letter_and_sends_nothing(
    http: httpx.AsyncClient, kafka: FakeKafka
) -> None:
    done = await http.post(
        "/v1/ops/dead-letters/gamification/discard", json={"all": True}, headers=OPERATOR
    )
    assert done.json()["count"] == 3
    assert kafka.republished == []
    listed = (await http.get("/v1/ops/dead-letters?group=gamification", headers=OPERATOR)).json()
    assert listed["items"] == []
    again = await http.post(
        "/v1/ops/dead-letters/gamification/discard", json={"all": True}, headers=OPERATOR
    )
    assert again.json()["count"] == 0


async def test_a_redrive_the_broker_refuses_leaves_the_letters_listed(
    http: httpx.AsyncClient, kafka: FakeKafka, store: MemoryOpsStore
) -> None:
    kafka.fail_republish = True
    with pytest.raises(ConnectionError):
        await http.post(
            "/v1/ops/dead-letters/gamification/redrive", json={"all": True}, headers=OPERATOR
        )
    listed = (await http.get("/v1/ops/dead-letters?group=gamification", headers=OPERATOR)).json()
    assert len(listed["items"]) == 3
    ((_entry, state),) = store.audit.values()
    assert state == "requested"


@pytest.mark.parametrize(
    "body",
    [{}, {"ids": []}, {"ids": ["0-1"], "all": True}, {"all": False}, {"ids": ["zero"]}],
)
async def test_a_selection_that_is_not_one_is_a_422(
    http: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    problem(
        await http.post("/v1/ops/dead-letters/gamification/redrive", json=body, headers=OPERATOR),
        422,
    )


async def test_an_unknown_group_is_a_404(http: httpx.AsyncClient) -> None:
    problem(
        await http.post("/v1/ops/dead-letters/nope/redrive", json={"all": True}, headers=OPERATOR),
        404,
    )
    problem(await http.get("/v1/ops/dead-letters?group=nope", headers=OPERATOR), 404)
    problem(await http.get("/v1/ops/dead-letters?cursor=abc", headers=OPERATOR), 422)


async def test_the_overview_shows_health_lag_per_partition_and_letters_per_group(
    http: httpx.AsyncClient,
) -> None:
    overview = (await http.get("/v1/ops/overview", headers=OPERATOR)).json()
    services = {s["service"]: s for s in overview["services"]}
    assert services["goals"]["ready"] is False
    assert services["checkins"]["outbox_pending"] == 3
    groups = {g["group"]: g for g in overview["groups"]}
    assert groups["gamification"]["lag"] == 2
    assert [p["lag"] for p in groups["gamification"]["partitions"]] == [2, 0]
    assert groups["checkins"]["lag"] == 0
    assert overview["dead_letters"]["gamification"] == 3
    assert overview["dead_letters"]["reports"] == 1


async def test_the_live_tail_refuses_an_unknown_topic(http: httpx.AsyncClient) -> None:
    problem(await http.get("/v1/ops/events?topic=nope", headers=OPERATOR), 422)


async def test_the_console_is_served_with_its_config_and_mints_dev_tokens_in_test_mode(
    http: httpx.AsyncClient,
) -> None:
    page = await http.get("/")
    assert page.status_code == 200
    assert 'id="grid"' in page.text
    assert (await http.get("/static/app.js")).status_code == 200
    assert (await http.get("/console/dev-token")).status_code == 405
    config = (await http.get("/console/config.json")).json()
    assert config == {
        "services": {"goals": "http://g:1", "checkins": "http://c:2"},
        "dev_tokens": True,
    }
    minted = await http.post(
        "/console/dev-token", json={"tenant": "demo", "user": "dee", "roles": ["operator"]}
    )
    assert minted.status_code == 201
    claims = jwt.decode(minted.json()["token"], DEV_JWT_SECRET, algorithms=["HS256"])
    assert (claims["tid"], claims["sub"], claims["roles"]) == ("demo", "dee", ["operator"])
    problem(await http.post("/console/dev-token", json={"tenant": "a b", "user": "x"}), 422)


async def test_production_mints_no_dev_tokens(kafka: FakeKafka, store: MemoryOpsStore) -> None:
    settings = Settings(env="production", jwt_secret="s" * 40, erasure_key="e" * 40)
    service = OpsService(store, kafka, kafka, FakeProbes(), kafka, settings.services)
    async for app in make_app(settings, service):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ops") as client:
            refused = await client.post("/console/dev-token", json={"tenant": "a", "user": "b"})
            assert refused.status_code in (404, 405)
            config = (await client.get("/console/config.json")).json()
            assert config["dev_tokens"] is False
