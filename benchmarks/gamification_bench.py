"""Gamification consumer throughput from a backlog, next to the raw aiokafka consume rate.

A backlog of check-ins (interleaved across users, as a day of traffic is) is produced to
`action.completed`; then, in the same run:
- baseline: a plain aiokafka consumer reads the whole topic (no processing);
- system: the real `mandaact-gamification-worker` process drains the same backlog (batches of
  500, one transaction per batch, bulk writes) until every event is recorded as processed.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from gamification.domain.model import CheckinChange, derive
from mandaact_common.domain.schedule import Action, Schedule
from mandaact_common.kafka import partitions_of
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

USERS = int(os.environ.get("BENCH_USERS", "2000"))
ACTIONS = 5
DAYS = int(os.environ.get("BENCH_DAYS", "5"))  # USERS × ACTIONS × DAYS check-ins (50,000)
START = date(2026, 11, 2)


def _grid(tenant: str, user: str) -> GoalChanged:
    now = datetime(2026, 11, 1, tzinfo=UTC)
    actions = [
        ActionSnapshot(
            id=f"{user}-a{i}",
            position=i,
            title=f"Action {i}",
            type="routine",
            schedule=ScheduleSnapshot(frequency="daily"),
            due_date=None,
            added_on=START,
        )
        for i in range(1, ACTIONS + 1)
    ]
    snapshot = MandalartSnapshot(
        id=f"{user}-grid",
        title="Bench",
        description=None,
        active=True,
        version=1,
        created_at=now,
        updated_at=now,
        sub_goals=[SubGoalSnapshot(position=1, title="Sub", actions=actions)],
    )
    return GoalChanged(tenant_id=tenant, user_id=user, mandalart=snapshot, timezone="Asia/Seoul")


def _checkin(tenant: str, user: str, action: int, day: date) -> ActionCompleted:
    return ActionCompleted(
        tenant_id=tenant,
        user_id=user,
        checkin_id=str(uuid.uuid4()),
        action_id=f"{user}-a{action}",
        mandalart_id=f"{user}-grid",
        sub_goal_position=1,
        sub_goal_title="Sub",
        action_title=f"Action {action}",
        action_type="routine",
        local_date=day,
        timezone="Asia/Seoul",
        occurred_at=datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=action),
        seq=1,
    )


async def _produce(bootstrap: str, tenant: str) -> tuple[int, int]:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, enable_idempotence=True, acks="all", linger_ms=20
    )
    await producer.start()
    grids = checkins = 0
    try:

        async def send(topic: str, payload: EventPayload) -> Any:
            env = new_envelope(topic, payload, "bench")
            return await producer.send(
                topic,
                encode_value(env),
                key=partition_key(payload),
                headers=to_kafka_headers(env),
            )

        pending = [await send(topics.GOAL_CHANGED, _grid(tenant, f"u{u}")) for u in range(USERS)]
        grids = len(pending)
        for d in range(DAYS):
            for action in range(1, ACTIONS + 1):
                for u in range(USERS):
                    day = START + timedelta(days=d)
                    pending.append(
                        await send(topics.ACTION_COMPLETED, _checkin(tenant, f"u{u}", action, day))
                    )
                    checkins += 1
                    if len(pending) >= 5000:
                        await asyncio.gather(*pending)
                        pending = []
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return grids, checkins


async def _raw_consume_rate(bootstrap: str, expected: int) -> float:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        group_id=None,
        max_poll_records=500,
    )
    await consumer.start()
    try:
        parts = await partitions_of(bootstrap, [topics.ACTION_COMPLETED])
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        seen = 0
        started = time.perf_counter()
        while seen < expected:
            for records in (await consumer.getmany(timeout_ms=1000, max_records=500)).values():
                seen += len(records)
        return seen / (time.perf_counter() - started)
    finally:
        await consumer.stop()


async def _committed(admin: AIOKafkaAdminClient, group: str) -> dict[Any, int]:
    offsets = await admin.list_consumer_group_offsets(group)
    return {tp: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}


async def _worker_rate(infra: Any, database: str) -> dict[str, float]:
    """Run the real worker; done when its group's committed offsets reach the topics' ends.

    Progress is read from Kafka (committed offsets), not by counting documents, so measuring
    puts no load on the database the worker is writing to.
    """
    from mandaact_devstack import start_service

    run_dir = Path(tempfile.mkdtemp(prefix="bench-worker-"))
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": infra.bootstrap_servers,
        "MONGODB_URL": infra.mongodb_url,
        "MANDAACT_MONGODB_DATABASE": database,
        "MANDAACT_ENV": "test",
    }
    partitions = await partitions_of(
        infra.bootstrap_servers, [topics.GOAL_CHANGED, topics.ACTION_COMPLETED]
    )
    reader = AIOKafkaConsumer(bootstrap_servers=infra.bootstrap_servers, group_id=None)
    await reader.start()
    ends = await reader.end_offsets(partitions)
    await reader.stop()
    expected = sum(ends.values())
    admin = AIOKafkaAdminClient(bootstrap_servers=infra.bootstrap_servers)
    await admin.start()
    started = time.perf_counter()
    proc = start_service("gamification", "worker", env, run_dir=run_dir, die_with_parent=True)
    first_at: float | None = None
    try:
        done = 0
        while done < expected:
            await asyncio.sleep(0.5)
            committed = await _committed(admin, "gamification")
            done = sum(committed.get(tp, 0) for tp in partitions)
            if done and first_at is None:
                first_at = time.perf_counter()
            if not proc.alive():
                raise RuntimeError(f"worker died:\n{proc.log_tail()}")
            if time.perf_counter() - started > 1500:
                raise RuntimeError(f"worker committed only {done} of {expected} in 25 min")
        finished = time.perf_counter()
    finally:
        proc.stop()
        await admin.close()
    return {
        "events": expected,
        "events_per_s_from_start": round(expected / (finished - started), 1),
        "events_per_s_after_first_commit": round(
            expected / max(finished - (first_at or started), 1e-9), 1
        ),
        "wall_seconds": round(finished - started, 1),
    }


def _derive_timing() -> dict[str, float]:
    """The pure fold alone: one user with 5,000 changes on a 40-action grid."""
    actions = [Action(f"d{i}", "routine", Schedule.daily(), START) for i in range(40)]
    changes: list[CheckinChange] = []
    day = START
    while len(changes) < 5000:
        for a in actions:
            moment = datetime.combine(day, datetime.min.time(), UTC) + timedelta(
                minutes=len(changes)
            )
            changes.append(CheckinChange(f"e{len(changes)}", a.id, day, 1, True, moment))
        day += timedelta(days=1)
    started = time.perf_counter()
    derive(changes, actions, True)
    return {"derive_5000_changes_ms": round((time.perf_counter() - started) * 1000, 1)}


async def run(infra: Any) -> dict[str, Any]:
    """Produce the backlog, measure the raw consume rate and the worker's, print both."""
    tenant = f"bench-{uuid.uuid4().hex[:6]}"
    grids, checkins = await _produce(infra.bootstrap_servers, tenant)
    raw = await _raw_consume_rate(infra.bootstrap_servers, checkins)
    worker = await _worker_rate(infra, f"bench_gamification_{tenant[-6:]}")
    result = {
        "backlog_checkins": checkins,
        "backlog_grids": grids,
        "users": USERS,
        "raw_aiokafka_consume_events_per_s": round(raw, 1),
        "gamification_worker": worker,
        **_derive_timing(),
    }
    print(
        f"gamification: {worker['events_per_s_after_first_commit']:.0f} events/s "
        f"(raw aiokafka consume of the same topic: {raw:.0f} events/s) "
        f"over {checkins} check-ins + {grids} grids"
    )
    return result
