"""The admin API over the in-memory store: roles, status codes, problems, the secret once."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from mandaact_common.auth import mint_token
from mandaact_common.http import AppState
from mandaact_common.mongo import make_client
from mandaact_common.settings import DEV_JWT_SECRET
from mandaact_common.testing import offline
from services.webhooks.tests.support import NOW, resolver_of
from webhooks.bootstrap import build_app
from webhooks.guard import UrlGuard
from webhooks.service import WebhooksService
from webhooks.settings import Settings
from webhooks.store.memory import unit_of_work_over

pytestmark = pytest.mark.unit


def bearer(
    tenant: str = "acme", user: str = "root", roles: tuple[str, ...] = ("admin",)
) -> dict[str, str]:
    token = mint_token(DEV_JWT_SECRET, tenant, user, roles=list(roles))
    return {"Authorization": f"Bearer {token}"}


ADMIN = bearer()
BASE = "/v1/admin/webhooks"


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    """The real app and routes over the in-memory store, in production URL rules."""
    settings = Settings(env="test")
    guard = UrlGuard(
        allow_private=False,
        resolver=resolver_of({"hooks.example": ["93.184.216.34"], "inside.example": ["10.0.0.7"]}),
    )
    service = WebhooksService(unit_of_work_over(), guard, clock=lambda: NOW)
    app: FastAPI = build_app(settings, service_factory=lambda _state: service)
    client = make_client("mongodb://127.0.0.1:9/?directConnection=true")  # never contacted
    app.state.mandaact = AppState(settings, client, client["unused"])
    offline(app)  # no database in unit tests
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://webhooks") as c:
        yield c


async def test_an_admin_registers_an_endpoint_and_sees_the_secret_only_once(
    http: httpx.AsyncClient,
) -> None:
    created = await http.post(
        BASE, json={"url": "https://hooks.example/in", "event_types": ["xp.awarded"]}, headers=ADMIN
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["secret"].startswith("whsec_")
    assert body["enabled"] is True
    assert body["event_types"] == ["xp.awarded"]
    shown = await http.get(f"{BASE}/{body['id']}", headers=ADMIN)
    assert shown.status_code == 200
    assert "secret" not in shown.json()
    listed = await http.get(BASE, headers=ADMIN)
    assert [e["id"] for e in listed.json()["items"]] == [body["id"]]
    assert "secret" not in listed.json()["items"][0]


async def test_a_member_without_the_admin_role_gets_403(http: httpx.AsyncClient) -> None:
    r = await http.get(BASE, headers=bearer(roles=()))
    assert r.status_code == 403
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["status"] == 403


async def test_another_tenants_admin_cannot_see_the_endpoint(http: httpx.AsyncClient) -> None:
    created = await http.post(
        BASE, json={"url": "https://hooks.example/in", "event_types": ["*"]}, headers=ADMIN
    )
    other = bearer("globex")
    endpoint = created.json()["id"]
    assert (await http.get(f"{BASE}/{endpoint}", headers=other)).status_code == 404
    assert (await http.get(BASE, headers=other)).json()["items"] == []
    assert (await http.delete(f"{BASE}/{endpoint}", headers=other)).status_code == 404
    assert (await http.post(f"{BASE}/{endpoint}/test", headers=other)).status_code == 404


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://hooks.example/in", "https"),
        ("https://inside.example/in", "private"),
        ("https://169.254.169.254/", "link-local"),
        ("https://127.0.0.1/", "loopback"),
        ("not a url", "https"),
    ],
)
async def test_a_bad_url_is_a_422_problem_naming_the_url(
    http: httpx.AsyncClient, url: str, words: str
) -> None:
    r = await http.post(BASE, json={"url": url, "event_types": ["*"]}, headers=ADMIN)
    assert r.status_code == 422, r.text
    problem = r.json()
    assert problem["errors"][0]["field"] == "url"
    assert words in problem["detail"]


@pytest.mark.parametrize(
    "types",
    [
        [],
        ["nope.happened"],
        ["*", "xp.awarded"],
        ["xp.awarded", "xp.awarded"],
        ["user.deleted"],
        ["xp.awarded", "user.erased"],
        ["tenant.deleted"],
    ],
)
async def test_bad_event_types_are_a_422_problem(http: httpx.AsyncClient, types: list[str]) -> None:
    r = await http.post(
        BASE, json={"url": "https://hooks.example/in", "event_types": types}, headers=ADMIN
    )
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "event_types"


async def test_patch_delete_and_the_delivery_log(http: httpx.AsyncClient) -> None:
    created = (
        await http.post(
            BASE, json={"url": "https://hooks.example/in", "event_types": ["*"]}, headers=ADMIN
        )
    ).json()
    url = f"{BASE}/{created['id']}"
    patched = await http.patch(
        url, json={"enabled": False, "event_types": ["xp.awarded"]}, headers=ADMIN
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["enabled"] is False
    assert patched.json()["event_types"] == ["xp.awarded"]
    assert (
        await http.patch(url, json={"url": "https://127.0.0.1/"}, headers=ADMIN)
    ).status_code == 422
    ping = await http.post(f"{url}/test", headers=ADMIN)
    assert ping.status_code == 202, ping.text
    assert ping.json()["event_type"] == "webhook.test"
    log = await http.get(f"{url}/deliveries", params={"status": "pending"}, headers=ADMIN)
    assert [d["id"] for d in log.json()["items"]] == [ping.json()["id"]]
    assert (
        await http.get(f"{url}/deliveries", params={"status": "lost"}, headers=ADMIN)
    ).status_code == 422
    assert (
        await http.get(f"{url}/deliveries", params={"cursor": "abc"}, headers=ADMIN)
    ).status_code == 422
    retried = await http.post(f"{url}/deliveries/{ping.json()['id']}/retry", headers=ADMIN)
    assert retried.status_code == 202
    assert (await http.post(f"{url}/deliveries/nope/retry", headers=ADMIN)).status_code == 404
    assert (await http.delete(url, headers=ADMIN)).status_code == 204
    assert (await http.get(url, headers=ADMIN)).status_code == 404


async def test_lists_are_paged(http: httpx.AsyncClient) -> None:
    ids = []
    for n in range(3):
        r = await http.post(
            BASE, json={"url": f"https://hooks.example/{n}", "event_types": ["*"]}, headers=ADMIN
        )
        ids.append(r.json()["id"])
    first = (await http.get(BASE, params={"limit": 2}, headers=ADMIN)).json()
    second = (
        await http.get(BASE, params={"limit": 2, "cursor": first["next"]}, headers=ADMIN)
    ).json()
    # Same creation time (the test clock): oldest first falls back to id order.
    assert [e["id"] for e in first["items"] + second["items"]] == sorted(ids)
    assert second["next"] is None
