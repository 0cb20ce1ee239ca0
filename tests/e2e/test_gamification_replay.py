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
LONG_AGO = 120
"""Days of history of the user whose first events are far older than the kept window."""


def _summary(doc: dict[str, Any], boards: dict[str, int]) -> tuple[Any, ...]:
    return (
        *(doc.get(f) for f in FIELDS),
        sorted(b["code"] for b in doc.get("badges", [])),
        sorted(doc.get("levels_reached", [])),
        boards,
    )


async def _live_states(client: Any, database: str) -> dict[str, tuple[Any, ...]]:
    """Each user's progress, and their XP in every leaderboard window."""
    boards: dict[str, dict[str, int]] = {}
    async for row in client[database]["leaderboards"].find({}):
        owner = f"{row['tenant_id']}:{row['user_id']}"
        boards.setdefault(owner, {})[f"{row['period']}/{row['window']}"] = row["xp"]
    cursor = client[database]["user_state"].find({})
    return {d["_id"]: _summary(d, boards.get(d["_id"], {})) async for d in cursor}


async def _publish_old_history(stack: Any, tenant: str, user: str) -> None:
    """A grid made `LONG_AGO` days ago and a check-in of it on most days since (as goals and
    checkins published them then): far more history than the kept fold holds."""
    from aiokafka import AIOKafkaProducer

    from mandaact_contracts import topics
    from mandaact_contracts.envelope import (
        encode_value,
        new_envelope,
        partition_key,
        to_kafka_headers,
    )
    from mandaact_contracts.events import (
        ActionCompleted,
        ActionSnapshot,
        EventPayload,
        GoalChanged,
        MandalartSnapshot,
        ScheduleSnapshot,
        SubGoalSnapshot,
    )

    today = datetime.now(UTC).date()
    first = today - timedelta(days=LONG_AGO)
    made = datetime.combine(first, datetime.min.time(), UTC)
    actions = [
        ActionSnapshot(
            id=f"old-{i}",
            position=i,
            title=f"Old {i}",
            type="routine",
            schedule=ScheduleSnapshot(frequency="daily"),
            due_date=None,
            added_on=first,
        )
        for i in (1, 2)
    ]
    snapshot = MandalartSnapshot(
        id="old-grid",
        title="Old",
        description=None,
        active=True,
        version=1,
        created_at=made,
        updated_at=made,
        sub_goals=[SubGoalSnapshot(position=1, title="Sub", actions=actions)],
    )
    payloads: list[tuple[str, EventPayload]] = [
        (
            topics.GOAL_CHANGED,
            GoalChanged(tenant_id=tenant, user_id=user, mandalart=snapshot, timezone="UTC"),
        )
    ]
    for offset in range(LONG_AGO):
        day = first + timedelta(days=offset)
        for action in actions[: 1 if offset % 9 == 4 else 2]:  # a gap now and then
            if offset % 31 in (10, 11, 12, 13):
                continue  # and a few days off: streaks end, comebacks happen
            payloads.append(
                (
                    topics.ACTION_COMPLETED,
                    ActionCompleted(
                        tenant_id=tenant,
                        user_id=user,
                        checkin_id=str(uuid.uuid4()),
                        action_id=action.id,
                        mandalart_id="old-grid",
                        sub_goal_position=1,
                        sub_goal_title="Sub",
                        action_title=action.title,
                        action_type="routine",
                        local_date=day,
                        timezone="UTC",
                        occurred_at=datetime.combine(day, datetime.min.time(), UTC)
                        + timedelta(hours=8, minutes=action.position),
                        seq=1,
                    ),
                )
            )
    producer = AIOKafkaProducer(
        bootstrap_servers=stack.infra.bootstrap_servers, enable_idempotence=True, acks="all"
    )
    await producer.start()
    try:
        for topic, payload in payloads:
            envelope = new_envelope(topic, payload, "e2e-history")
            await producer.send_and_wait(
                topic,
                encode_value(envelope),
                key=partition_key(payload),
                headers=to_kafka_headers(envelope),
            )
    finally:
        await producer.stop()


async def test_replay_from_the_topics_equals_the_live_state(stack: Any) -> None:
    tenant = f"replay-{uuid.uuid4().hex[:6]}"
    headers = auth(tenant, "carol")
    await _publish_old_history(stack, tenant, "dave")
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
        # Wait until the live worker has this test's users and has settled: three identical
        # reads 2 s apart (longer than the relays' longest back-off, 5 s, which an earlier
        # test's database outage may have left them in).
        mine = {f"{tenant}:carol", f"{tenant}:dave"}
        previous: dict[str, Any] | None = None
        same = 0
        for _ in range(90):
            current = await _live_states(client, live_db)
            same = same + 1 if current == previous and mine <= set(current) else 0
            if same == 2:
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
        [dave] = [v for k, v in rebuilt.items() if k.endswith(":dave")]
        assert dave[0] > 10 * LONG_AGO  # months of check-ins counted, not just the kept window
        assert await client[replay_db]["outbox"].count_documents({}) == 0
    finally:
        await client.close()
