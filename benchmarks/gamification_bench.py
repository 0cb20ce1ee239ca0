"""Gamification: cost per event against history, state size, backlog drain, leaderboards.

Every figure is printed next to a baseline measured in the same run (see docs/benchmarks.md):

1. per event: one more check-in of users with 1 week, 1 year and 3 years of a full 64-action
   daily grid, processed alone through the real idempotent consumer and batch handler; baseline:
   the 1-week user. Each user has a database of their own, so the history is the only variable.
   The history is built through the same consumer and handler, 500 events per transaction;
2. state size: the largest BSON document stored for the 3-year user, in any collection; baseline:
   64 KiB. The `user_state` document of each user is printed as well;
3. backlog drain: 50,000 check-ins + 2,000 grids of 2,000 users drained by the real
   `mandaact-gamification-worker` process; baselines: a minimal script doing the database work of
   each 500-event batch in one transaction over the same events, and a raw aiokafka consume;
4. leaderboards: `GamificationService.leaderboard` (limit 20, caller in the middle) for a tenant
   of 100,000 users; baseline: a tenant of 1,000 users in the same collections, the calls
   alternating between the two (the 1k tenant is also timed alone before the big one is seeded).
   The reads of one call are captured and explained (`reads_of_one_call`).
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import bson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from bson import Binary
from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, ReplaceOne, WriteConcern, monitoring
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.read_concern import ReadConcern

from gamification.bootstrap import mongo_handler, mongo_unit_of_work
from gamification.domain.levels import level_for_xp
from gamification.domain.model import CheckinChange, derive
from gamification.domain.progress import PERIODS, BoardDelta, Period, UserProgress, window_of
from gamification.domain.user_fold import UserFold
from gamification.service import GamificationService
from gamification.store.mongo import (
    LEDGER,
    USER_STATE,
    MongoGamificationStore,
    ensure_indexes,
    progress_doc,
)
from mandaact_common.consumer import PROCESSED, IdempotentConsumer, Record
from mandaact_common.domain.owner import Owner
from mandaact_common.domain.schedule import Action, Schedule
from mandaact_common.kafka import partitions_of
from mandaact_common.mongo import Doc, find_in
from mandaact_common.testing import SettableClock, record_of
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


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, str(default)))


def _env_ints(name: str, default: str) -> list[int]:
    return [int(v) for v in os.environ.get(name, default).split(",") if v.strip()]


# -- knobs (defaults are the figures of docs/benchmarks.md) --
PARTS = os.environ.get("BENCH_PARTS", "per_event,leaderboard,drain").split(",")
HISTORY_DAYS = _env_ints("BENCH_HISTORY_DAYS", "7,365,1095")
REPEATS = _env_int("BENCH_REPEATS", 15)
BOARD_SIZES = _env_ints("BENCH_BOARD_USERS", "1000,100000")
BOARD_CALLS = _env_int("BENCH_BOARD_CALLS", 10)
BOARD_BUDGET_S = float(os.environ.get("BENCH_BOARD_BUDGET_S", "45"))  # per period and tenant
USERS = _env_int("BENCH_USERS", 2000)
ACTIONS = 5
DAYS = _env_int("BENCH_DAYS", 5)  # USERS × ACTIONS × DAYS check-ins (50,000)
DRAIN_MAX_S = float(os.environ.get("BENCH_DRAIN_MAX_S", "1500"))

START = date(2026, 11, 2)
BATCH = 500
TZ = "Asia/Seoul"
END = date(2026, 11, 2)  # a Monday: every history ends the day before; measured check-ins follow
GRID_SIDE = 8  # 8 sub-goals × 8 daily routines = 64 actions
MAX_DOC_TARGET = 64 * 1024
BOARD_TODAY = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)  # noon in Seoul, a Wednesday
GROUP = "gamification"


class _RaiseSink:
    """No event may be dead-lettered in a benchmark: that would be a bug, not a figure."""

    async def send(self, record: Record, error: BaseException, attempts: int) -> None:
        raise RuntimeError(f"dead-lettered {record.topic}: {error!r}")


def _say(text: str) -> None:
    print(f"[gamification] {text}", flush=True)


def _label_days(days: int) -> str:
    return {7: "1w", 365: "1y", 1095: "3y"}.get(days, f"{days}d")


def _label_users(n: int) -> str:
    return f"{n // 1000}k" if n % 1000 == 0 else str(n)


def _median_ms(samples: Sequence[float]) -> float:
    return round(statistics.median(samples) * 1000, 1)


# --- command timings (what the database spends on one event) ----------------------------------


_SESSION_FIELDS = {
    "lsid",
    "txnNumber",
    "autocommit",
    "startTransaction",
    "readConcern",
    "writeConcern",
}


class CommandTimes(monitoring.CommandListener):
    """Server round-trip time per command and collection while `recording` is set; with
    `capture`, the commands themselves too (to explain the reads a use case sent)."""

    def __init__(self) -> None:
        self.recording = False
        self.capture = False
        self.totals: dict[str, float] = defaultdict(float)
        self.captured: list[tuple[str, Doc, float]] = []
        self._started: dict[int, tuple[str, Doc | None]] = {}

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if self.recording:
            target = event.command.get(event.command_name)
            name = f"{event.command_name}:{target}" if isinstance(target, str) else ""
            command = None
            if self.capture and event.command_name in ("find", "aggregate", "count"):
                command = {
                    k: v
                    for k, v in event.command.items()
                    if not k.startswith("$") and k not in _SESSION_FIELDS
                }
            self._started[event.request_id] = (name or event.command_name, command)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        label, command = self._started.pop(event.request_id, ("", None))
        if label:
            self.totals[label] += event.duration_micros / 1e6
            if command is not None:
                self.captured.append((label, command, event.duration_micros / 1e6))

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        self._started.pop(event.request_id, None)

    def start(self, *, capture: bool = False) -> None:
        """Record from now on (and keep the read commands when `capture`)."""
        self.totals.clear()
        self.captured.clear()
        self.recording, self.capture = True, capture

    def stop(self) -> None:
        """Stop recording."""
        self.recording = self.capture = False


async def _explain_reads(db: AsyncDatabase[Doc], listener: CommandTimes) -> list[dict[str, Any]]:
    """Each read command captured, with its time and what the server's explain says of it."""
    out: list[dict[str, Any]] = []
    for label, command, seconds in listener.captured:
        entry: dict[str, Any] = {"command": label, "ms": round(seconds * 1000, 1)}
        try:
            entry.update(_plan(await db.command("explain", command, verbosity="executionStats")))
        except Exception as exc:  # a server without explain still gives the timings
            entry["explain_error"] = repr(exc)[:200]
        out.append(entry)
    return out


