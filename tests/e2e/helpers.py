"""Helpers shared by the end-to-end tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
import pytest

from mandaact_common.testing import auth_header

T = TypeVar("T")


auth = auth_header


async def eventually(
    probe: Callable[[], Awaitable[T]], ok: Callable[[T], bool], seconds: float = 30.0
) -> T:
    """Poll until `ok(value)`; fail with the last value seen."""
    deadline = time.monotonic() + seconds
    value = await probe()
    while not ok(value):
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {seconds}s; last value: {value!r}")
        await asyncio.sleep(0.2)
        value = await probe()
    return value


def grid(n_sub_goals: int = 1, n_actions: int = 2) -> dict[str, Any]:
    return {
        "title": "Design an event-driven system",
        "sub_goals": [
            {
                "position": s,
                "title": f"Sub-goal {s}",
                "actions": [
                    {
                        "position": a,
                        "title": f"Action {s}.{a}",
                        "type": "routine",
                        "schedule": {"frequency": "daily"},
                    }
                    for a in range(1, n_actions + 1)
                ],
            }
            for s in range(1, n_sub_goals + 1)
        ],
    }


async def create_grid_and_wait_for_checklist(
    http: httpx.AsyncClient, stack: Any, headers: dict[str, str], body: dict[str, Any]
) -> list[str]:
    created = await http.post(f"{stack.url('goals')}/v1/mandalarts", json=body, headers=headers)
    assert created.status_code == 201, created.text
    action_ids = [a["id"] for sg in created.json()["sub_goals"] for a in sg["actions"]]

    async def checklist() -> dict[str, Any]:
        r = await http.get(f"{stack.url('checkins')}/v1/checklist", headers=headers)
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    await eventually(checklist, lambda c: c["due_count"] == len(action_ids))
    return action_ids


async def progress_of(http: httpx.AsyncClient, stack: Any, headers: dict[str, str]) -> Any:
    r = await http.get(f"{stack.url('gamification')}/v1/me/progress", headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


async def wait_until_consumed(
    bootstrap: str, group: str, topics: list[str], seconds: float = 60
) -> None:
    """Wait until a consumer group has committed every record now on these topics."""
    from aiokafka import AIOKafkaConsumer
    from aiokafka.admin import AIOKafkaAdminClient

    from mandaact_common.kafka import partitions_of

    parts = await partitions_of(bootstrap, topics)
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await reader.start()
    try:
        ends = await reader.end_offsets(parts)
        starts = await reader.beginning_offsets(parts)
    finally:
        await reader.stop()
    # A partition with nothing to read needs no commit: a member that was only ever assigned
    # empty partitions gets no batch and commits nothing (the lag gauge counts it as 0 too).
    ends = {tp: end for tp, end in ends.items() if end > starts[tp]}
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:

        async def committed() -> dict[Any, int]:
            offsets = await admin.list_consumer_group_offsets(group)
            return {tp: meta.offset for tp, meta in offsets.items()}

        await eventually(
            committed, lambda got: all(got.get(tp, -1) >= end for tp, end in ends.items()), seconds
        )
    finally:
        await admin.close()
