"""What operators and other teams read: health, readiness, metrics, OpenAPI and AsyncAPI."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from mandaact_contracts import topics

pytestmark = pytest.mark.e2e

PUBLISHES = {
    "goals": {topics.USER_CHANGED, topics.GOAL_CHANGED},
    "checkins": {topics.ACTION_COMPLETED, topics.ACTION_UNCOMPLETED},
    "gamification": {topics.XP_AWARDED, topics.XP_REVOKED, topics.BADGE_UNLOCKED},
    "reports": {topics.REPORT_GENERATED},
}


@pytest.mark.parametrize("service", sorted(PUBLISHES))
async def test_each_service_serves_its_ops_endpoints(stack: Any, service: str) -> None:
    async with httpx.AsyncClient(base_url=stack.url(service), timeout=10) as http:
        assert (await http.get("/healthz")).json() == {"status": "ok"}
        ready = await http.get("/readyz")
        assert ready.status_code == 200
        assert ready.json() == {"status": "ready", "mongodb": True, "kafka": True}
        metrics = await http.get("/metrics")
        assert "mandaact_http_requests_total" in metrics.text
        assert (await http.get("/docs")).status_code == 200
        openapi = (await http.get("/openapi.json")).json()
        assert any(path.startswith("/v1/") for path in openapi["paths"])
        asyncapi = (await http.get("/asyncapi.json")).json()
    assert asyncapi["asyncapi"].startswith("3.")
    described = json.dumps(asyncapi["channels"])
    for topic in PUBLISHES[service]:
        assert topic in described, f"{service} AsyncAPI does not describe {topic}"
