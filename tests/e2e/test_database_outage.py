"""The database hangs, goes away and comes back while check-ins flow: nothing dead-lettered, no
XP lost or doubled, the workers never fail their liveness probe for it (SPEC §11)."""

from __future__ import annotations

import asyncio
import re
import signal
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from mandaact_common.mongo import make_client
from mandaact_common.outbox import OUTBOX
from mandaact_contracts.topics import dead_letter_topic
from tests.e2e.helpers import auth, create_grid_and_wait_for_checklist, eventually, grid

pytestmark = pytest.mark.e2e

DEAD_LETTER_TOPICS = [dead_letter_topic(g) for g in ("checkins", "gamification", "reports")]
HUNG_SECONDS = 12.0
"""SIGSTOP first: connections stay open and every call hangs until its deadline. Two failed
tries (3 s deadline, 2 s ping each) take about 10 s: the consumer is paused before it ends."""
GONE_SECONDS = 4.0
"""Then stopped: connections are refused until the server is started again. A clean stop, not
SIGKILL: SecantusDB without `--sync-on-commit` may lose its last acknowledged commits when killed
(measured: 5 to 20 of 300), a storage loss no application can make up for."""
QUICK_BUDGET = {
    # The replacement gamification worker gives up quickly on each try, so the outage lasts
    # several times its whole retry budget (2 tries of 3 s) and the consumer must pause.
    # (With the defaults, 5 tries of 30 s, the same test would take minutes.)
    "MANDAACT_CONSUMER_RETRIES": "1",
    "MANDAACT_CONSUMER_BACKOFF": "0.2",
    "MANDAACT_CONSUMER_MAX_BACKOFF_S": "1",
    "MANDAACT_CONSUMER_BATCH_DEADLINE_S": "3",
    "MANDAACT_MONGO_TIMEOUT_MS": "2000",
    "MANDAACT_CONSUMER_BATCH": "5",  # a backlog of many small batches: one is in flight
}


async def _dead_letter_ends(bootstrap: str) -> dict[TopicPartition, int]:
    """The end offset of every partition of every dead-letter topic."""
    from mandaact_common.kafka import partitions_of

    parts = await partitions_of(bootstrap, DEAD_LETTER_TOPICS)
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await reader.start()
    try:
        ends: dict[TopicPartition, int] = await reader.end_offsets(parts)
        return ends
    finally:
        await reader.stop()


