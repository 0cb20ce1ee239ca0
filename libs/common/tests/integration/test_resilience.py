"""Delivery when a dependency is down, slow or one row is bad: real SecantusDB and real Kafka.

A dedicated SecantusDB process is hung, killed and restarted here, so the session's shared
server is never disturbed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client import REGISTRY

from mandaact_common.consumer import (
    PROCESSED,
    PROCESSED_TTL_INDEX,
    IdempotentConsumer,
    Inbound,
    RetryPolicy,
    ensure_delivery_indexes,
    ensure_processed_ttl,
)
from mandaact_common.mongo import make_client
from mandaact_common.outbox import (
    OUTBOX,
    OUTBOX_EVENTS,
    OUTBOX_PARKED,
    OutboxRelay,
    Transaction,
    make_producer,
    requeue_parked,
    transact,
)
from mandaact_common.settings import ServiceSettings
from mandaact_common.testing import RecordingDeadLetters, record_of
from mandaact_common.worker import ConsumerSpec, WorkerSpec, build_broker
from mandaact_contracts import topics
from mandaact_contracts.envelope import encode_value, new_envelope, to_kafka_headers
from mandaact_contracts.events import ActionCompleted
from mandaact_contracts.topics import dead_letter_topic

pytestmark = pytest.mark.integration


def completed(action: str = "a1", tenant: str = "t1") -> ActionCompleted:
    return ActionCompleted(
        tenant_id=tenant,
        user_id="u1",
        checkin_id=str(uuid.uuid4()),
        action_id=action,
        mandalart_id="m1",
        sub_goal_position=1,
        sub_goal_title="Event flows",
        action_title="Draw the flow",
        action_type="routine",
        local_date=date(2026, 11, 24),
        timezone="Asia/Seoul",
        occurred_at=datetime(2026, 11, 24, 3, 0, tzinfo=UTC),
        seq=1,
    )


async def store_effects(tx: Transaction, items: list[Inbound]) -> None:
    await tx.db["effects"].insert_many(
        [{"event": i.envelope.id} for i in items], session=tx.session
    )


def sample(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@dataclass
class Secantus:
    """A SecantusDB process of this module's own, to hang, kill and restart."""

    storage: Path
    port: int
    proc: Any

    @property
    def url(self) -> str:
        from mandaact_devstack import mongodb_url

        return mongodb_url("127.0.0.1", self.port)

    def signal(self, sig: signal.Signals) -> None:
        os.killpg(self.proc.pid, sig)

    def kill(self) -> None:
        from mandaact_devstack import wait_port_closed

        self.signal(signal.SIGKILL)
        self.proc.popen.wait(timeout=10)
        assert wait_port_closed("127.0.0.1", self.port, timeout=10)

    async def restart(self) -> None:
        from mandaact_devstack import start_secantus, wait_mongo_ready

        # Spawned from this (the main) thread, waited for without blocking the loop.
        self.proc = start_secantus(self.storage, port=self.port, die_with_parent=True, wait=False)
        await wait_mongo_ready(self.url, max_wait=60, proc=self.proc)


@pytest.fixture(scope="module")
def secantus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secantus]:
    from mandaact_devstack import free_port, start_secantus

    storage = tmp_path_factory.mktemp("secantus") / "data"
    port = free_port()
    server = Secantus(storage, port, start_secantus(storage, port=port, die_with_parent=True))
    try:
        yield server
    finally:
        server.proc.stop()


@pytest.fixture
async def own_client(secantus: Secantus) -> AsyncIterator[Any]:
    client = make_client(secantus.url, timeout_ms=1500)
    try:
        yield client
    finally:
        await client.close()


async def test_a_database_down_longer_than_the_retry_budget_dead_letters_nothing(
    secantus: Secantus, own_client: Any
) -> None:
    """Hung (SIGSTOP), then gone (SIGKILL), then back: the batch waits and is applied once."""
    db = own_client[f"t_{uuid.uuid4().hex[:12]}"]
    await ensure_delivery_indexes(db)
    sink = RecordingDeadLetters()
    group = f"outage-{uuid.uuid4().hex[:6]}"
    policy = RetryPolicy(
        retries=1,
        backoff_seconds=0.1,
        max_backoff_seconds=0.5,
        batch_deadline_seconds=1.0,
        probe_seconds=0.5,
    )
    consumer = IdempotentConsumer(
        group=group,
        client=own_client,
        db=db,
        handler=store_effects,
        dead_letters=sink,
        policy=policy,
    )
    records = [record_of(completed(), offset=i) for i in range(6)]
    await consumer.process(records[:3])  # warm: connections open, sessions in use

    secantus.signal(signal.SIGSTOP)
    restarted = False
    try:
        waiting = asyncio.create_task(consumer.process(records))
        paused_seen = False
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            paused_seen |= sample("mandaact_consumer_paused", {"group": group}) == 1
            await asyncio.sleep(0.1)
        secantus.kill()  # from hung to refusing connections
        await asyncio.sleep(2)
        paused_seen |= sample("mandaact_consumer_paused", {"group": group}) == 1
        assert not waiting.done(), "the batch gave up while the database was down"
        await secantus.restart()
        restarted = True
        await asyncio.wait_for(waiting, 60)
    finally:
        if not restarted:
            secantus.signal(signal.SIGCONT)
    assert paused_seen, "the outage outlasted the retries but the consumer never paused"
    assert sample("mandaact_consumer_paused", {"group": group}) == 0
    assert sink.sent == []
    assert await db["effects"].count_documents({}) == 6
    assert await db[PROCESSED].count_documents({}) == 6
    assert sample("mandaact_consumer_retries_total", {"group": group, "reason": "deadline"}) > 0


