"""`run_every`: a background job's loop drains a backlog at once, waits when idle, survives a
failed pass and ends when told to."""

from __future__ import annotations

import asyncio

import pytest

from mandaact_common.worker import run_every

pytestmark = pytest.mark.unit


async def test_a_backlog_drains_without_waiting_and_a_failure_is_tried_again() -> None:
    stop = asyncio.Event()
    results: list[int | Exception] = [3, 2, RuntimeError("database away"), 1, 0]
    calls = 0

    async def step() -> int:
        nonlocal calls
        calls += 1
        value = results[calls - 1] if calls <= len(results) else 0
        if calls >= 5:
            stop.set()
        if isinstance(value, Exception):
            raise value
        return value

    await asyncio.wait_for(run_every(step, 0.01, stop, "test job"), timeout=5)
    assert calls == 5  # 3 and 2 at once, the failure, then 1 at once, then idle: stop


async def test_an_idle_job_waits_its_period_and_stops_when_told() -> None:
    stop = asyncio.Event()
    calls = 0

    async def step() -> int:
        nonlocal calls
        calls += 1
        return 0

    job = asyncio.create_task(run_every(step, 60, stop, "idle job"))
    await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(job, timeout=1)
    assert calls == 1
