"""The check-in hot path through the whole running stack, each figure next to its baseline.

`make bench pipeline` starts the four services (API and worker each, as `make up` does) against
fresh local infrastructure, then measures in one run:

1. **Throughput.** Check-ins accepted per second through the real checkins API at 64 concurrent
   clients (each its own user, every PUT a new check-in), next to the raw rate of a minimal script
   doing one transaction of a check-in's shape (one find, one upsert, one outbox insert) per
   check-in at the same concurrency on the same server. The two alternate, twice each.
2. **Latency.** At a steady 20 check-ins/s (open loop: a PUT is sent on schedule whatever the
   earlier ones are doing), the time from sending the PUT to reading its `xp.awarded` on Kafka,
   next to Kafka's own produce→consume round trip measured the same way in the same run.
3. **Rest.** Database operations per second of the whole stack at rest for 30 s (the server's
   `serverStatus` opcounters, all kinds, minus the bench's own two calls).
4. **Scale-out (issue 16).** The same three figures again on a 3-broker KRaft cluster (topics
   at RF 3, `min.insync.replicas` 2) with 2 instances of every worker, on the same database
   server, printed next to the one-broker figures of this run (keys `cluster_*`, and the whole
   set under `cluster`). Its Kafka round trip is measured on an RF-3 topic.

Settings (environment): PIPELINE_CLIENTS (64), PIPELINE_THROUGHPUT_S (12 per round),
PIPELINE_RATE (20), PIPELINE_LATENCY_S (30), PIPELINE_IDLE_S (30), PIPELINE_CLUSTER (1; 0 skips
the scale-out part), PIPELINE_WORKERS (2 instances of each worker on the cluster).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession

from mandaact_common.mongo import Doc
from mandaact_common.testing import auth_header
from mandaact_contracts import topics
from mandaact_devstack.services import Kind

SERVICES = ("goals", "checkins", "gamification", "reports")
CLIENTS = int(os.environ.get("PIPELINE_CLIENTS", "64"))
THROUGHPUT_S = float(os.environ.get("PIPELINE_THROUGHPUT_S", "12"))
RATE = float(os.environ.get("PIPELINE_RATE", "20"))
LATENCY_S = float(os.environ.get("PIPELINE_LATENCY_S", "30"))
IDLE_S = float(os.environ.get("PIPELINE_IDLE_S", "30"))
CLUSTER = os.environ.get("PIPELINE_CLUSTER", "1") != "0"
CLUSTER_WORKERS = int(os.environ.get("PIPELINE_WORKERS", "2"))
BACKFILL_DAYS = 14
TZ = ZoneInfo("Asia/Seoul")  # the timezone of a user who never saved settings
TARGETS = {"throughput_share": 0.60, "e2e_p50_ms": 25.0, "e2e_p99_ms": 100.0, "idle": 5.0}


def _say(text: str) -> None:
    print(f"[pipeline] {text}", flush=True)


def _pct(samples: Sequence[float], q: float) -> float:
    ordered = sorted(samples)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _grid(sub_goals: int) -> dict[str, Any]:
    return {
        "title": "Pipeline bench",
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
                    for a in range(1, 9)
                ],
            }
            for s in range(1, sub_goals + 1)
        ],
    }


@dataclass
class _Stack:
    """The four services' APIs and workers on free ports, as `make up` runs them; `workers`
    instances of every worker (one consumer group each, as `MANDAACT_WORKER_INSTANCES`)."""

    infra: Any
    run_dir: Path
    workers: int = 1
    env: dict[str, str] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    procs: list[Any] = field(default_factory=list)

    def start(self) -> None:
        from mandaact_devstack import free_port, start_service, wait_http_ready

        self.env = {
            "KAFKA_BOOTSTRAP_SERVERS": self.infra.bootstrap_servers,
            "MONGODB_URL": self.infra.mongodb_url,
            "MANDAACT_ENV": "test",
            "MANDAACT_BACKFILL_DAYS": str(BACKFILL_DAYS),
            "MANDAACT_API_RELAY": "true",
            "OPENAI_API_KEY": "",
        }
        self.ports = {s: free_port() for s in SERVICES}
        prefix = f"pipe_{uuid.uuid4().hex[:6]}"
        for service in SERVICES:
            env = {**self.env, "MANDAACT_MONGODB_DATABASE": f"{prefix}_{service}"}
            kinds: list[tuple[Kind, int]] = [
                *(("worker", i) for i in range(1, self.workers + 1)),
                ("api", 1),
            ]
            for kind, instance in kinds:
                port = self.ports[service] if kind == "api" else None
                self.procs.append(
                    start_service(
                        service,
                        kind,
                        env,
                        run_dir=self.run_dir,
                        http_port=port,
                        die_with_parent=True,
                        instance=instance,
                    )
                )
        for service in SERVICES:
            wait_http_ready(f"{self.url(service)}/readyz", timeout=120)

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def stop(self) -> None:
        for proc in self.procs:
            proc.stop(timeout=20)


@dataclass
class _User:
    headers: dict[str, str]
    user_id: str
    action_ids: list[str]
    slots: list[tuple[str, date]] = field(default_factory=list)


async def _seed_users(
    http: httpx.AsyncClient, stack: _Stack, tenant: str, n: int, sub_goals: int
) -> list[_User]:
    """n users of one tenant, each with a grid of daily routines the checklist already shows."""
    today = datetime.now(TZ).date()
    users: list[_User] = []
    for k in range(n):
        user_id = f"u{k}"
        headers = auth_header(tenant, user_id)
        created = await http.post(
            f"{stack.url('goals')}/v1/mandalarts", json=_grid(sub_goals), headers=headers
        )
        created.raise_for_status()
        ids = [a["id"] for sg in created.json()["sub_goals"] for a in sg["actions"]]
        days = [today - timedelta(days=d) for d in range(BACKFILL_DAYS)]
        users.append(_User(headers, user_id, ids, [(a, d) for d in days for a in ids]))
    deadline = time.monotonic() + 120
    for u in users:
        while True:
            r = await http.get(f"{stack.url('checkins')}/v1/checklist", headers=u.headers)
            if r.status_code == 200 and r.json()["due_count"] == len(u.action_ids):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"checklist of {u.user_id} not ready: {r.status_code} {r.text}")
            await asyncio.sleep(0.2)
    return users


async def _put(http: httpx.AsyncClient, stack: _Stack, user: _User) -> tuple[int, str]:
    """PUT the user's next new check-in; its status (0 when the connection failed) and, when
    refused, what the problem said."""
    action_id, day = user.slots.pop()
    try:
        r = await http.put(
            f"{stack.url('checkins')}/v1/checkins/{action_id}",
            params={"date": day.isoformat()},
            headers=user.headers,
        )
    except httpx.HTTPError as exc:
        return 0, repr(exc)[:200]
    return r.status_code, "" if r.status_code == 201 else r.text[:300]


async def _http_rate(http: httpx.AsyncClient, stack: _Stack, users: list[_User]) -> dict[str, Any]:
    """Check-ins accepted per second with one closed-loop client per user."""
    accepted = 0
    refused: dict[int, int] = {}
    why: dict[int, str] = {}  # the first problem of each refused status
    stop_at = time.monotonic() + THROUGHPUT_S

    async def client(user: _User) -> None:
        nonlocal accepted
        while time.monotonic() < stop_at and user.slots:
            status, detail = await _put(http, stack, user)
            if status == 201:
                accepted += 1
            else:
                refused[status] = refused.get(status, 0) + 1
                why.setdefault(status, detail)

    started = time.monotonic()
    await asyncio.gather(*(client(u) for u in users))
    elapsed = time.monotonic() - started
    return {"per_s": accepted / elapsed, "accepted": accepted, "refused": refused, "why": why}


async def _raw_rate(mongodb_url: str) -> dict[str, Any]:
    """One transaction of a check-in's shape per check-in (find, upsert, outbox insert)."""
    client: AsyncMongoClient[Doc] = AsyncMongoClient(mongodb_url, maxPoolSize=CLIENTS + 8)
    db = client[f"pipe_raw_{uuid.uuid4().hex[:6]}"]
    actions = [{"_id": f"a{k}", "tenant_id": "t", "user_id": f"u{k}"} for k in range(CLIENTS)]
    await db.actions.insert_many(actions)
    await db.slots.insert_one({"_id": "warm"})
    await db.outbox.insert_one({"_id": "warm"})
    done = 0
    stop_at = time.monotonic() + THROUGHPUT_S

    async def one(k: int) -> None:
        nonlocal done
        n = 0
        while time.monotonic() < stop_at:
            n += 1
            slot_id = f"{k}:{n}"

            async def work(session: AsyncClientSession, slot_id: str = slot_id) -> None:
                action = await db.actions.find_one({"_id": f"a{k}"}, session=session)
                assert action is not None
                await db.slots.update_one(
                    {"_id": slot_id},
                    {"$set": {"done": True, "changes": 1}},
                    upsert=True,
                    session=session,
                )
                await db.outbox.insert_one(
                    {"_id": uuid.uuid4().hex, "topic": "action.completed", "v": "x" * 400},
                    session=session,
                )

            async with client.start_session() as session:
                await session.with_transaction(work)
            done += 1

    try:
        started = time.monotonic()
        await asyncio.gather(*(one(k) for k in range(CLIENTS)))
        elapsed = time.monotonic() - started
    finally:
        await client.drop_database(db.name)
        await client.close()
    return {"per_s": done / elapsed, "done": done}