def _client(url: str, listener: CommandTimes | None = None) -> AsyncMongoClient[Doc]:
    """A client with the services' options (and a command listener when given)."""
    return AsyncMongoClient(
        url,
        serverSelectionTimeoutMS=20000,
        tz_aware=True,
        uuidRepresentation="standard",
        event_listeners=[listener] if listener else [],
    )


def _mongodb_url(infra: Any) -> str:
    return infra if isinstance(infra, str) else str(infra.mongodb_url)


# --- 1 and 2: cost per event against history, and what is stored -----------------------------


def _action_id(user: str, sub: int, pos: int) -> str:
    return f"{user}-a{sub}{pos}"


def _full_grid(tenant: str, user: str, first_day: date) -> GoalChanged:
    """One grid of 64 daily routines, changed the day before the history starts."""
    at = datetime.combine(first_day - timedelta(days=1), datetime.min.time(), UTC)
    snapshot = MandalartSnapshot(
        id=f"{user}-grid",
        title="Bench",
        description=None,
        active=True,
        version=1,
        created_at=at,
        updated_at=at,
        sub_goals=[
            SubGoalSnapshot(
                position=sub,
                title=f"Sub {sub}",
                actions=[
                    ActionSnapshot(
                        id=_action_id(user, sub, pos),
                        position=pos,
                        title=f"Action {sub}.{pos}",
                        type="routine",
                        schedule=ScheduleSnapshot(frequency="daily"),
                        due_date=None,
                        added_on=first_day,
                    )
                    for pos in range(1, GRID_SIDE + 1)
                ],
            )
            for sub in range(1, GRID_SIDE + 1)
        ],
    )
    return GoalChanged(tenant_id=tenant, user_id=user, mandalart=snapshot, timezone=TZ)


def _grid_checkin(tenant: str, user: str, sub: int, pos: int, day: date) -> ActionCompleted:
    """A first check-in (seq 1) of one action on `day`, at minute n of the day (UTC)."""
    minute = (sub - 1) * GRID_SIDE + (pos - 1)
    return ActionCompleted(
        tenant_id=tenant,
        user_id=user,
        checkin_id=str(uuid.uuid4()),
        action_id=_action_id(user, sub, pos),
        mandalart_id=f"{user}-grid",
        sub_goal_position=sub,
        sub_goal_title=f"Sub {sub}",
        action_title=f"Action {sub}.{pos}",
        action_type="routine",
        local_date=day,
        timezone=TZ,
        occurred_at=datetime.combine(day, datetime.min.time(), UTC) + timedelta(minutes=minute),
        seq=1,
    )


