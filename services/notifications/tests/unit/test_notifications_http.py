"""`GET /v1/me/notifications` over the in-memory store: the caller's own, newest first, paged."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from mandaact_common.http import AppState
from mandaact_common.mongo import make_client
from mandaact_common.testing import auth_header, offline
from notifications.bootstrap import build_app
from notifications.clock import file_clock
from notifications.service import NotificationsService
from notifications.settings import Settings
from notifications.store.memory import InMemoryTimerLeases
from services.notifications.tests.support import TODAY, badge_unlocked, seoul
from services.notifications.tests.unit.test_notifications_service import Harness

pytestmark = pytest.mark.unit


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    """The real app and routes over an in-memory store holding alice's 3 and bob's 1."""
    h = Harness(seoul(TODAY, 12))
    for n in range(3):
        h.clock.now = seoul(TODAY, 12, n)
        await h.deliver(badge_unlocked("alice", f"badge_{n}", h.clock.now))
    await h.deliver(badge_unlocked("bob", "badge_0", h.clock.now))
    settings = Settings(env="test")
    service = NotificationsService(h.uow, InMemoryTimerLeases(h.uow), clock=h.clock)
    app: FastAPI = build_app(settings, service_factory=lambda _state: service)
    client = make_client("mongodb://127.0.0.1:9/?directConnection=true")  # never contacted
    app.state.mandaact = AppState(settings, client, client["unused"])
    offline(app)  # no database in unit tests
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://notifications") as c:
        yield c
    await client.close()


async def test_the_caller_sees_their_own_newest_first_a_page_at_a_time(
    http: httpx.AsyncClient,
) -> None:
    first = await http.get("/v1/me/notifications", params={"limit": 2}, headers=auth_header())
    assert first.status_code == 200, first.text
    body = first.json()
    assert [n["deep_link"] for n in body["items"]] == [
        "mandaact://badges/badge_2",
        "mandaact://badges/badge_1",
    ]
    assert body["items"][0]["kind"] == "badge_unlocked"
    assert body["items"][0]["locale"] == "ko"
    assert body["items"][0]["local_date"] == TODAY.isoformat()
    second = await http.get(
        "/v1/me/notifications",
        params={"limit": 2, "cursor": body["next_cursor"]},
        headers=auth_header(),
    )
    assert [n["deep_link"] for n in second.json()["items"]] == ["mandaact://badges/badge_0"]
    assert second.json()["next_cursor"] is None


async def test_another_tenant_or_user_sees_none_of_them(http: httpx.AsyncClient) -> None:
    other = await http.get("/v1/me/notifications", headers=auth_header("globex", "alice"))
    assert other.json() == {"items": [], "next_cursor": None}
    bob = await http.get("/v1/me/notifications", headers=auth_header("acme", "bob"))
    assert len(bob.json()["items"]) == 1


async def test_bad_input_is_a_problem_not_a_500(http: httpx.AsyncClient) -> None:
    bad = await http.get(
        "/v1/me/notifications", params={"cursor": "bm90LWEtY3Vyc29y"}, headers=auth_header()
    )
    assert bad.status_code == 422
    assert bad.headers["content-type"].startswith("application/problem+json")
    too_many = await http.get("/v1/me/notifications", params={"limit": 201}, headers=auth_header())
    assert too_many.status_code == 422
    anonymous = await http.get("/v1/me/notifications")
    assert anonymous.status_code == 401


def test_the_clock_file_is_refused_outside_test_modes() -> None:
    with pytest.raises(ValueError, match="CLOCK_FILE"):
        Settings(env="production", jwt_secret="x" * 40, erasure_key="e" * 40, clock_file="/tmp/now")
    assert Settings(env="test", clock_file="/tmp/now").clock_file == "/tmp/now"


def test_the_clock_file_moves_the_services_time(tmp_path: Path) -> None:
    path = tmp_path / "now"
    clock = file_clock(str(path))
    assert abs(clock() - datetime.now(UTC)) < timedelta(seconds=5)  # no file: the real clock
    path.write_text(seoul(TODAY, 21).isoformat())
    assert clock() == seoul(TODAY, 21)