async def _wait_for(all_read: asyncio.Event, sent: dict[Any, float], seconds: float) -> None:
    """Wait until the reader has seen every record sent, or `seconds` passed."""
    if not sent:
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(all_read.wait(), timeout=seconds)


async def _kafka_rtt(bootstrap: str, replication: int = 1) -> list[float]:
    """Produce→consume round trips (ms) of small records at RATE/s, as the relay produces, on a
    topic of `replication` replicas (2 in sync from 3 on, like the contract topics)."""
    topic = f"pipeline-rtt-{uuid.uuid4().hex[:6]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    configs = {"min.insync.replicas": "2"} if replication >= 3 else {}
    try:
        await admin.create_topics(
            [
                NewTopic(
                    topic, num_partitions=3, replication_factor=replication, topic_configs=configs
                )
            ]
        )
    finally:
        await admin.close()
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=0
    )
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="latest"
    )
    await producer.start()
    await consumer.start()
    sent: dict[bytes, float] = {}
    samples: list[float] = []
    all_read = asyncio.Event()
    try:
        await consumer.seek_to_end()
        await asyncio.sleep(1.0)  # the consumer has its positions before the first record

        async def read() -> None:
            async for record in consumer:
                if record.value in sent:
                    samples.append((time.perf_counter() - sent.pop(record.value)) * 1000)
                if not sent:
                    all_read.set()

        reader = asyncio.create_task(read())
        n = int(RATE * min(LATENCY_S, 15.0))
        start = time.perf_counter()
        for i in range(n):
            await asyncio.sleep(max(0.0, start + i / RATE - time.perf_counter()))
            value = uuid.uuid4().bytes
            sent[value] = time.perf_counter()
            await producer.send_and_wait(topic, value, key=f"t:u{i % 20}".encode())
        all_read.clear()
        await _wait_for(all_read, sent, 10.0)
        reader.cancel()
    finally:
        await consumer.stop()
        await producer.stop()
    return samples


