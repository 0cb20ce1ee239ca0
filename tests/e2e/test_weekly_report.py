"""Check-ins spread over last week (backfill) → the weekly report's fold matches them exactly."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from mandaact_common.domain.calendar import iso_week
from mandaact_contracts import topics
from tests.e2e.helpers import auth, create_grid_and_wait_for_checklist, grid, wait_until_consumed

pytestmark = pytest.mark.e2e

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


async def test_last_weeks_check_ins_fold_into_the_report(stack: Any) -> None:
    headers = auth(f"report-{uuid.uuid4().hex[:6]}", "erin")
    today = datetime.now(UTC).astimezone(ZoneInfo("Asia/Seoul")).date()
    monday = today - timedelta(days=today.weekday() + 7)
    week = iso_week(monday)
    async with httpx.AsyncClient(timeout=30) as http:
        ids = await create_grid_and_wait_for_checklist(http, stack, headers, grid(2, 2))
        a11, a12, a21, a22 = ids
        plan = {0: [a11, a12], 2: [a21], 4: [a11, a21, a22], 6: [a12]}
        for offset, actions in plan.items():
            for action in actions:
                r = await http.put(
                    f"{stack.url('checkins')}/v1/checkins/{action}",
                    params={"date": (monday + timedelta(days=offset)).isoformat()},
                    headers=headers,
                )
                assert r.status_code == 201, r.text
        await wait_until_consumed(
            stack.infra.bootstrap_servers, "reports", [topics.ACTION_COMPLETED, topics.GOAL_CHANGED]
        )
        created = await http.post(
            f"{stack.url('reports')}/v1/reports/weekly/{week}/generate", headers=headers
        )
        # 201 when this request writes it, 200 when the worker's scheduler (which catches up on
        # finished weeks every MANDAACT_REPORT_POLL) wrote it a moment before.
        assert created.status_code in (200, 201), created.text
        again = await http.post(
            f"{stack.url('reports')}/v1/reports/weekly/{week}/generate", headers=headers
        )
        assert again.status_code == 200
        report = (
            await http.get(f"{stack.url('reports')}/v1/reports/weekly/{week}", headers=headers)
        ).json()
    stats = report["stats"]
    assert report["week"] == week
    assert report["generator"] == "fallback"  # no OPENAI_API_KEY in the e2e stack
    assert stats["days_active"] == 4
    assert stats["checkins_total"] == 7
    expected_by_day = {day: len(plan.get(i, [])) for i, day in enumerate(WEEKDAYS)}
    assert stats["checkins_by_weekday"] == expected_by_day
    assert stats["routine_checkins"] == 7
    assert stats["mission_checkins"] == 0
    assert stats["best_day"] == "fri"
    # The grid was written today, so nothing was due last week; each sub-goal still shows the
    # check-ins backfilled onto it.
    assert [(s["title"], s["due"], s["done"], s["rate"]) for s in stats["by_sub_goal"]] == [
        ("Sub-goal 1", 0, 4, None),
        ("Sub-goal 2", 0, 3, None),
    ]
    assert set(report["summary"]) >= {
        "headline",
        "key_metrics",
        "strengths",
        "improvements",
        "action_plan",
    }
