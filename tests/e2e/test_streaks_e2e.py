"""Streaks people can keep (SPEC §6) over HTTP and Kafka: a day start, a pause, a missed day
that uses a freeze with no event since, and a tenant admin's streak repair."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from mandaact_contracts import topics
from tests.e2e.helpers import (
    auth,
    create_grid_and_wait_for_checklist,
    eventually,
    grid,
    progress_of,
    wait_until_consumed,
)

pytestmark = pytest.mark.e2e

SEOUL = ZoneInfo("Asia/Seoul")


def seoul_today(day_start: timedelta = timedelta(0)) -> date:
    return (datetime.now(UTC).astimezone(SEOUL).replace(tzinfo=None) - day_start).date()


async def check_in_seven_days_ending_the_day_before_yesterday(
    http: httpx.AsyncClient, stack: Any, headers: dict[str, str], action: str, today: date
) -> None:
    for back in range(8, 1, -1):
        r = await http.put(
            f"{stack.url('checkins')}/v1/checkins/{action}",
            params={"date": (today - timedelta(days=back)).isoformat()},
            headers=headers,
        )
        assert r.status_code == 201, r.text


async def test_day_start_pause_and_a_missed_day_show_in_progress(stack: Any) -> None:
    headers = auth(f"streak-{uuid.uuid4().hex[:6]}", "sam")
    async with httpx.AsyncClient(timeout=30) as http:
        me = await http.put(
            f"{stack.url('goals')}/v1/me", json={"day_starts_at": "04:00"}, headers=headers
        )
        assert me.status_code == 200, me.text
        assert me.json()["day_starts_at"] == "04:00"
        for group in ("checkins", "gamification"):
            await wait_until_consumed(stack.infra.bootstrap_servers, group, [topics.USER_CHANGED])
        today = seoul_today(timedelta(hours=4))
        yesterday = today - timedelta(days=1)
        [action] = await create_grid_and_wait_for_checklist(http, stack, headers, grid(1, 1))
        checklist = await http.get(f"{stack.url('checkins')}/v1/checklist", headers=headers)
        assert checklist.json()["date"] == today.isoformat()  # the user's day, 04:00 to 04:00

        await check_in_seven_days_ending_the_day_before_yesterday(
            http, stack, headers, action, today
        )
        # Yesterday ended without a check-in: its freeze is used, though no event came since.
        frozen = await eventually(
            lambda: progress_of(http, stack, headers),
            lambda p: p["streak"]["frozen_dates"] == [yesterday.isoformat()],
        )
        assert (frozen["streak"]["current"], frozen["streak"]["freezes"]) == (7, 0)

        paused = await http.put(
            f"{stack.url('goals')}/v1/me/pauses",
            json={"items": [{"from": yesterday.isoformat(), "to": yesterday.isoformat()}]},
            headers=headers,
        )
        assert paused.status_code == 200, paused.text

        async def yesterdays_checklist() -> Any:
            r = await http.get(
                f"{stack.url('checkins')}/v1/checklist",
                params={"date": yesterday.isoformat()},
                headers=headers,
            )
            return r.json()

        day = await eventually(yesterdays_checklist, lambda c: c["paused"])
        assert day["due_count"] == 0
        now = await http.get(f"{stack.url('checkins')}/v1/checklist", headers=headers)
        assert (now.json()["paused"], now.json()["due_count"]) == (False, 1)
        # A paused date keeps the streak without a freeze: the freeze is back.
        kept = await eventually(
            lambda: progress_of(http, stack, headers), lambda p: p["streak"]["freezes"] == 1
        )
        assert (kept["streak"]["current"], kept["streak"]["frozen_dates"]) == (7, [])


async def test_an_admin_repairs_the_tenants_streaks_and_others_get_403(stack: Any) -> None:
    tenant = f"repair-{uuid.uuid4().hex[:6]}"
    headers = auth(tenant, "ron")
    admin = auth(tenant, "root", roles=["admin"])
    today = seoul_today()
    yesterday = today - timedelta(days=1)
    repairs = f"{stack.url('gamification')}/v1/admin/streak-repairs"
    async with httpx.AsyncClient(timeout=30) as http:
        [action] = await create_grid_and_wait_for_checklist(http, stack, headers, grid(1, 1))
        await check_in_seven_days_ending_the_day_before_yesterday(
            http, stack, headers, action, today
        )
        await eventually(
            lambda: progress_of(http, stack, headers),
            lambda p: p["streak"]["frozen_dates"] == [yesterday.isoformat()],
        )

        body = {"from": yesterday.isoformat(), "to": yesterday.isoformat(), "reason": "outage"}
        refused = await http.post(repairs, json=body, headers=headers)
        assert refused.status_code == 403
        assert refused.headers["content-type"] == "application/problem+json"
        created = await http.post(repairs, json=body, headers=admin)
        assert created.status_code == 201, created.text
        again = await http.post(repairs, json=body, headers=admin)
        assert again.json()["id"] == created.json()["id"]
        listed = await http.get(repairs, headers=admin)
        assert [r["id"] for r in listed.json()["items"]] == [created.json()["id"]]

        repaired = await eventually(
            lambda: progress_of(http, stack, headers), lambda p: p["streak"]["freezes"] == 1
        )
        assert (repaired["streak"]["current"], repaired["streak"]["frozen_dates"]) == (7, [])