@dataclass
class _Hops:
    """Where the time of a check-in goes (ms): the PUT's answer, PUT → `action.completed` read
    (the checkins relay after the commit), `action.completed` → `xp.awarded` (gamification)."""

    answered: list[float] = field(default_factory=list)
    to_event: list[float] = field(default_factory=list)
    to_xp: list[float] = field(default_factory=list)

    def figures(self) -> dict[str, float]:
        return {
            f"{name}_p50_ms": round(_pct(samples, 0.50), 1)
            for name, samples in (
                ("put_answered", self.answered),
                ("put_to_action_completed", self.to_event),
                ("action_completed_to_xp_awarded", self.to_xp),
            )
        }


async def _e2e_latency(
    http: httpx.AsyncClient,
    stack: _Stack,
    users: list[_User],
    tenant: str,
    bootstrap: str,
    hops: _Hops | None = None,
) -> tuple[list[float], int]:
    """PUT sent → its `xp.awarded` read on Kafka (ms), at RATE check-ins/s open loop; `hops`
    gets the legs of each one."""
    consumer = AIOKafkaConsumer(
        topics.XP_AWARDED,
        topics.ACTION_COMPLETED,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="latest",
    )
    await consumer.start()
    sent: dict[tuple[str, str, str], float] = {}
    events: dict[tuple[str, str, str], float] = {}
    samples: list[float] = []
    failed = 0
    all_read = asyncio.Event()
    try:
        await consumer.seek_to_end()
        await asyncio.sleep(1.0)

        async def read() -> None:
            import json

            async for record in consumer:
                body = json.loads(record.value or b"{}")
                if body.get("tenant_id") != tenant:
                    continue
                key = (body["user_id"], body["action_id"], body["local_date"])
                now = time.perf_counter()
                if record.topic == topics.ACTION_COMPLETED:
                    if key in sent and hops is not None:
                        hops.to_event.append((now - sent[key]) * 1000)
                        events[key] = now
                    continue
                if body.get("reason") != "checkin":
                    continue
                if key in sent:
                    samples.append((now - sent.pop(key)) * 1000)
                    if hops is not None and key in events:
                        hops.to_xp.append((now - events.pop(key)) * 1000)
                if not sent:
                    all_read.set()

        async def fire(user: _User) -> None:
            nonlocal failed
            action_id, day = user.slots.pop()
            began = sent[(user.user_id, action_id, day.isoformat())] = time.perf_counter()
            try:
                r = await http.put(
                    f"{stack.url('checkins')}/v1/checkins/{action_id}",
                    params={"date": day.isoformat()},
                    headers=user.headers,
                )
                status = r.status_code
                if hops is not None:
                    hops.answered.append((time.perf_counter() - began) * 1000)
            except httpx.HTTPError:
                status = 0
            if status != 201:
                failed += 1
                sent.pop((user.user_id, action_id, day.isoformat()), None)

        reader = asyncio.create_task(read())
        n = int(RATE * LATENCY_S)
        start = time.perf_counter()
        puts: list[asyncio.Task[None]] = []
        for i in range(n):
            await asyncio.sleep(max(0.0, start + i / RATE - time.perf_counter()))
            puts.append(asyncio.create_task(fire(users[i % len(users)])))
        await asyncio.gather(*puts)
        all_read.clear()
        await _wait_for(all_read, sent, 30.0)
        failed += len(sent)
        reader.cancel()
    finally:
        await consumer.stop()
    return samples, failed


