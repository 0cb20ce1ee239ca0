"""Outbox, relay, idempotent consumer and dead-letter topic against the real broker and server."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, date, datetime
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from prometheus_client import REGISTRY

from mandaact_common.consumer import (
    PROCESSED,
    IdempotentConsumer,
    Inbound,
    KafkaDeadLetterSink,
    RetryPolicy,
)
from mandaact_common.mongo import in_transaction
from mandaact_common.outbox import (
    API_KIND,
    OUTBOX,
    OutboxRelay,
    Transaction,
    make_producer,
    transact,
)
from mandaact_common.settings import ServiceSettings
from mandaact_common.testing import MemoryRecord, RecordingDeadLetters, record_of
from mandaact_common.worker import ConsumerSpec, WorkerDeps, WorkerSpec, build_broker
from mandaact_contracts import topics
from mandaact_contracts.envelope import encode_value, new_envelope, to_kafka_headers
from mandaact_contracts.events import ActionCompleted
from mandaact_contracts.topics import dead_letter_topic

pytestmark = pytest.mark.integration


def completed(tenant: str = "t1", user: str = "u1", action: str = "a1") -> ActionCompleted:
    return ActionCompleted(
        tenant_id=tenant,
        user_id=user,
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


def paused_gauge(group: str) -> float | None:
    return REGISTRY.get_sample_value("mandaact_consumer_paused", {"group": group})


async def count_effects(db: Any) -> int:
    return int(await db["effects"].count_documents({}))


def effect_handler() -> Any:
    async def handler(tx: Transaction, items: list[Inbound]) -> None:
        await tx.db["effects"].insert_many(
            [{"event": i.envelope.id} for i in items], session=tx.session
        )

    return handler


async def test_transaction_rolls_back_state_and_events_together(
    mongo_client: Any, unique_db_name: str
) -> None:
    db = mongo_client[unique_db_name]

    async def fails(tx: Transaction) -> None:
        await tx.db["things"].insert_one({"_id": 1}, session=tx.session)
        tx.emit(topics.ACTION_COMPLETED, completed())
        await tx.flush()
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await transact(mongo_client, db, "checkins", fails)
    assert await db["things"].count_documents({}) == 0
    assert await db[OUTBOX].count_documents({}) == 0

    async def works(tx: Transaction) -> None:
        await tx.db["things"].insert_one({"_id": 1}, session=tx.session)
        tx.emit(topics.ACTION_COMPLETED, completed())

    await transact(mongo_client, db, "checkins", works)
    assert await db["things"].count_documents({}) == 1
    assert await db[OUTBOX].count_documents({}) == 1


async def test_redelivered_event_changes_nothing(mongo_client: Any, unique_db_name: str) -> None:
    db = mongo_client[unique_db_name]
    sink = RecordingDeadLetters()
    consumer = IdempotentConsumer(
        group="g", client=mongo_client, db=db, handler=effect_handler(), dead_letters=sink
    )
    rec = record_of(completed())
    await consumer.process([rec, rec])  # duplicate inside one batch
    await consumer.process([rec])  # and again in a later batch
    assert await count_effects(db) == 1
    assert await db[PROCESSED].count_documents({}) == 1
    assert sink.sent == []


async def test_poison_record_is_dead_lettered_and_the_rest_applied(
    mongo_client: Any, unique_db_name: str
) -> None:
    db = mongo_client[unique_db_name]
    sink = RecordingDeadLetters()
    consumer = IdempotentConsumer(
        group="g", client=mongo_client, db=db, handler=effect_handler(), dead_letters=sink
    )
    bad = MemoryRecord(topics.ACTION_COMPLETED, 0, 1, b"k", b"{not json", [("ce_id", b"x")])
    await consumer.process(
        [record_of(completed(), offset=0), bad, record_of(completed(), offset=2)]
    )
    assert await count_effects(db) == 2
    assert [r.offset for r, _ in sink.sent] == [1]


async def test_a_record_that_fails_for_its_own_reason_is_isolated_and_dead_lettered(
    mongo_client: Any, unique_db_name: str
) -> None:
    db = mongo_client[unique_db_name]
    sink = RecordingDeadLetters()
    poison_action = "poison"
    calls = 0

    async def handler(tx: Transaction, items: list[Inbound]) -> None:
        nonlocal calls
        calls += 1
        if any(getattr(i.payload, "action_id", "") == poison_action for i in items):
            raise ValueError("a rule this event breaks, however often it is tried")
        await tx.db["effects"].insert_many(
            [{"event": i.envelope.id} for i in items], session=tx.session
        )

    consumer = IdempotentConsumer(
        group="g",
        client=mongo_client,
        db=db,
        handler=handler,
        dead_letters=sink,
        max_retries=2,
        backoff_seconds=0.01,
    )
    records = [
        record_of(completed(action="ok1"), offset=0),
        record_of(completed(action=poison_action), offset=1),
        record_of(completed(action="ok2"), offset=2),
    ]
    await consumer.process(records)
    assert await count_effects(db) == 2
    assert [r.offset for r, _ in sink.sent] == [1]
    assert isinstance(sink.sent[0][1], ValueError)
    # the batch once, then ok1, the poison record (once: its error is its own), ok2
    assert calls == 1 + 1 + 1 + 1


async def test_a_transient_failure_is_waited_out_past_the_retries_and_never_dead_lettered(
    mongo_client: Any, unique_db_name: str
) -> None:
    db = mongo_client[unique_db_name]
    sink = RecordingDeadLetters()
    failures_left = 7
    calls = 0

    async def handler(tx: Transaction, items: list[Inbound]) -> None:
        nonlocal calls, failures_left
        calls += 1
        if failures_left:
            failures_left -= 1
            raise ConnectionError("the database is not there yet")
        await tx.db["effects"].insert_many(
            [{"event": i.envelope.id} for i in items], session=tx.session
        )

    pauses: list[tuple[float, bool]] = []

    async def wait(seconds: float) -> None:
        pauses.append((seconds, paused_gauge("g-wait") == 1))

    consumer = IdempotentConsumer(
        group="g-wait",
        client=mongo_client,
        db=db,
        handler=handler,
        dead_letters=sink,
        policy=RetryPolicy(retries=2, backoff_seconds=0.01, max_backoff_seconds=0.04),
    )
    await consumer.process([record_of(completed(), offset=i) for i in range(3)], wait=wait)
    assert await count_effects(db) == 3
    assert sink.sent == []
    assert calls == 8
    # capped exponential backoff; paused (gauge 1) once the 2 quick retries were used up
    assert [s for s, _ in pauses] == [0.01, 0.02, 0.04, 0.04, 0.04, 0.04, 0.04]
    assert [paused for _, paused in pauses] == [False, False, True, True, True, True, True]
    assert paused_gauge("g-wait") == 0


async def test_a_batch_past_its_deadline_is_split_while_the_database_answers(
    mongo_client: Any, unique_db_name: str
) -> None:
    db = mongo_client[unique_db_name]
    sink = RecordingDeadLetters()
    sizes: list[int] = []

    async def handler(tx: Transaction, items: list[Inbound]) -> None:
        sizes.append(len(items))
        if len(items) > 2:
            await asyncio.sleep(5)  # too slow for the deadline: only small batches get through
        await tx.db["effects"].insert_many(
            [{"event": i.envelope.id} for i in items], session=tx.session
        )

    consumer = IdempotentConsumer(
        group="g-split",
        client=mongo_client,
        db=db,
        handler=handler,
        dead_letters=sink,
        policy=RetryPolicy(batch_deadline_seconds=0.3),
    )
    await consumer.process([record_of(completed(), offset=i) for i in range(8)])
    assert await count_effects(db) == 8
    assert sink.sent == []
    assert sizes == [8, 4, 2, 2, 4, 2, 2]


async def _create_topics(bootstrap: str, names: list[str]) -> None:
    from mandaact_devstack import create_topics

    await create_topics(bootstrap, dict.fromkeys(names, 3))


async def _read(bootstrap: str, topic: str, n: int, wait_seconds: float = 30.0) -> list[Any]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"reader-{uuid.uuid4().hex}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    out: list[Any] = []
    try:
        deadline = asyncio.get_running_loop().time() + wait_seconds
        while len(out) < n and asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                out.extend(records)
    finally:
        await consumer.stop()
    return out


async def test_relay_publishes_cloudevents_with_the_user_key(
    infra: Any, mongo_client: Any, unique_db_name: str
) -> None:
    topic = topics.ACTION_COMPLETED
    await _create_topics(infra.bootstrap_servers, [topic])
    db = mongo_client[unique_db_name]
    payload = completed(tenant=f"t-{uuid.uuid4().hex[:6]}")

    async def work(tx: Transaction) -> str:
        return tx.emit(topic, payload, subject=payload.action_id).id

    event_id = await transact(mongo_client, db, "checkins", work)
    producer = make_producer(infra.bootstrap_servers, "test-relay")
    await producer.start()
    try:
        assert await OutboxRelay(db, producer, "checkins").publish_pending() == 1
    finally:
        await producer.stop()
    assert await db[OUTBOX].count_documents({}) == 0
    records = [
        r
        for r in await _read(infra.bootstrap_servers, topic, 10_000, wait_seconds=5)
        if dict(r.headers).get("ce_id") == event_id.encode()
    ]
    assert len(records) == 1
    headers = dict(records[0].headers)
    assert records[0].key == f"{payload.tenant_id}:u1".encode()
    assert headers["ce_specversion"] == b"1.0"
    assert headers["ce_type"] == b"mandaact.action.completed.v1"
    assert headers["ce_source"] == b"checkins"
    assert headers["ce_tenantid"] == payload.tenant_id.encode()
    assert headers["content-type"] == b"application/json"
    assert "traceparent" in headers
    assert json.loads(records[0].value)["action_id"] == "a1"


async def test_malformed_message_goes_to_the_dead_letter_topic_and_consumer_moves_on(
    infra: Any, mongo_client: Any, unique_db_name: str
) -> None:
    """Through the real FastStream subscriber: MANUAL ack, DLT with error headers, next one ok."""
    group = f"dlt-test-{uuid.uuid4().hex[:6]}"
    topic = f"test.{group}"
    await _create_topics(infra.bootstrap_servers, [topic, dead_letter_topic(group)])
    db = mongo_client[unique_db_name]
    settings = ServiceSettings(
        env="test",
        kafka_bootstrap_servers=infra.bootstrap_servers,
        mongodb_url=infra.mongodb_url,
        mongodb_database=unique_db_name,
    )
    producer = make_producer(infra.bootstrap_servers, "test")
    await producer.start()
    spec = WorkerSpec(
        service="test", consumers=(ConsumerSpec(group, (topic,), lambda _d: effect_handler()),)
    )
    deps = WorkerDeps(settings=settings, client=mongo_client, db=db, producer=producer)
    consumers = {
        group: IdempotentConsumer(
            group=group,
            client=mongo_client,
            db=db,
            handler=spec.consumers[0].handler(deps),
            dead_letters=KafkaDeadLetterSink(producer, group),
        )
    }
    broker = build_broker(spec, settings, consumers)
    await broker.start()
    try:
        raw = AIOKafkaProducer(bootstrap_servers=infra.bootstrap_servers)
        await raw.start()
        try:
            await raw.send_and_wait(topic, b"\x00 definitely not json", key=b"t:u")
            good = new_envelope(topics.ACTION_COMPLETED, completed(), "checkins")
            await raw.send_and_wait(
                topic, encode_value(good), key=b"t:u", headers=to_kafka_headers(good)
            )
        finally:
            await raw.stop()
        dead = await _read(infra.bootstrap_servers, dead_letter_topic(group), 1)
        assert len(dead) == 1
        headers = dict(dead[0].headers)
        assert headers["dlt_error_type"] == b"InvalidEvent"
        assert headers["dlt_original_topic"] == topic.encode()
        assert dead[0].value == b"\x00 definitely not json"
        for _ in range(100):
            if await count_effects(db) == 1:
                break
            await asyncio.sleep(0.1)
        assert await count_effects(db) == 1
    finally:
        await broker.stop()
        await producer.stop()


async def test_relay_renews_its_lease_only_when_half_of_it_is_left(
    mongo_client: Any, unique_db_name: str
) -> None:
    db = mongo_client[unique_db_name]
    now = [0.0]
    writes: list[float] = []

    class Counted(OutboxRelay):
        async def _hold_lease(self) -> bool:
            writes.append(now[0])
            return await super()._hold_lease()

    relay = Counted(db, Any, "lease", lease_seconds=10.0, clock=lambda: now[0])
    other = OutboxRelay(db, Any, "lease", lease_seconds=10.0)
    for t in (0.0, 0.05, 1.0, 4.9):
        now[0] = t
        assert await relay.ensure_lease()
    assert writes == [0.0]  # one write for the first five seconds of polls
    assert not await other.ensure_lease()  # held: the other relay never publishes
    now[0] = 5.1
    assert await relay.ensure_lease()
    now[0] = 9.0
    assert await relay.ensure_lease()
    assert writes == [0.0, 5.1]


class ReadCounting(OutboxRelay):
    """A relay that notes each read of the outbox collection (`publish_pending`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reads: list[str] = []

    async def publish_pending(self, rows_of: Any = None) -> int:
        self.reads.append("publish")
        return await super().publish_pending(rows_of)


async def _wait_published(db: Any, seconds: float) -> float:
    t0 = asyncio.get_running_loop().time()
    while await db[OUTBOX].count_documents({}):
        assert asyncio.get_running_loop().time() - t0 < seconds, "not published in time"
        await asyncio.sleep(0.01)
    return asyncio.get_running_loop().time() - t0


async def test_relay_is_woken_by_a_commit_in_its_process_not_by_its_poll(
    infra: Any, mongo_client: Any, unique_db_name: str
) -> None:
    topic = topics.ACTION_COMPLETED
    await _create_topics(infra.bootstrap_servers, [topic])
    db = mongo_client[unique_db_name]
    producer = make_producer(infra.bootstrap_servers, "test-relay-wake")
    await producer.start()
    relay = OutboxRelay(db, producer, "wake", poll_seconds=30.0, watch=False)
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        await asyncio.sleep(0.5)  # the first (empty) round is over: the relay waits 30 s

        async def work(tx: Transaction) -> None:
            tx.emit(topic, completed(tenant=f"t-{uuid.uuid4().hex[:6]}"))

        await transact(mongo_client, db, "checkins", work)
        assert await _wait_published(db, 5.0) < 1.0
    finally:
        stop.set()
        await task
        await producer.stop()


async def test_relay_is_woken_by_the_change_stream_for_another_process_commit(
    infra: Any, mongo_client: Any, unique_db_name: str
) -> None:
    topic = topics.ACTION_COMPLETED
    await _create_topics(infra.bootstrap_servers, [topic])
    db = mongo_client[unique_db_name]
    await db.create_collection(OUTBOX)
    producer = make_producer(infra.bootstrap_servers, "test-relay-watch")
    await producer.start()
    relay = OutboxRelay(db, producer, "watch", poll_seconds=30.0)
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        for _ in range(100):
            if relay.watching:
                break
            await asyncio.sleep(0.05)
        assert relay.watching, "SecantusDB has change streams; the relay should watch"
        await asyncio.sleep(0.5)  # the wake-up of the stream's opening is spent

        async def raw(session: Any) -> None:
            # As another process would: rows committed without this process's signal.
            tx = Transaction(session=session, db=db, source="checkins")
            tx.emit(topic, completed(tenant=f"t-{uuid.uuid4().hex[:6]}"))
            await tx.flush()

        await in_transaction(mongo_client, raw)
        assert await _wait_published(db, 5.0) < 1.0
    finally:
        stop.set()
        await task
        await producer.stop()


async def test_each_process_publishes_its_own_rows_and_a_worker_sweeps_what_none_will(
    infra: Any, mongo_client: Any, unique_db_name: str
) -> None:
    topic = topics.ACTION_COMPLETED
    await _create_topics(infra.bootstrap_servers, [topic])
    db = mongo_client[unique_db_name]
    producer = make_producer(infra.bootstrap_servers, "test-relay-sweep")
    await producer.start()
    try:

        async def row(session: Any) -> None:  # no relay in "this" process: an unmarked row
            tx = Transaction(session=session, db=db, source="checkins")
            tx.emit(topic, completed(tenant=f"t-{uuid.uuid4().hex[:6]}"))
            await tx.flush()

        await in_transaction(mongo_client, row)
        await in_transaction(mongo_client, row)
        first = await db[OUTBOX].find_one({}, sort=[("created_at", 1), ("_id", 1)])
        # The other row was written by a process whose relay is still young: not swept yet.
        await db[OUTBOX].update_one({"_id": {"$ne": first["_id"]}}, {"$set": {"by": "other"}})
        api = OutboxRelay(db, producer, "checkins", kind=API_KIND)
        worker = OutboxRelay(db, producer, "checkins", sweep_after_seconds=1.5)
        assert await api.publish_pending() == 0  # an API relay publishes its own rows only
        assert await worker.publish_pending() == 1  # the unmarked row, at once
        assert await db[OUTBOX].count_documents({}) == 1
        await asyncio.sleep(1.6)
        assert await worker.publish_pending() == 1  # its writer died: swept once old enough
        assert await db[OUTBOX].count_documents({}) == 0
    finally:
        await producer.stop()


async def test_an_api_relay_publishes_its_process_commits_as_handed_over_and_polls_nothing(
    infra: Any, mongo_client: Any, unique_db_name: str
) -> None:
    """Idle, the relay makes no read; rows committed by its process reach Kafka without it
    reading the outbox back, each once, a user's in commit order, also when commits come
    faster than its rounds."""
    topic = topics.ACTION_COMPLETED
    await _create_topics(infra.bootstrap_servers, [topic])
    db = mongo_client[unique_db_name]
    producer = make_producer(infra.bootstrap_servers, "test-api-relay")
    await producer.start()
    relay = ReadCounting(db, producer, "checkins", kind=API_KIND, poll_seconds=0.1, watch=False)
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    tenant = f"t-{uuid.uuid4().hex[:6]}"
    sent: dict[str, list[str]] = {}
    try:
        await asyncio.sleep(0.5)  # five idle polls after the first round
        assert relay.reads == ["publish"]  # only the start-up round read the outbox

        async def commit(user: str) -> None:
            event = completed(tenant=tenant, user=user)

            async def work(tx: Transaction) -> None:
                tx.emit(topic, event)

            await transact(mongo_client, db, "checkins", work)
            sent.setdefault(user, []).append(event.checkin_id)

        for _ in range(4):  # one user, one commit after another
            await commit("u-seq")
        await asyncio.gather(*(commit(f"u-{k}") for k in range(6)))  # at once, many rounds
        assert await _wait_published(db, 5.0) < 1.0
        assert (await db[OUTBOX].count_documents({})) == 0
        records = await _read(infra.bootstrap_servers, topic, 10**6, wait_seconds=3.0)
    finally:
        stop.set()
        await task
        await producer.stop()
    got: dict[str, list[str]] = {}
    for record in records:
        data = json.loads(record.value)
        if data["tenant_id"] == tenant:
            got.setdefault(data["user_id"], []).append(data["checkin_id"])
    assert got == sent  # every event once; the sequential user's in commit order
    assert relay.reads == ["publish"]  # still only the start-up round's read


async def test_a_gathering_group_folds_trickling_events_in_fewer_batches(
    infra: Any, mongo_client: Any, unique_db_name: str
) -> None:
    """Through the real subscriber: events that come 40 ms apart are handled one batch each by
    a group that handles a lone event at once, and a few at a time by one that may gather."""
    topic = f"test.gather-{uuid.uuid4().hex[:6]}"
    await _create_topics(infra.bootstrap_servers, [topic])
    settings = ServiceSettings(
        env="test",
        kafka_bootstrap_servers=infra.bootstrap_servers,
        mongodb_url=infra.mongodb_url,
        mongodb_database=unique_db_name,
    )
    batches: dict[str, list[int]] = {"at-once": [], "gathering": []}

    def counting(name: str) -> Any:
        async def handler(tx: Transaction, items: list[Inbound]) -> None:
            batches[name].append(len(items))

        return lambda _deps: handler

    groups = {f"{name}-{uuid.uuid4().hex[:6]}": name for name in batches}
    spec = WorkerSpec(
        service="test",
        consumers=tuple(
            ConsumerSpec(
                group,
                (topic,),
                counting(name),
                gather_ms=400 if name == "gathering" else 0,
            )
            for group, name in groups.items()
        ),
    )
    producer = make_producer(infra.bootstrap_servers, "test-gather")
    await producer.start()
    deps = WorkerDeps(
        settings=settings, client=mongo_client, db=mongo_client[unique_db_name], producer=producer
    )
    consumers = {
        c.group: IdempotentConsumer(
            group=c.group,
            client=mongo_client,
            db=mongo_client[f"{unique_db_name}_{groups[c.group]}"],
            handler=c.handler(deps),
            dead_letters=RecordingDeadLetters(),
        )
        for c in spec.consumers
    }
    broker = build_broker(spec, settings, consumers)
    await broker.start()
    raw = AIOKafkaProducer(bootstrap_servers=infra.bootstrap_servers)
    await raw.start()

    async def send() -> None:
        event = new_envelope(topics.ACTION_COMPLETED, completed(), "checkins")
        await raw.send_and_wait(
            topic, encode_value(event), key=b"t:u", headers=to_kafka_headers(event)
        )

    async def handled(n: int) -> None:
        for _ in range(300):
            if all(sum(b) >= n for b in batches.values()):
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"not all handled: {batches}")

    try:
        await send()  # both groups have joined once they handled this one
        await handled(1)
        for name in batches:
            batches[name].clear()
        for _ in range(8):
            await send()
            await asyncio.sleep(0.04)
        await handled(8)
    finally:
        await raw.stop()
        await broker.stop()
        await producer.stop()
        for name in batches:
            await mongo_client.drop_database(f"{unique_db_name}_{name}")
    assert len(batches["at-once"]) >= 5, batches
    assert len(batches["gathering"]) <= 3, batches