async def test_processed_ids_get_a_ttl_index_that_a_new_setting_changes_and_that_expires(
    own_client: Any,
) -> None:
    db = own_client[f"t_{uuid.uuid4().hex[:12]}"]
    await ensure_processed_ttl(db, 14 * 24 * 3600)
    await ensure_processed_ttl(db, 14 * 24 * 3600)  # a second start changes nothing
    indexes = await db[PROCESSED].index_information()
    assert indexes[PROCESSED_TTL_INDEX]["key"] == [("at", 1)]
    assert indexes[PROCESSED_TTL_INDEX]["expireAfterSeconds"] == 14 * 24 * 3600

    await ensure_processed_ttl(db, 60)  # another setting: the index is changed in place
    indexes = await db[PROCESSED].index_information()
    assert indexes[PROCESSED_TTL_INDEX]["expireAfterSeconds"] == 60

    now = datetime.now(UTC)
    await db[PROCESSED].insert_many(
        [{"_id": "g:old", "at": now - timedelta(hours=1)}, {"_id": "g:new", "at": now}]
    )
    # SecantusDB sweeps expired documents every 60 s, as mongod does; its admin command runs a
    # sweep now.
    assert (await own_client.admin.command({"secantusAdmin.pruneTtl": 1}))["pruned"] >= 1
    assert [d["_id"] for d in await db[PROCESSED].find({}).to_list()] == ["g:new"]


async def test_every_service_start_creates_the_ttl_index(
    mongo_client: Any, unique_db_name: str
) -> None:
    """The worker and the API both call ensure_delivery_indexes with the setting."""
    settings = ServiceSettings(env="test", processed_ttl_seconds=7200)
    db = mongo_client[unique_db_name]
    await ensure_delivery_indexes(db, processed_ttl_seconds=settings.processed_ttl_seconds)
    indexes = await db[PROCESSED].index_information()
    assert indexes[PROCESSED_TTL_INDEX]["expireAfterSeconds"] == 7200
    assert ServiceSettings(env="test").processed_ttl_seconds == 14 * 24 * 3600


async def _read(bootstrap: str, topic: str, wait_seconds: float) -> list[Any]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    out: list[Any] = []
    try:
        deadline = time.monotonic() + wait_seconds
        while time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=300)).values():
                out.extend(records)
    finally:
        await consumer.stop()
    return out


async def test_a_row_that_cannot_be_published_is_parked_and_the_rows_behind_it_go_on(
    infra: Any, mongo_client: Any, unique_db_name: str
) -> None:
    from mandaact_devstack import create_topics

    topic = f"test.relay.{uuid.uuid4().hex[:6]}"
    await create_topics(infra.bootstrap_servers, {topic: 1})
    db = mongo_client[unique_db_name]
    tenant = f"t-{uuid.uuid4().hex[:6]}"

    async def emit(action: str) -> str:
        async def work(tx: Transaction) -> str:
            return tx.emit(topics.ACTION_COMPLETED, completed(action, tenant)).id

        return await transact(mongo_client, db, "checkins", work)

    first, poison, last = await emit("first"), await emit("poison"), await emit("last")
    # Route the three events to the test topic; make the middle one too large for Kafka.
    for row in await db[OUTBOX_EVENTS].find({}).to_list():
        events = row["events"]
        for event in events:
            event["topic"] = topic
            if event["id"] == poison:
                event["value"] = b"x" * 2_000_000
        await db[OUTBOX_EVENTS].update_one({"_id": row["_id"]}, {"$set": {"events": events}})

    producer = make_producer(infra.bootstrap_servers, "test-relay")
    await producer.start()
    relay = OutboxRelay(db, producer, "checkins-parking", max_attempts=3)
    rounds = 0
    try:
        while await db[OUTBOX].count_documents({}) and rounds < 10:
            rounds += 1
            with contextlib.suppress(Exception):  # a round that stops at the failing row
                await relay.publish_pending()
    finally:
        await producer.stop()
    assert await db[OUTBOX].count_documents({}) == 0
    parked = await db[OUTBOX_PARKED].find({}).to_list()
    assert len(parked) == 1
    assert parked[0]["attempts"] == 3
    assert parked[0]["last_error_type"] == "MessageSizeTooLargeError"
    assert parked[0]["topics"] == [topic]
    assert parked[0]["tenant_id"] == tenant
    assert [e["id"] for e in parked[0]["events"]] == [poison]
    assert sample("mandaact_outbox_parked", {"service": "checkins-parking"}) == 1
    published = [
        dict(r.headers)["ce_id"].decode() for r in await _read(infra.bootstrap_servers, topic, 3)
    ]
    # In order; the round that failed may have sent `first` already (consumers drop repeats).
    assert list(dict.fromkeys(published)) == [first, last]

    row = parked[0]["_id"]
    assert await requeue_parked(db, row)  # an operator puts it back once it is fixed
    assert await db[OUTBOX_PARKED].count_documents({}) == 0
    assert [r["_id"] for r in await db[OUTBOX].find({}).to_list()] == [row]
    [back] = await db[OUTBOX_EVENTS].find({"_id": row}).to_list()
    assert [e["id"] for e in back["events"]] == [poison]