async def _wait_drained(bootstrap: str, seconds: float = 600) -> float:
    """Wait until every consumer group has committed every record; the seconds it took."""
    started = time.monotonic()
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await admin.start()
    await reader.start()
    try:
        while time.monotonic() - started < seconds:
            behind = 0
            for group in topics.CONSUMER_GROUPS:
                committed = await admin.list_consumer_group_offsets(group)
                if not committed:
                    continue
                ends = await reader.end_offsets(list(committed))
                behind += sum(max(0, ends[tp] - meta.offset) for tp, meta in committed.items())
            if behind == 0:
                return time.monotonic() - started
            await asyncio.sleep(0.5)
        raise RuntimeError(f"consumers still behind after {seconds}s")
    finally:
        await reader.stop()
        await admin.close()


_OPS = ("insert", "query", "update", "delete", "getmore", "command")


async def _idle_ops(mongodb_url: str) -> dict[str, Any]:
    """The whole stack's database operations per second at rest (all opcounters)."""
    client: AsyncMongoClient[Doc] = AsyncMongoClient(mongodb_url)
    try:
        before = (await client.admin.command("serverStatus"))["opcounters"]
        await asyncio.sleep(IDLE_S)
        after = (await client.admin.command("serverStatus"))["opcounters"]
    finally:
        await client.close()
    by_kind = {k: int(after.get(k, 0)) - int(before.get(k, 0)) for k in _OPS}
    by_kind["command"] -= 1  # the second serverStatus
    return {"per_s": sum(by_kind.values()) / IDLE_S, "by_kind": by_kind}


