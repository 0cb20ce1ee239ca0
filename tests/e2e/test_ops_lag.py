"""Consumer lag is visible in ops: a stopped worker's group lags, a started one catches up."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from ops.domain.model import metric_value
from tests.e2e.helpers import auth, create_grid_and_wait_for_checklist, eventually, grid

pytestmark = pytest.mark.e2e

OPERATOR = auth("platform", "ops-e2e", roles=["operator"])


def group_lag(overview: dict[str, Any], group: str) -> int:
    (found,) = [g for g in overview["groups"] if g["group"] == group]
    lag: int = found["lag"]
    return lag


async def test_a_stopped_workers_lag_shows_in_the_overview_and_goes_to_zero_once_it_runs(
    stack: Any, ops: str
) -> None:
    headers = auth(f"lag-{uuid.uuid4().hex[:6]}", "lou")
    async with httpx.AsyncClient(timeout=30) as http:

        async def overview() -> dict[str, Any]:
            r = await http.get(f"{ops}/v1/ops/overview", headers=OPERATOR)
            assert r.status_code == 200, r.text
            body: dict[str, Any] = r.json()
            return body

        action_ids = await create_grid_and_wait_for_checklist(http, stack, headers, grid(1, 3))
        await eventually(overview, lambda o: group_lag(o, "gamification") == 0, 60)
        first = await overview()
        assert {s["service"] for s in first["services"] if s["ready"]} >= {"goals", "checkins"}

        stack.procs.pop("gamification-worker").stop(timeout=20)
        try:
            for action_id in action_ids:
                r = await http.put(
                    f"{stack.url('checkins')}/v1/checkins/{action_id}", headers=headers
                )
                assert r.status_code == 201, r.text
            lagging = await eventually(
                overview, lambda o: group_lag(o, "gamification") >= len(action_ids), 30
            )
            behind = [
                p
                for g in lagging["groups"]
                if g["group"] == "gamification"
                for p in g["partitions"]
                if p["lag"] > 0
            ]
            assert {p["topic"] for p in behind} == {"action.completed"}

            async def exported() -> float:
                text = (await http.get(f"{ops}/metrics")).text
                return (
                    metric_value(
                        "\n".join(
                            line for line in text.splitlines() if 'group="gamification"' in line
                        ),
                        "mandaact_consumer_lag",
                    )
                    or 0.0
                )

            # ops exports every group's lag too (`mandaact_consumer_lag`, refreshed every 10 s).
            await eventually(exported, lambda lag: lag >= len(action_ids), 40)
        finally:
            stack.start("gamification", "worker")
        await eventually(overview, lambda o: group_lag(o, "gamification") == 0, 90)
