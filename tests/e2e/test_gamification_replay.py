"""Replaying the topics into an empty database rebuilds exactly the live gamification state."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from mandaact_common.mongo import make_client
from tests.e2e.helpers import auth, create_grid_and_wait_for_checklist, grid

pytestmark = pytest.mark.e2e

FIELDS = ("xp_total", "level", "streak_current", "streak_longest", "perfect_days")


def _summary(doc: dict[str, Any]) -> tuple[Any, ...]:
    return (
        *(doc.get(f) for f in FIELDS),
        sorted(b["code"] for b in doc.get("badges", [])),
        doc.get("xp_by_week"),
    )


async def _live_states(client: Any, database: str) -> dict[str, tuple[Any, ...]]:
    cursor = client[database]["user_state"].find({})
    return {d["_id"]: _summary(d) async for d in cursor}


async def test_replay_from_the_topics_equals_the_live_state(stack: Any) -> None:
    headers = auth(f"replay-{uuid.uuid4().hex[:6]}", "carol")
    async with httpx.AsyncClient(timeout=10) as http:
        actions = await create_grid_and_wait_for_checklist(http, stack, headers, grid(2, 3))
        today = datetime.now(UTC).astimezone(ZoneInfo("Asia/Seoul")).date()
        for action in actions:
            for day in (today, today - timedelta(days=1)):
                r = await http.put(
                    f"{stack.url('checkins')}/v1/checkins/{action}",
                    params={"date": day.isoformat()},
                    headers=headers,
                )
                assert r.status_code == 201
        undo = await http.delete(
            f"{stack.url('checkins')}/v1/checkins/{actions[0]}", headers=headers
        )
        assert undo.status_code == 204

    live_db = f"{stack.env['MANDAACT_DB_PREFIX']}_gamification"
    client = make_client(stack.infra.mongodb_url)
    try:
        # Wait until the live worker has settled (two identical reads 2 s apart).
        previous: dict[str, Any] | None = None
        for _ in range(60):
            current = await _live_states(client, live_db)
            if current and current == previous:
                break
            previous = current
            await asyncio.sleep(2)
        replay_db = f"{live_db}_replay_{uuid.uuid4().hex[:6]}"
        env = {**os.environ, **stack.env}
        done = await asyncio.to_thread(
            subprocess.run,
            [
                str(Path(sys.executable).parent / "mandaact-gamification-replay"),
                "--database",
                replay_db,
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        live = await _live_states(client, live_db)
        rebuilt = await _live_states(client, replay_db)
        assert rebuilt == live
        assert any(k.endswith(":carol") for k in rebuilt)
        assert await client[replay_db]["outbox"].count_documents({}) == 0
    finally:
        await client.close()