async def run(infra: Any) -> dict[str, Any]:
    """Run the pipeline benchmark against `infra`, then (PIPELINE_CLUSTER) on a 3-broker
    cluster with PIPELINE_WORKERS instances of every worker; the figures as a dict."""
    with tempfile.TemporaryDirectory(prefix="mandaact-pipeline-") as tmp:
        _say("one broker: goals, checkins, gamification, reports (API + worker each)")
        result = await _on(_Stack(infra, Path(tmp) / "one"))
        _print(result)
        if not CLUSTER:
            return result
        from mandaact_devstack import start_test_infra

        _say("starting a 3-broker KRaft cluster (RF 3, min.insync.replicas 2), same database")
        cluster = start_test_infra(
            Path(tmp) / "cluster", brokers=3, use_docker=False, mongo_url=infra.mongodb_url
        )
        try:
            _say(f"3 brokers: the same services, {CLUSTER_WORKERS} instances of every worker")
            scaled = await _on(
                _Stack(cluster, Path(tmp) / "scaled", CLUSTER_WORKERS),
                replication=cluster.replication_factor,
            )
        finally:
            cluster.stop()
    result["cluster"] = {**scaled, "brokers": 3, "worker_instances": CLUSTER_WORKERS}
    for key in _COMPARED:
        result[f"cluster_{key}"] = scaled[key]
    _print_cluster(result)
    return result


async def _on(stack: _Stack, replication: int = 1) -> dict[str, Any]:
    stack.start()
    try:
        return await _measure(stack, replication)
    finally:
        stack.stop()


async def _measure(stack: _Stack, replication: int) -> dict[str, Any]:
    bootstrap, mongodb_url = stack.infra.bootstrap_servers, stack.infra.mongodb_url
    limits = httpx.Limits(max_connections=CLIENTS * 2, max_keepalive_connections=CLIENTS * 2)
    async with httpx.AsyncClient(timeout=30, limits=limits) as http:
        tenant = f"pipe-{uuid.uuid4().hex[:6]}"
        _say(f"seeding {CLIENTS} users with a 16-action grid each")
        users = await _seed_users(http, stack, tenant, CLIENTS, sub_goals=2)
        latency_users = await _seed_users(http, stack, f"{tenant}-lat", 20, sub_goals=2)
        await _wait_drained(bootstrap)

        raw_rounds: list[dict[str, Any]] = []
        http_rounds: list[dict[str, Any]] = []
        for rnd in (1, 2):
            raw_rounds.append(await _raw_rate(mongodb_url))
            _say(f"round {rnd}: raw one-transaction check-ins {raw_rounds[-1]['per_s']:.1f}/s")
            http_rounds.append(await _http_rate(http, stack, users))
            _say(
                f"round {rnd}: API check-ins {http_rounds[-1]['per_s']:.1f}/s"
                f" (refused {http_rounds[-1]['refused'] or 'none'})"
            )
            for status, detail in http_rounds[-1]["why"].items():
                _say(f"  first {status}: {detail}")
            drain_s = await _wait_drained(bootstrap)
            _say(f"round {rnd}: consumers drained {drain_s:.1f}s after the load")
        raw = statistics.fmean(r["per_s"] for r in raw_rounds)
        api = statistics.fmean(r["per_s"] for r in http_rounds)

        _say(f"Kafka round trip at {RATE:g}/s")
        rtt = await _kafka_rtt(bootstrap, replication)
        _say(f"PUT → xp.awarded at {RATE:g}/s open loop for {LATENCY_S:g}s")
        hops = _Hops()
        e2e, lost = await _e2e_latency(http, stack, latency_users, f"{tenant}-lat", bootstrap, hops)
        await _wait_drained(bootstrap)
        await asyncio.sleep(5.0)  # past the relays' last wake-ups after the load
        _say(f"the stack at rest for {IDLE_S:g}s")
        idle = await _idle_ops(mongodb_url)

    return {
        "http_checkins_per_s": round(api, 1),
        "raw_tx_checkins_per_s": round(raw, 1),
        "http_share_of_raw": round(api / raw, 3),
        "http_rounds": http_rounds,
        "raw_rounds": raw_rounds,
        "clients": CLIENTS,
        "e2e_p50_ms": round(_pct(e2e, 0.50), 1),
        "e2e_p99_ms": round(_pct(e2e, 0.99), 1),
        "e2e_samples": len(e2e),
        "e2e_missing": lost,
        "e2e_hops": hops.figures(),
        "kafka_rtt_p50_ms": round(_pct(rtt, 0.50), 1),
        "kafka_rtt_p99_ms": round(_pct(rtt, 0.99), 1),
        "kafka_rtt_samples": len(rtt),
        "rate_per_s": RATE,
        "idle_db_ops_per_s": round(idle["per_s"], 2),
        "idle_db_ops_by_kind": idle["by_kind"],
        "idle_seconds": IDLE_S,
    }