def _history(tenant: str, user: str, days: int) -> Iterator[EventPayload]:
    """The grid, then every action checked every day of the `days` before END."""
    first = END - timedelta(days=days)
    yield _full_grid(tenant, user, first)
    for d in range(days):
        day = first + timedelta(days=d)
        for sub in range(1, GRID_SIDE + 1):
            for pos in range(1, GRID_SIDE + 1):
                yield _grid_checkin(tenant, user, sub, pos, day)


def _batches(events: Iterator[EventPayload], size: int) -> Iterator[list[EventPayload]]:
    batch: list[EventPayload] = []
    for event in events:
        batch.append(event)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _moment_after(batch: Sequence[EventPayload]) -> datetime:
    last = batch[-1]
    if isinstance(last, GoalChanged):
        return last.mandalart.updated_at + timedelta(minutes=1)
    assert isinstance(last, ActionCompleted)
    return last.occurred_at + timedelta(minutes=1)


@dataclass
class _HistoryUser:
    """One user of the per-event benchmark, alone in a database."""

    days: int
    tenant: str
    user: str
    db: AsyncDatabase[Doc]
    clock: SettableClock
    consumer: IdempotentConsumer
    seed: dict[str, Any] = field(default_factory=dict)
    samples: list[float] = field(default_factory=list)
    commands: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    reads: list[dict[str, Any]] = field(default_factory=list)

    @property
    def label(self) -> str:
        return _label_days(self.days)

    @property
    def owner(self) -> Owner:
        return Owner(self.tenant, self.user)


async def _seed_through_consumer(u: _HistoryUser) -> dict[str, Any]:
    """The history through the real consumer and handler, 500 events per transaction."""
    events = offset = 0
    batch_seconds = 0.0
    firsts: list[float] = []
    lasts: list[float] = []
    started = time.perf_counter()
    for n, batch in enumerate(_batches(_history(u.tenant, u.user, u.days), BATCH)):
        records = [record_of(e, offset=offset + i, source="bench") for i, e in enumerate(batch)]
        offset += len(records)
        u.clock.now = _moment_after(batch)
        t = time.perf_counter()
        await u.consumer.process(records)
        took = time.perf_counter() - t
        batch_seconds += took
        events += len(records)
        (firsts if n < 5 else lasts).append(took)
        lasts[:] = lasts[-5:]
        if n % 20 == 19:
            _say(
                f"  seeding {u.label}: {events} events, {batch_seconds:.0f} s in batches, "
                f"last batch {took:.2f} s"
            )
    return {
        "events": events,
        "seconds": round(batch_seconds, 1),
        "wall_seconds": round(time.perf_counter() - started, 1),
        "events_per_s": round(events / batch_seconds, 1),
        "first_batches_s": round(statistics.mean(firsts), 2),
        "last_batches_s": round(statistics.mean(lasts or firsts), 2),
    }


async def _measure_one(u: _HistoryUser, rep: int, listener: CommandTimes) -> None:
    """One more check-in (the day after the history, +rep; a fresh event) processed alone."""
    day = END + timedelta(days=rep)
    event = _grid_checkin(u.tenant, u.user, 1, 1, day)
    record = record_of(event, offset=10_000_000 + rep, source="bench")
    u.clock.now = event.occurred_at + timedelta(minutes=1)
    last = rep == REPEATS - 1
    listener.start(capture=last)
    started = time.perf_counter()
    await u.consumer.process([record])
    u.samples.append(time.perf_counter() - started)
    listener.stop()
    for name, seconds in listener.totals.items():
        u.commands[name] += seconds
    if last:
        u.reads = await _explain_reads(u.db, listener)


async def _doc_sizes(u: _HistoryUser) -> dict[str, Any]:
    """The largest BSON document with the user's id, per collection, and the user_state one."""
    key = u.owner.key
    by_collection: dict[str, int] = {}
    others: dict[str, int] = {}
    for name in sorted(await u.db.list_collection_names()):
        mine = other = 0
        async for doc in u.db[name].find({}):
            size = len(bson.encode(doc))
            ours = (
                doc.get("_id") == key
                or doc.get("uk") == key
                or (doc.get("user_id") == u.user and doc.get("tenant_id") == u.tenant)
            )
            if ours:
                mine = max(mine, size)
            else:
                other = max(other, size)
        if mine:
            by_collection[name] = mine
        if other:
            others[name] = other
    state = await u.db[USER_STATE].find_one({"_id": key})
    return {
        "max_doc_bytes": max(by_collection.values()),
        "max_doc_bytes_by_collection": by_collection,
        "max_doc_bytes_without_user_id": others,
        "state_doc_bytes": len(bson.encode(state)) if state is not None else 0,
        "fold_blob_bytes": len(state["fold"]) if state and "fold" in state else 0,
    }


