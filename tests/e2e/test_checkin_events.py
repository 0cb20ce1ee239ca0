"""Check two actions, undo one: exactly one event per change on Kafka, as CloudEvents."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from mandaact_contracts import topics
from tests.e2e.helpers import auth, create_grid_and_wait_for_checklist, grid

pytestmark = pytest.mark.e2e


async def _events_of(bootstrap: str, tenant: str, wanted: int, seconds: float = 30) -> list[Any]:
    consumer = AIOKafkaConsumer(
        topics.ACTION_COMPLETED,
        topics.ACTION_UNCOMPLETED,
        bootstrap_servers=bootstrap,
        group_id=f"e2e-reader-{uuid.uuid4().hex}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    mine: list[Any] = []
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                mine += [
                    r for r in records if dict(r.headers).get("ce_tenantid") == tenant.encode()
                ]
            if len(mine) >= wanted:
                # keep reading briefly: a duplicate would show up right behind
                deadline = min(deadline, time.monotonic() + 2)
    finally:
        await consumer.stop()
    return mine


async def test_checklist_check_two_undo_one_gives_one_event_per_change(stack: Any) -> None:
    tenant = f"events-{uuid.uuid4().hex[:6]}"
    headers = auth(tenant, "dana")
    async with httpx.AsyncClient(timeout=10) as http:
        actions = await create_grid_and_wait_for_checklist(http, stack, headers, grid(1, 3))
        base = f"{stack.url('checkins')}/v1/checkins"
        for action in actions[:2]:
            assert (await http.put(f"{base}/{action}", headers=headers)).status_code == 201
            assert (await http.put(f"{base}/{action}", headers=headers)).status_code == 200
        assert (await http.delete(f"{base}/{actions[1]}", headers=headers)).status_code == 204
        checklist = (
            await http.get(f"{stack.url('checkins')}/v1/checklist", headers=headers)
        ).json()
        assert checklist["due_count"] == 3
        assert checklist["done_count"] == 1
        assert checklist["perfect"] is False

    records = await _events_of(stack.infra.bootstrap_servers, tenant, 3)
    completed = [r for r in records if r.topic == topics.ACTION_COMPLETED]
    uncompleted = [r for r in records if r.topic == topics.ACTION_UNCOMPLETED]
    assert sorted(json.loads(r.value)["action_id"] for r in completed) == sorted(actions[:2])
    assert [json.loads(r.value)["action_id"] for r in uncompleted] == [actions[1]]
    for record in records:
        h = dict(record.headers)
        assert record.key == f"{tenant}:dana".encode()
        assert h["ce_specversion"] == b"1.0"
        assert h["ce_source"] == b"checkins"
        assert h["ce_type"] == f"mandaact.{record.topic}.v1".encode()
        assert h["ce_tenantid"] == tenant.encode()
        assert h["content-type"] == b"application/json"
        uuid.UUID(h["ce_id"].decode())
        assert h["ce_time"]
        assert h["traceparent"]
    assert len({dict(r.headers)["ce_id"] for r in records}) == 3
    undo = json.loads(uncompleted[0].value)
    assert undo["seq"] == 2
