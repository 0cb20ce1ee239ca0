"""A check-in turns into XP through real Kafka: goals → checkins → gamification, over HTTP."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from mandaact_contracts import topics
from tests.e2e.helpers import (
    auth,
    create_grid_and_wait_for_checklist,
    eventually,
    grid,
    progress_of,
)

pytestmark = pytest.mark.e2e


async def test_a_check_in_shows_xp_in_progress(stack: Any) -> None:
    headers = auth(f"acme-{uuid.uuid4().hex[:6]}", "alice")
    async with httpx.AsyncClient(timeout=10) as http:
        action_ids = await create_grid_and_wait_for_checklist(http, stack, headers, grid())
        r = await http.put(f"{stack.url('checkins')}/v1/checkins/{action_ids[0]}", headers=headers)
        assert r.status_code == 201, r.text
        again = await http.put(
            f"{stack.url('checkins')}/v1/checkins/{action_ids[0]}", headers=headers
        )
        assert again.status_code == 200

        async def checkin_entries() -> list[Any]:
            r = await http.get(f"{stack.url('gamification')}/v1/me/xp-ledger", headers=headers)
            assert r.status_code == 200, r.text
            return [e for e in r.json()["items"] if e["reason"] == "checkin"]

        entries = await eventually(checkin_entries, lambda e: len(e) > 0, 20)
        seoul_today = datetime.now(UTC).astimezone(ZoneInfo("Asia/Seoul")).date()
        base = 15 if seoul_today.weekday() >= 5 else 10  # weekend multiplier 1.5
        assert [(e["action_id"], e["amount"]) for e in entries] == [(action_ids[0], base)]
        progress = await progress_of(http, stack, headers)
        assert progress["xp_total"] >= base
        assert progress["level"] == 1
        assert progress["streak"]["current"] == 1


async def test_malformed_message_is_dead_lettered_and_the_consumer_goes_on(stack: Any) -> None:
    bootstrap = stack.infra.bootstrap_servers
    marker = uuid.uuid4().hex.encode()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(
            topics.ACTION_COMPLETED, b"not json " + marker, key=b"evil:mallory"
        )
    finally:
        await producer.stop()
    dead = AIOKafkaConsumer(
        topics.dead_letter_topic("gamification"),
        bootstrap_servers=bootstrap,
        group_id=f"dlt-reader-{uuid.uuid4().hex}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await dead.start()
    found: Any = None
    try:
        deadline = time.monotonic() + 30
        while found is None and time.monotonic() < deadline:
            for records in (await dead.getmany(timeout_ms=500)).values():
                found = next((r for r in records if marker in (r.value or b"")), found)
    finally:
        await dead.stop()
    assert found is not None, "the malformed message never reached gamification.dlt"
    headers = dict(found.headers)
    assert headers["dlt_original_topic"] == topics.ACTION_COMPLETED.encode()
    assert headers["dlt_error_type"] == b"InvalidEvent"
    assert headers["dlt_error_message"]
    # ...and the consumer moved on: a later check-in still turns into XP.
    headers_ok = auth(f"acme-{uuid.uuid4().hex[:6]}", "bob")
    async with httpx.AsyncClient(timeout=10) as http:
        action_ids = await create_grid_and_wait_for_checklist(http, stack, headers_ok, grid())
        r = await http.put(
            f"{stack.url('checkins')}/v1/checkins/{action_ids[1]}", headers=headers_ok
        )
        assert r.status_code == 201
        await eventually(
            lambda: progress_of(http, stack, headers_ok), lambda p: p["xp_total"] >= 10, 20
        )


async def test_sigkill_of_the_gamification_worker_loses_and_doubles_nothing(stack: Any) -> None:
    """Check-ins keep flowing while the worker is SIGKILLed; after restart each has one entry."""
    tenant = f"kill-{uuid.uuid4().hex[:6]}"
    users = [f"user{i}" for i in range(6)]
    per_user = {u: auth(tenant, u) for u in users}
    async with httpx.AsyncClient(timeout=30) as http:
        actions = {
            u: await create_grid_and_wait_for_checklist(http, stack, h, grid(4, 8))
            for u, h in per_user.items()
        }
        today = datetime.now(UTC).astimezone(ZoneInfo("Asia/Seoul")).date()
        dates = [today, today - timedelta(days=1)]
        # Users take turns, as real ones would: one user's 64 changes back to back would pass
        # the per-user limit (a burst of 40, then 20 a second) and be refused with 429.
        count = len(actions[users[0]])
        jobs = [(u, actions[u][k], d) for k in range(count) for d in dates for u in users]

        async def check_in(user: str, action: str, day: Any) -> None:
            r = await http.put(
                f"{stack.url('checkins')}/v1/checkins/{action}",
                params={"date": day.isoformat()},
                headers=per_user[user],
            )
            assert r.status_code == 201, r.text

        async def flow() -> None:
            sem = asyncio.Semaphore(8)

            async def one(job: tuple[str, str, Any]) -> None:
                async with sem:
                    await check_in(*job)

            await asyncio.gather(*(one(j) for j in jobs))

        flowing = asyncio.create_task(flow())

        async def entries_so_far() -> int:
            total = 0
            for h in per_user.values():
                p = await progress_of(http, stack, h)
                total += p["xp_total"]
            return total

        # Kill once XP has started to flow, i.e. in the middle of the stream.
        await eventually(entries_so_far, lambda xp: xp > 0, 60)
        stack.kill("gamification", "worker")
        await asyncio.sleep(1.0)
        stack.start("gamification", "worker")
        await flowing

        async def checkin_entries() -> dict[str, Counter[tuple[str, str]]]:
            out: dict[str, Counter[tuple[str, str]]] = {}
            for user, h in per_user.items():
                items: list[dict[str, Any]] = []
                before: int | None = None
                while True:
                    params: dict[str, Any] = {"limit": 200}
                    if before is not None:
                        params["before"] = before
                    page = await http.get(
                        f"{stack.url('gamification')}/v1/me/xp-ledger",
                        params=params,
                        headers=h,
                    )
                    body = page.json()
                    items += body["items"]
                    before = body["next_before"]
                    if before is None:
                        break
                out[user] = Counter(
                    (e["action_id"], e["local_date"]) for e in items if e["reason"] == "checkin"
                )
            return out

        expected = {u: {(a, d.isoformat()) for a in actions[u] for d in dates} for u in users}
        final = await eventually(
            checkin_entries,
            lambda got: all(set(got[u]) == expected[u] for u in users),
            90,
        )
        for user in users:
            assert set(final[user]) == expected[user], f"{user}: a check-in lost its XP"
            doubled = {k: n for k, n in final[user].items() if n != 1}
            assert not doubled, f"{user}: check-ins with more than one ledger entry: {doubled}"
