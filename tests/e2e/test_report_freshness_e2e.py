"""Reports follow late events over the whole stack (SPEC §12): a report written before a
backfilled check-in of its week shows the new stats and `stale: true` at once, and is rewritten
with the check-in once the fold has been quiet for MANDAACT_REPORT_SETTLE_S."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from mandaact_common.domain.calendar import iso_week
from mandaact_contracts import topics
from tests.e2e.helpers import (
    auth,
    create_grid_and_wait_for_checklist,
    eventually,
    grid,
    wait_until_consumed,
)

pytestmark = pytest.mark.e2e

SETTLE_S = 2
"""Short, but long enough that the first read after the fold sees the report still stale."""


@pytest.fixture(scope="module")
def settling(stack: Any) -> Iterator[None]:
    """The reports worker and API with a short settle time and poll (the defaults afterwards)."""
    fast = {"MANDAACT_REPORT_SETTLE_S": str(SETTLE_S), "MANDAACT_REPORT_POLL": "0.5"}

    def restart(extra: dict[str, str]) -> None:
        stack.procs.pop("reports-worker").stop(timeout=20)
        stack.start("reports", "worker", extra)
        stack.procs.pop("reports-api").stop(timeout=20)
        stack.start("reports", "api", extra)

    restart(fast)
    try:
        yield
    finally:
        restart({})


async def test_a_backfilled_check_in_makes_the_report_stale_then_it_is_rewritten(
    stack: Any, settling: None
) -> None:
    headers = auth(f"fresh-{uuid.uuid4().hex[:6]}", "frida")
    today = datetime.now(UTC).astimezone(ZoneInfo("Asia/Seoul")).date()
    monday = today - timedelta(days=today.weekday() + 7)
    week = iso_week(monday)
    reports = f"{stack.url('reports')}/v1/reports/weekly/{week}"
    async with httpx.AsyncClient(timeout=30) as http:

        async def check_in(action: str, offset: int) -> None:
            r = await http.put(
                f"{stack.url('checkins')}/v1/checkins/{action}",
                params={"date": (monday + timedelta(days=offset)).isoformat()},
                headers=headers,
            )
            assert r.status_code == 201, r.text

        async def read() -> dict[str, Any]:
            r = await http.get(reports, headers=headers)
            assert r.status_code == 200, r.text
            body: dict[str, Any] = r.json()
            return body

        a1, a2 = await create_grid_and_wait_for_checklist(http, stack, headers, grid(1, 2))
        await check_in(a1, 0)
        await check_in(a2, 1)
        await wait_until_consumed(
            stack.infra.bootstrap_servers, "reports", [topics.ACTION_COMPLETED, topics.GOAL_CHANGED]
        )
        # The week is over, so the worker's scheduler (polling every 0.5 s here) may have
        # written the report already (200), from the first check-in alone and rewritten since.
        created = await http.post(f"{reports}/generate", headers=headers)
        assert created.status_code in (200, 201), created.text
        first = await eventually(
            read, lambda r: (r["stale"], r["stats"]["checkins_total"]) == (False, 2), seconds=30
        )
        assert "체크인 2회" in first["summary"]["headline"]

        await check_in(a1, 6)  # last Sunday, after the report was written
        stale = await eventually(read, lambda r: r["stats"]["checkins_total"] == 3, seconds=30)
        assert stale["stale"] is True
        assert stale["fold_version"] > first["fold_version"]
        assert stale["stats"]["checkins_by_weekday"]["sun"] == 1
        assert stale["summary"] == first["summary"]  # the old text until the rewrite

        fresh = await eventually(read, lambda r: r["stale"] is False, seconds=30)
    # The check-in's XP, streak and badge events fold into the week after its action.completed
    # (other topics), so the rewrite may come from a later fold than the first stale read saw.
    assert fresh["fold_version"] >= stale["fold_version"]
    assert fresh["stats"]["checkins_total"] == 3
    assert fresh["generator"] == "fallback"  # no OPENAI_API_KEY in the e2e stack
    assert "체크인 3회" in fresh["summary"]["headline"]  # the default locale, ko
    assert fresh["summary"] != first["summary"]
    assert datetime.fromisoformat(fresh["generated_at"]) > datetime.fromisoformat(
        first["generated_at"]
    )