def _metric(text: str, name: str, labels: str) -> float:
    match = re.search(rf"^{name}\{{{labels}\}} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


@dataclass
class Credit:
    """What the ledger holds for one (action, date): its XP and the events it came from."""

    amount: int = 0
    events: set[str] = field(default_factory=set)


async def _ledger_checkins(
    http: httpx.AsyncClient, stack: Any, headers: dict[str, str]
) -> dict[tuple[str, str], Credit]:
    items: list[dict[str, Any]] = []
    before: int | None = None
    while True:
        params: dict[str, Any] = {"limit": 200}
        if before is not None:
            params["before"] = before
        page = await http.get(
            f"{stack.url('gamification')}/v1/me/xp-ledger", params=params, headers=headers
        )
        assert page.status_code == 200, page.text
        body = page.json()
        items += body["items"]
        before = body["next_before"]
        if before is None:
            break
    credits: dict[tuple[str, str], Credit] = {}
    for entry in items:
        if entry["reason"] == "checkin":
            credit = credits.setdefault((entry["action_id"], entry["local_date"]), Credit())
            credit.amount += entry["amount"]
            credit.events.add(entry["source_event_id"])
    return credits


async def test_a_database_outage_dead_letters_nothing_and_credits_every_check_in_once(
    stack: Any,
) -> None:
    from mandaact_devstack import free_port, wait_mongo_ready

    if stack.infra.mongo_mode != "local":
        pytest.skip("needs the local SecantusDB process, to hang and stop it")
    tenant = f"outage-{uuid.uuid4().hex[:6]}"
    users = [f"user{i}" for i in range(3)]
    per_user = {u: auth(tenant, u) for u in users}
    today = datetime.now(UTC).astimezone(ZoneInfo("Asia/Seoul")).date()
    bootstrap = stack.infra.bootstrap_servers
    metrics_port = free_port()
    probe = f"http://127.0.0.1:{metrics_port}"
    db_state = "up"
    async with httpx.AsyncClient(timeout=30) as http:
        actions = {
            u: await create_grid_and_wait_for_checklist(http, stack, h, grid(2, 8))
            for u, h in per_user.items()
        }

        async def check_in(user: str, action: str, day: date) -> None:
            """Retried until acknowledged (201, or 200: stored by an earlier try)."""
            deadline = time.monotonic() + 120
            while True:
                try:
                    r = await http.put(
                        f"{stack.url('checkins')}/v1/checkins/{action}",
                        params={"date": day.isoformat()},
                        headers=per_user[user],
                    )
                    if r.status_code in (200, 201):
                        return
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, f"check-in {action} {day} never acknowledged"
                await asyncio.sleep(0.5)

        async def flow(days: list[date]) -> None:
            sem = asyncio.Semaphore(6)

            async def one(job: tuple[str, str, date]) -> None:
                async with sem:
                    await check_in(*job)

            await asyncio.gather(*(one((u, a, d)) for u in users for a in actions[u] for d in days))

        dead_before = await _dead_letter_ends(bootstrap)
        # A backlog for gamification: check-ins stored and relayed while its worker is away.
        stack.kill("gamification", "worker")
        before_outage = [today, today - timedelta(days=1), today - timedelta(days=2)]
        during_outage = [today - timedelta(days=3)]
        try:
            await flow(before_outage)
            client = make_client(stack.infra.mongodb_url)
            try:
                checkins_db = client[stack.database("checkins")]
                await eventually(lambda: checkins_db[OUTBOX].count_documents({}), lambda n: n == 0)
            finally:
                await client.close()
            stack.start(
                "gamification",
                "worker",
                {**QUICK_BUDGET, "MANDAACT_WORKER_METRICS_PORT": str(metrics_port)},
            )

            async def metrics() -> str:
                try:
                    return (await http.get(f"{probe}/metrics", timeout=2)).text
                except httpx.HTTPError:
                    return ""

            applied = 'group="gamification",outcome="applied",topic="action.completed"'
            await eventually(
                metrics, lambda t: _metric(t, "mandaact_events_consumed_total", applied) > 0, 60
            )

            # The outage, with a batch in flight and check-ins still arriving.
            stack.infra.signal_mongodb(signal.SIGSTOP)
            db_state = "hung"
            arriving = asyncio.create_task(flow(during_outage))
            paused_seen = False
            live: list[int] = []

            async def watch(seconds: float) -> None:
                nonlocal paused_seen
                end = time.monotonic() + seconds
                while time.monotonic() < end:
                    text = await metrics()
                    paused_seen |= (
                        _metric(text, "mandaact_consumer_paused", 'group="gamification"') == 1
                    )
                    try:
                        live.append((await http.get(f"{probe}/livez", timeout=2)).status_code)
                    except httpx.HTTPError:
                        live.append(0)
                    await asyncio.sleep(0.25)

            await watch(HUNG_SECONDS)
            stack.infra.signal_mongodb(signal.SIGCONT)
            db_state = "up"
            await asyncio.sleep(1)  # (a SIGTERM right on a SIGCONT can hang SecantusDB's stop)
            await asyncio.to_thread(stack.infra.stop_mongodb)
            db_state = "gone"
            await watch(GONE_SECONDS)
            proc = stack.infra.restart_mongodb(wait=False)
            await wait_mongo_ready(stack.infra.mongodb_url, max_wait=60, proc=proc)
            db_state = "up"
            await asyncio.wait_for(arriving, 120)

            expected = {
                u: {(a, d.isoformat()) for a in actions[u] for d in before_outage + during_outage}
                for u in users
            }

            async def credited() -> dict[str, dict[tuple[str, str], Credit]]:
                return {u: await _ledger_checkins(http, stack, h) for u, h in per_user.items()}

            final = await credited()
            deadline = time.monotonic() + 120
            while any(set(final[u]) != expected[u] for u in users) and time.monotonic() < deadline:
                await asyncio.sleep(0.5)
                final = await credited()
            for user in users:
                missing = sorted(expected[user] - set(final[user]))
                assert not missing, f"{user}: acknowledged check-ins without XP: {missing}"
                # Credited once: by one check-in event. (A late check-in may change an earlier
                # award's multiplier; the ledger then appends a correction line of the same
                # event, which is not a second credit: docs/gamification-rules.md §7.)
                doubled = {k: c for k, c in final[user].items() if len(c.events) != 1}
                assert not doubled, f"{user}: check-ins credited by several events: {doubled}"
                lost = {k: c for k, c in final[user].items() if c.amount <= 0}
                assert not lost, f"{user}: check-ins whose XP was taken back: {lost}"
            assert paused_seen, (
                "the outage outlasted the retry budget, yet the consumer never paused"
            )
            assert live, "the probe was never read"
            assert set(live) == {200}, f"an outage must not fail liveness: {live}"
            assert stack.procs["gamification-worker"].alive()
            assert await _dead_letter_ends(bootstrap) == dead_before, "something was dead-lettered"
        finally:
            if db_state == "hung":
                stack.infra.signal_mongodb(signal.SIGCONT)
            elif db_state == "gone" or not stack.infra.mongo_process().alive():
                proc = stack.infra.restart_mongodb(wait=False)
                await wait_mongo_ready(stack.infra.mongodb_url, max_wait=60, proc=proc)
            # Leave the stack as the other tests expect it: the standard worker, every API ready.
            if "gamification-worker" in stack.procs:
                stack.kill("gamification", "worker")
            stack.start("gamification", "worker")

            async def all_ready() -> bool:
                for service in stack.ports:
                    try:
                        r = await http.get(f"{stack.url(service)}/readyz", timeout=5)
                    except httpx.HTTPError:
                        return False
                    if r.status_code != 200:
                        return False
                return True

            await eventually(all_ready, lambda ok: ok, 60)
