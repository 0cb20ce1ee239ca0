"""CORS of `create_app`: off in production unless origins are named; any loopback origin (the
ops console on whatever port) in local and test modes."""

from __future__ import annotations

import httpx
import pytest
from fastapi import APIRouter
from pydantic import SecretStr

from mandaact_common.http import create_app
from mandaact_common.settings import ServiceSettings

pytestmark = pytest.mark.unit


async def preflight(settings: ServiceSettings, origin: str) -> httpx.Response:
    app = create_app(settings, title="t", routers=[APIRouter()])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as http:
        return await http.options(
            "/healthz",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "PUT",
                "Access-Control-Request-Headers": "authorization",
            },
        )


@pytest.mark.parametrize("origin", ["http://127.0.0.1:8007", "http://localhost:51234"])
async def test_test_mode_lets_a_loopback_console_call(origin: str) -> None:
    answer = await preflight(ServiceSettings(env="test"), origin)
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == origin
    assert "authorization" in answer.headers["access-control-allow-headers"].lower()


async def test_test_mode_refuses_another_origin() -> None:
    answer = await preflight(ServiceSettings(env="test"), "https://evil.example")
    assert "access-control-allow-origin" not in answer.headers


async def test_production_allows_no_origin_unless_named() -> None:
    secret = SecretStr("s" * 40)
    closed = await preflight(
        ServiceSettings(env="production", jwt_secret=secret, erasure_key=secret),
        "http://127.0.0.1:8007",
    )
    assert "access-control-allow-origin" not in closed.headers
    named = ServiceSettings(
        env="production",
        jwt_secret=secret,
        erasure_key=secret,
        cors_origins="https://console.example.com",
    )
    opened = await preflight(named, "https://console.example.com")
    assert opened.headers["access-control-allow-origin"] == "https://console.example.com"
    other = await preflight(named, "http://127.0.0.1:8007")
    assert "access-control-allow-origin" not in other.headers