def _plan(explain: Doc) -> dict[str, Any]:
    """What an explain says: the stages of the winning plan, keys and documents examined."""
    if "stages" in explain:  # an aggregation: the $cursor stage holds the query's plan
        explain = next((s["$cursor"] for s in explain["stages"] if "$cursor" in s), explain)
    stage: Doc | None = explain.get("queryPlanner", {}).get("winningPlan")
    chain = []
    while stage:
        name = stage.get("stage", "?")
        chain.append(f"{name}({stage['indexName']})" if "indexName" in stage else name)
        stage = stage.get("inputStage")
    stats = explain.get("executionStats", {})
    return {
        "plan": " <- ".join(chain),
        "keys_examined": stats.get("totalKeysExamined"),
        "docs_examined": stats.get("totalDocsExamined"),
        "returned": stats.get("nReturned"),
        "server_ms": stats.get("executionTimeMillis"),
    }


async def _per_event(url: str) -> dict[str, Any]:
    """Seed each user's history, then time one more check-in of each, round robin."""
    listener = CommandTimes()
    client = _client(url, listener)
    run_id = uuid.uuid4().hex[:6]
    users: list[_HistoryUser] = []
    try:
        for days in HISTORY_DAYS:
            label = _label_days(days)
            db = client[f"bench_gam_{label}_{run_id}"]
            await ensure_indexes(db)
            clock = SettableClock(datetime.combine(END, datetime.min.time(), UTC))
            consumer = IdempotentConsumer(
                group=GROUP,
                client=client,
                db=db,
                handler=mongo_handler(client, db, clock=clock, accept_days=2),
                dead_letters=_RaiseSink(),
            )
            users.append(_HistoryUser(days, f"bench-{label}", f"user-{label}", db, clock, consumer))
        for u in users:
            _say(f"seeding the {u.label} user ({u.days} days × 64 check-ins) ...")
            u.seed = await _seed_through_consumer(u)
            _say(
                f"  seeded {u.label}: {u.seed['events']} events in {u.seed['seconds']} s "
                f"({u.seed['events_per_s']} events/s)"
            )
            if u.seed["seconds"] > 240:
                _say(f"  NOTE: seeding the {u.label} user took more than 4 minutes")
        with mock.patch.object(UserFold, "rebuild", wraps=UserFold.rebuild) as rebuild:
            for rep in range(REPEATS):
                for u in users:
                    await _measure_one(u, rep, listener)
        _say(f"measured {REPEATS} check-ins per user ({rebuild.call_count} fold rebuilds)")
        for u in users:
            _say(f"  one check-in, {u.label} of history: {_median_ms(u.samples)} ms (median)")
        out: dict[str, Any] = {
            "repeats": REPEATS,
            "fold_rebuilds_while_measuring": rebuild.call_count,
        }
        for u in users:
            sizes = await _doc_sizes(u)
            out[u.label] = {
                "history_days": u.days,
                "history_events": u.seed["events"],
                "seed": u.seed,
                "per_event_ms": _median_ms(u.samples),
                "per_event_ms_min": round(min(u.samples) * 1000, 1),
                "per_event_ms_max": round(max(u.samples) * 1000, 1),
                "per_event_db_ms": round(sum(u.commands.values()) * 1000 / len(u.samples), 1),
                "per_event_db_ms_by_command": {
                    k: round(v * 1000 / len(u.samples), 1)
                    for k, v in sorted(u.commands.items(), key=lambda kv: -kv[1])
                },
                "reads_of_one_event": u.reads,
                **sizes,
            }
        return out
    finally:
        for u in users:
            await client.drop_database(u.db.name)
        await client.close()


# --- 3: backlog drain through the real worker, next to a raw baseline --------------------------


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
    return GoalChanged(tenant_id=tenant, user_id=user, mandalart=snapshot, timezone=TZ)


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
        timezone=TZ,
        occurred_at=datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=action),
        seq=1,
    )


def _backlog(tenant: str) -> Iterator[tuple[str, EventPayload]]:
    """The backlog in the order it is produced: every grid, then check-ins interleaved across
    users (as a day of traffic is)."""
    for u in range(USERS):
        yield topics.GOAL_CHANGED, _grid(tenant, f"u{u}")
    for d in range(DAYS):
        for action in range(1, ACTIONS + 1):
            for u in range(USERS):
                day = START + timedelta(days=d)
                yield topics.ACTION_COMPLETED, _checkin(tenant, f"u{u}", action, day)


async def _produce(bootstrap: str, tenant: str) -> tuple[int, int]:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, enable_idempotence=True, acks="all", linger_ms=20
    )
    await producer.start()
    grids = checkins = 0
    try:
        pending = []
        for topic, payload in _backlog(tenant):
            env = new_envelope(topic, payload, "bench")
            pending.append(
                await producer.send(
                    topic,
                    encode_value(env),
                    key=partition_key(payload),
                    headers=to_kafka_headers(env),
                )
            )
            if topic == topics.GOAL_CHANGED:
                grids += 1
            else:
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