_COMPARED = (
    "http_checkins_per_s",
    "raw_tx_checkins_per_s",
    "e2e_p50_ms",
    "e2e_p99_ms",
    "e2e_missing",
    "kafka_rtt_p50_ms",
    "kafka_rtt_p99_ms",
    "idle_db_ops_per_s",
)


def _print_cluster(r: dict[str, Any]) -> None:
    c = r["cluster"]
    _say(
        f"scale-out: 3 brokers (RF 3, min.insync.replicas 2) and {c['worker_instances']}"
        " instances of every worker, next to one broker and one of each (same run)"
    )
    _say("figure                              3 brokers   1 broker")
    for key in _COMPARED:
        _say(f"{key:<36}{c[key]:>9.1f}   {r[key]:>8.1f}")


def _verdict(ok: bool) -> str:
    return "meets target" if ok else "MISSES target"


def _print(r: dict[str, Any]) -> None:
    share = r["http_share_of_raw"]
    _say("figure                              value      baseline (same run)")
    _say(
        f"check-ins/s via API, {r['clients']} clients   {r['http_checkins_per_s']:>7.1f}"
        f"    raw 1-tx script {r['raw_tx_checkins_per_s']:.1f}/s → {share:.0%}"
        f" ({_verdict(share >= TARGETS['throughput_share'])}: ≥ 60 %)"
    )
    _say(
        f"PUT → xp.awarded p50 ms              {r['e2e_p50_ms']:>7.1f}"
        f"    Kafka round trip p50 {r['kafka_rtt_p50_ms']:.1f} ms"
        f" ({_verdict(r['e2e_p50_ms'] <= TARGETS['e2e_p50_ms'])}: ≤ 25 ms)"
    )
    _say(
        f"PUT → xp.awarded p99 ms              {r['e2e_p99_ms']:>7.1f}"
        f"    Kafka round trip p99 {r['kafka_rtt_p99_ms']:.1f} ms"
        f" ({_verdict(r['e2e_p99_ms'] <= TARGETS['e2e_p99_ms'])}: ≤ 100 ms)"
    )
    h = r["e2e_hops"]
    _say(
        f"  where it went, p50 ms: PUT answered {h['put_answered_p50_ms']:.1f},"
        f" PUT → action.completed {h['put_to_action_completed_p50_ms']:.1f},"
        f" action.completed → xp.awarded {h['action_completed_to_xp_awarded_p50_ms']:.1f}"
    )
    _say(
        f"PUTs whose xp.awarded was not read     {r['e2e_missing']:>5}"
        f"    of {r['e2e_samples'] + r['e2e_missing']} sent (refused, or not read 30 s after)"
    )
    _say(
        f"database ops/s at rest ({r['idle_seconds']:g} s)        {r['idle_db_ops_per_s']:>7.2f}"
        f"    {r['idle_db_ops_by_kind']} ({_verdict(r['idle_db_ops_per_s'] <= TARGETS['idle'])}:"
        " ≤ 5)"
    )