class CountingConsumer(IdempotentConsumer):
    """Counts the records FastStream hands over (a redelivered batch would count twice)."""

    delivered = 0

    async def process(self, records: Any, *, wait: Any = None) -> None:
        CountingConsumer.delivered += len(records)
        await super().process(records, wait=wait)


async def test_a_batch_waiting_past_max_poll_interval_keeps_its_group_membership(
    infra: Any, mongo_client: Any, unique_db_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Through the real FastStream subscriber: the batch waits 8 s, the member may idle 3 s."""
    from mandaact_devstack import create_topics

    caplog.set_level(logging.INFO, logger="aiokafka.consumer.group_coordinator")

    group = f"keeper-{uuid.uuid4().hex[:6]}"
    topic = f"test.{group}"
    await create_topics(infra.bootstrap_servers, {topic: 1, dead_letter_topic(group): 1})
    db = mongo_client[unique_db_name]
    down_until = 0.0

    async def handler(tx: Transaction, items: list[Inbound]) -> None:
        if time.monotonic() < down_until:
            raise ConnectionError("the database is away")
        await store_effects(tx, items)

    settings = ServiceSettings(
        env="test",
        kafka_bootstrap_servers=infra.bootstrap_servers,
        mongodb_url=infra.mongodb_url,
        mongodb_database=unique_db_name,
    )
    sink = RecordingDeadLetters()
    CountingConsumer.delivered = 0
    consumers = {
        group: CountingConsumer(
            group=group,
            client=mongo_client,
            db=db,
            handler=handler,
            dead_letters=sink,
            policy=RetryPolicy(retries=1, backoff_seconds=0.2, max_backoff_seconds=0.5),
        )
    }
    spec = WorkerSpec(
        service="test", consumers=(ConsumerSpec(group, (topic,), lambda _d: handler),)
    )
    stop = asyncio.Event()
    broker = build_broker(spec, settings, consumers, stop, max_poll_interval_ms=3000)
    await broker.start()
    raw = AIOKafkaProducer(bootstrap_servers=infra.bootstrap_servers)
    await raw.start()
    try:
        down_until = time.monotonic() + 8
        for _ in range(5):
            envelope = new_envelope(topics.ACTION_COMPLETED, completed(), "checkins")
            await raw.send_and_wait(
                topic, encode_value(envelope), key=b"t:u", headers=to_kafka_headers(envelope)
            )
        for _ in range(300):
            if await db["effects"].count_documents({}) == 5:
                break
            await asyncio.sleep(0.1)
        assert await db["effects"].count_documents({}) == 5
        assert time.monotonic() >= down_until
        admin = AIOKafkaAdminClient(bootstrap_servers=infra.bootstrap_servers)
        await admin.start()
        try:
            for _ in range(50):
                offsets = await admin.list_consumer_group_offsets(group)
                if [m.offset for m in offsets.values()] == [5]:
                    break
                await asyncio.sleep(0.1)
        finally:
            await admin.close()
        assert [m.offset for m in offsets.values()] == [5]
        # (read before the shutdown, which leaves the group)
        coordinator = [r.getMessage() for r in caplog.records if "group_coordinator" in r.name]
    finally:
        stop.set()
        await raw.stop()
        await broker.stop()
    # A member idle past max.poll.interval.ms leaves the group and joins again as a new one.
    assert not [m for m in coordinator if "LeaveGroup" in m], coordinator
    assert len([m for m in coordinator if m.startswith("Joined group")]) == 1, coordinator
    assert CountingConsumer.delivered == 5
    assert sink.sent == []