async def _worker_rate(infra: Any, database: str) -> dict[str, Any]:
    """Run the real worker; done when its group's committed offsets reach the topics' ends.

    Progress is read from Kafka (committed offsets), not by counting documents, so measuring
    puts no load on the database the worker is writing to. Past BENCH_DRAIN_MAX_S the worker is
    stopped and the rate of what it committed so far is reported (`completed: false`).
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
    said = started
    completed = True
    try:
        done = 0
        while done < expected:
            await asyncio.sleep(0.5)
            committed = await _committed(admin, GROUP)
            done = sum(committed.get(tp, 0) for tp in partitions)
            now = time.perf_counter()
            if done and first_at is None:
                first_at = now
            if not proc.alive():
                raise RuntimeError(f"worker died:\n{proc.log_tail()}")
            if now - said > 60:
                said = now
                _say(f"  worker: {done} of {expected} committed after {now - started:.0f} s")
            if now - started > DRAIN_MAX_S:
                completed = False
                _say(f"  worker: stopped after {DRAIN_MAX_S:.0f} s with {done} of {expected}")
                break
        finished = time.perf_counter()
    finally:
        proc.stop()
        await admin.close()
    return {
        "events": expected,
        "events_committed": done,
        "completed": completed,
        "events_per_s_from_start": round(done / (finished - started), 1),
        "events_per_s_after_first_commit": round(
            done / max(finished - (first_at or started), 1e-9), 1
        ),
        "wall_seconds": round(finished - started, 1),
    }


async def _state_doc_bytes(url: str, database: str) -> int:
    """The mean size of the worker's user_state documents (what the baseline rewrites)."""
    client = _client(url)
    try:
        sizes = [len(bson.encode(d)) async for d in client[database][USER_STATE].find({})]
        return int(statistics.mean(sizes)) if sizes else 0
    finally:
        await client.close()


async def _raw_db_baseline(url: str, tenant: str, state_bytes: int) -> dict[str, Any]:
    """The database work of the backlog's batches without the service: per 500 events, in one
    transaction, read the touched users' state documents by `_id` (as the worker reads them),
    write them back in one bulk replace, insert one ledger row and one processed-id row per
    event."""
    client = _client(url)
    db = client[f"bench_gam_rawdrain_{uuid.uuid4().hex[:6]}"]
    state, ledger, processed = db[USER_STATE], db[LEDGER], db[PROCESSED]
    await ledger.create_index(
        [("uk", ASCENDING), ("key", ASCENDING), ("n", ASCENDING)], unique=True
    )
    await ledger.create_index([("uk", ASCENDING), ("ord", DESCENDING)])
    pad = Binary(random.Random(7).randbytes(max(state_bytes - 200, 0)))
    backlog = [(topic, p.user_id) for topic, p in _backlog(tenant)]
    seen: dict[str, int] = defaultdict(int)
    try:
        started = time.perf_counter()
        for first in range(0, len(backlog), BATCH):
            batch = backlog[first : first + BATCH]
            now = datetime.now(UTC)
            keys = sorted({f"{tenant}:{user}" for _, user in batch})
            rows: list[Doc] = []
            done: list[Doc] = []
            for n, (topic, user) in enumerate(batch):
                uk = f"{tenant}:{user}"
                seen[uk] += 1
                event_id = str(uuid.uuid4())
                rows.append(
                    {
                        "_id": str(uuid.uuid4()),
                        "uk": uk,
                        "tenant_id": tenant,
                        "user_id": user,
                        "key": f"checkin:{user}-a{n % ACTIONS}:{first}:{n}",
                        "n": 0,
                        "ord": seen[uk],
                        "amount": 10,
                        "reason": "checkin",
                        "action_id": f"{user}-a{n % ACTIONS}",
                        "local_date": START.isoformat(),
                        "badge": None,
                        "multiplier": None,
                        "source_event_id": event_id,
                        "xp_total": 10 * seen[uk],
                        "created_at": now,
                    }
                )
                done.append({"_id": f"{GROUP}:{event_id}", "topic": topic, "at": now})

            async def work(
                session: AsyncClientSession,
                keys: list[str] = keys,
                rows: list[Doc] = rows,
                done: list[Doc] = done,
                now: datetime = now,
            ) -> None:
                # Read as the worker reads (`find_in`: `$in` lists of 50 ids; one list of 500 costs
                # this server several times more).
                found = {d["_id"]: d for d in await find_in(state, "_id", keys, session=session)}
                ops = []
                for uk in keys:
                    doc = found.get(uk) or {"_id": uk, "tenant_id": tenant, "fold": pad}
                    ops.append(
                        ReplaceOne({"_id": uk}, {**doc, "n": seen[uk], "at": now}, upsert=True)
                    )
                await state.bulk_write(ops, ordered=False, session=session)
                await ledger.insert_many(rows, ordered=False, session=session)
                await processed.insert_many(done, session=session)

            async with client.start_session() as session:
                await session.with_transaction(
                    work,
                    read_concern=ReadConcern("snapshot"),
                    write_concern=WriteConcern("majority"),
                )
        seconds = time.perf_counter() - started
        return {
            "events": len(backlog),
            "seconds": round(seconds, 1),
            "events_per_s": round(len(backlog) / seconds, 1),
            "state_doc_bytes": state_bytes,
        }
    finally:
        await client.drop_database(db.name)
        await client.close()


async def _drain(infra: Any) -> dict[str, Any]:
    tenant = f"bench-{uuid.uuid4().hex[:6]}"
    _say(f"producing the backlog ({USERS} grids + {USERS * ACTIONS * DAYS} check-ins) ...")
    grids, checkins = await _produce(infra.bootstrap_servers, tenant)
    raw = await _raw_consume_rate(infra.bootstrap_servers, checkins)
    _say(f"raw aiokafka consume: {raw:.0f} events/s; draining with the real worker ...")
    database = f"bench_gamification_{tenant[-6:]}"
    worker = await _worker_rate(infra, database)
    _say(f"worker: {worker}")
    state_bytes = await _state_doc_bytes(infra.mongodb_url, database)
    baseline = await _raw_db_baseline(infra.mongodb_url, tenant, state_bytes)
    _say(f"raw database baseline: {baseline}")
    client = _client(infra.mongodb_url)
    await client.drop_database(database)
    await client.close()
    return {
        "backlog_checkins": checkins,
        "backlog_grids": grids,
        "users": USERS,
        "raw_aiokafka_consume_events_per_s": round(raw, 1),
        "gamification_worker": worker,
        "raw_db_baseline": baseline,
    }


# --- 4: leaderboards ---------------------------------------------------------------------------


async def _seed_tenant(db: AsyncDatabase[Doc], tenant: str, users: int) -> tuple[str, float]:
    """This week's, this month's and the all-time standings of every user of the tenant, with
    random XP (the caller ranked in the middle of each): the leaderboard documents written by
    the store's own `add_to_boards` in bulk writes of a few thousand — the rows, and whatever
    else it keeps with them, exactly as the worker writes them; then each user's `user_state`
    (no fold), inserted in bulk, its `xp_total` the all-time XP."""
    rng = random.Random(users)
    today = BOARD_TODAY.date()  # the same local date in Seoul
    caps: dict[Period, int] = {"week": 5_000, "month": 20_000, "all": 500_000}
    xp = {p: [rng.randint(1, caps[p]) for _ in range(users)] for p in PERIODS}
    caller = users // 2
    for p in PERIODS:
        xp[p][caller] = sorted(xp[p], reverse=True)[users // 2]
    started = time.perf_counter()
    states: list[Doc] = []
    deltas: list[BoardDelta] = []
    for u in range(users):
        owner = Owner(tenant, f"u{u:06d}")
        deltas += [BoardDelta(owner, p, window_of(p, today), xp[p][u]) for p in PERIODS]
        total = xp["all"][u]
        progress = UserProgress(
            owner,
            None,
            user_version=1,
            timezone=TZ,
            display_name=f"Bench user {u}",
            xp_total=total,
            level=level_for_xp(total),
            updated_at=BOARD_TODAY,
        )
        states.append(progress_doc(progress))
    # As a batch does: the boards first (all time reads the XP before from user_state), then
    # the users' progress.
    store = MongoGamificationStore(db, None)
    for first in range(0, len(deltas), 6000):
        await store.add_to_boards(deltas[first : first + 6000])
    for first in range(0, len(states), 5000):
        await db[USER_STATE].insert_many(states[first : first + 5000], ordered=False)
    return f"u{caller:06d}", time.perf_counter() - started


async def _documents(db: AsyncDatabase[Doc]) -> dict[str, int]:
    return {n: await db[n].count_documents({}) for n in sorted(await db.list_collection_names())}


async def _time_board(service: GamificationService, owner: Owner, period: Period) -> dict[str, Any]:
    """Median of up to BENCH_BOARD_CALLS calls (at least 3, within BENCH_BOARD_BUDGET_S)."""
    board = await service.leaderboard(owner, period, 20)  # warm-up, and the answer's check
    assert len(board.items) == 20, "the leaderboard shows 20 rows"
    assert board.me is not None, "the caller has a standing"
    samples: list[float] = []
    started = time.perf_counter()
    while len(samples) < BOARD_CALLS and (
        len(samples) < 3 or time.perf_counter() - started < BOARD_BUDGET_S
    ):
        t = time.perf_counter()
        await service.leaderboard(owner, period, 20)
        samples.append(time.perf_counter() - t)
    return {"ms": _median_ms(samples), "calls": len(samples), "rank": board.me.rank}


async def _interleaved(
    service: GamificationService, tenants: Sequence[tuple[int, Owner]]
) -> dict[str, dict[str, float]]:
    """Median ms per tenant and period of BENCH_BOARD_CALLS rounds, each round calling every
    tenant once, in turns (the order flips each round)."""
    out: dict[str, dict[str, float]] = {_label_users(n): {} for n, _ in tenants}
    for period in PERIODS:
        samples: dict[str, list[float]] = {_label_users(n): [] for n, _ in tenants}
        for round_ in range(max(BOARD_CALLS, 3)):
            for n, owner in tenants if round_ % 2 == 0 else list(reversed(tenants)):
                t = time.perf_counter()
                await service.leaderboard(owner, period, 20)
                samples[_label_users(n)].append(time.perf_counter() - t)
        for label, taken in samples.items():
            out[label][period] = _median_ms(taken)
    return out


async def _board_reads(
    db: AsyncDatabase[Doc],
    service: GamificationService,
    listener: CommandTimes,
    owner: Owner,
    period: Period,
) -> list[dict[str, Any]]:
    """The reads one leaderboard call sends, each with its time and its explain."""
    listener.start(capture=True)
    await service.leaderboard(owner, period, 20)
    listener.stop()
    return await _explain_reads(db, listener)


async def _leaderboards(url: str) -> dict[str, Any]:
    listener = CommandTimes()
    client = _client(url, listener)
    db = client[f"bench_gam_boards_{uuid.uuid4().hex[:6]}"]
    clock = SettableClock(BOARD_TODAY)
    service = GamificationService(mongo_unit_of_work(client, db), clock)
    out: dict[str, Any] = {"limit": 20}
    try:
        await ensure_indexes(db)
        tenants: list[tuple[int, Owner]] = []
        for n in BOARD_SIZES:
            label = _label_users(n)
            tenant = f"tenant-{label}"
            caller, seed_s = await _seed_tenant(db, tenant, n)
            owner = Owner(tenant, caller)
            tenants.append((n, owner))
            documents = await _documents(db)
            _say(f"seeded the {label} tenant in {seed_s:.0f} s; documents now: {documents}")
            out[label] = {"users": n, "seed_s": round(seed_s, 1)}
            for period in PERIODS:
                out[label][period] = await _time_board(service, owner, period)
            out[label]["collection_documents"] = documents
            _say(f"  leaderboard {label}: {out[label]}")
        # Both tenants now share the collections: the calls alternate between them, so a
        # machine busy with something else slows both alike (the compared figures).
        out["interleaved"] = await _interleaved(service, tenants)
        _say(f"  leaderboards, calls alternating between the tenants: {out['interleaved']}")
        out["reads_of_one_call"] = {
            _label_users(m): {p: await _board_reads(db, service, listener, o, p) for p in PERIODS}
            for m, o in (tenants[0], tenants[-1])
        }
        return out
    finally:
        await client.drop_database(db.name)
        await client.close()


# --- the pure fold, the table, run -------------------------------------------------------------


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


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the table: a figure, its same-run baseline and the target between them."""

    figure: str
    value: float
    unit: str
    baseline_name: str
    baseline: float | None
    target: str
    met: bool | None

    @property
    def ratio(self) -> float | None:
        return self.value / self.baseline if self.baseline else None


def _rows(result: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    per = result.get("per_event")
    if per:
        labels = [_label_days(d) for d in HISTORY_DAYS]
        base = labels[0]
        b = per[base]["per_event_ms"]
        for label in labels:
            v = per[label]["per_event_ms"]
            last = label == labels[-1] and label != base
            rows.append(
                Row(
                    f"one check-in, {label} of history",
                    v,
                    "ms",
                    f"{base} user",
                    b,
                    "≤ 1.5× baseline" if last else "—",
                    v <= 1.5 * b if last else None,
                )
            )
        for label in labels:
            rows.append(
                Row(
                    f"user_state doc, {label}",
                    per[label]["state_doc_bytes"],
                    "B",
                    "",
                    None,
                    "—",
                    None,
                )
            )
        top = labels[-1]
        v = per[top]["max_doc_bytes"]
        rows.append(
            Row(
                f"largest doc of the {top} user",
                v,
                "B",
                "64 KiB",
                MAX_DOC_TARGET,
                "≤ 64 KiB",
                v <= MAX_DOC_TARGET,
            )
        )
    drain = result.get("drain")
    if drain:
        v = drain["gamification_worker"]["events_per_s_after_first_commit"]
        b = drain["raw_db_baseline"]["events_per_s"]
        rows.append(
            Row(
                "backlog drain, real worker",
                v,
                "ev/s",
                "raw db script",
                b,
                "≥ 0.5× baseline",
                v >= 0.5 * b,
            )
        )
        rows.append(
            Row(
                "raw aiokafka consume",
                drain["raw_aiokafka_consume_events_per_s"],
                "ev/s",
                "",
                None,
                "—",
                None,
            )
        )
    boards = result.get("leaderboard")
    if boards:
        small, big = (_label_users(n) for n in (BOARD_SIZES[0], BOARD_SIZES[-1]))
        for period in PERIODS:
            b = boards["interleaved"][small][period]
            v = boards["interleaved"][big][period]
            rows.append(
                Row(
                    f"leaderboard {period}, {big} users",
                    v,
                    "ms",
                    f"{small} users (calls alternating)",
                    b,
                    "≤ 2× baseline",
                    v <= 2 * b,
                )
            )
            rows.append(
                Row(
                    f"leaderboard {period}, {small} alone (before {big} was seeded)",
                    boards[small][period]["ms"],
                    "ms",
                    f"{small} users (calls alternating)",
                    b,
                    "—",
                    None,
                )
            )
    return rows


def _table(rows: Sequence[Row]) -> str:
    def num(v: float | None) -> str:
        return "—" if v is None else f"{v:,.1f}" if v < 100 else f"{v:,.0f}"

    header = ("figure", "value", "baseline", "ratio", "target", "met")
    lines = [
        (
            r.figure,
            f"{num(r.value)} {r.unit}",
            f"{num(r.baseline)} {r.unit} ({r.baseline_name})" if r.baseline else "—",
            "—" if r.ratio is None else f"{r.ratio:.2f}×",
            r.target,
            "—" if r.met is None else "yes" if r.met else "NO",
        )
        for r in rows
    ]
    widths = [max(len(x[i]) for x in [header, *lines]) for i in range(len(header))]
    fmt = "  ".join(f"{{:{'<' if i == 0 else '>'}{w}}}" for i, w in enumerate(widths))
    sep = "  ".join("-" * w for w in widths)
    return "\n".join([fmt.format(*header), sep, *(fmt.format(*x) for x in lines)])


def _flat(result: dict[str, Any]) -> dict[str, Any]:
    """The headline figures under stable keys (bench-results/gamification.json)."""
    flat: dict[str, Any] = {}
    per = result.get("per_event")
    if per:
        for d in HISTORY_DAYS:
            label = _label_days(d)
            flat[f"per_event_ms_{label}"] = per[label]["per_event_ms"]
            flat[f"state_doc_bytes_{label}"] = per[label]["state_doc_bytes"]
            flat[f"seed_s_{label}"] = per[label]["seed"]["seconds"]
        top = _label_days(HISTORY_DAYS[-1])
        flat[f"max_state_doc_bytes_{top}"] = per[top]["max_doc_bytes"]
    drain = result.get("drain")
    if drain:
        flat["drain_events_per_s"] = drain["gamification_worker"]["events_per_s_after_first_commit"]
        flat["drain_completed"] = drain["gamification_worker"]["completed"]
        flat["drain_raw_baseline_events_per_s"] = drain["raw_db_baseline"]["events_per_s"]
        flat["raw_consume_events_per_s"] = drain["raw_aiokafka_consume_events_per_s"]
    boards = result.get("leaderboard")
    if boards:
        for n in BOARD_SIZES:
            label = _label_users(n)
            compared = boards["interleaved"][label]
            for period in PERIODS:
                flat[f"leaderboard_ms_{label}_{period}"] = compared[period]
            # The headline: the slowest period's median, calls alternating between tenants.
            flat[f"leaderboard_ms_{label}"] = max(compared.values())
    return flat


async def run(infra: Any) -> dict[str, Any]:
    """Run the parts (BENCH_PARTS), print the table and return every figure."""
    started = time.perf_counter()
    result: dict[str, Any] = {}
    if "per_event" in PARTS:
        result["per_event"] = await _per_event(_mongodb_url(infra))
    if "leaderboard" in PARTS:
        result["leaderboard"] = await _leaderboards(_mongodb_url(infra))
    if "drain" in PARTS:
        result["drain"] = await _drain(infra)
    result.update(_derive_timing())
    rows = _rows(result)
    result["table"] = [
        {
            "figure": r.figure,
            "value": r.value,
            "unit": r.unit,
            "baseline": r.baseline,
            "baseline_name": r.baseline_name,
            "ratio": None if r.ratio is None else round(r.ratio, 2),
            "target": r.target,
            "met": r.met,
        }
        for r in rows
    ]
    result["wall_seconds"] = round(time.perf_counter() - started, 1)
    print(f"\ngamification ({result['wall_seconds']:.0f} s):", flush=True)
    print(_table(rows), flush=True)
    return {**_flat(result), **result}
