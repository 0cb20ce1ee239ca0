"""Ops against the real broker and database: letters the real sink wrote are listed, redriven
with their event id, no longer listed; lag follows commits; the tail sees new events."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from pymongo import AsyncMongoClient

from mandaact_common.consumer import KafkaDeadLetterSink
from mandaact_common.domain.owner import Owner
from mandaact_common.mongo import Doc
from mandaact_common.outbox import make_producer
from mandaact_common.testing import MemoryRecord
from mandaact_contracts.topics import dead_letter_topic
from ops.domain.model import Selection
from ops.kafka import KafkaOps
from ops.service import OpsService
from ops.settings import Settings
from ops.store.mongo import AUDIT, MongoOpsStore, ensure_indexes
from services.ops.tests.support import FakeProbes

pytestmark = pytest.mark.integration

OPERATOR = Owner("platform", "olga")


@pytest.fixture
def names() -> tuple[str, str]:
    """A group and topic of this test's own (the session's other tests use the real ones)."""
    tag = uuid.uuid4().hex[:8]
    return f"opsit-{tag}", f"opsit-{tag}.events"


@pytest.fixture
async def kafka(infra: Any, names: tuple[str, str]) -> AsyncIterator[KafkaOps]:
    from mandaact_devstack import create_topics

    group, topic = names
    await create_topics(infra.bootstrap_servers, {topic: 1, dead_letter_topic(group): 2})
    ops = KafkaOps(Settings(env="test", kafka_bootstrap_servers=infra.bootstrap_servers))
    yield ops
    await ops.close()


@pytest.fixture
async def service(
    kafka: KafkaOps,
    mongo_client: AsyncMongoClient[Doc],
    unique_db_name: str,
    names: tuple[str, str],
) -> AsyncIterator[OpsService]:
    db = mongo_client[unique_db_name]
    await ensure_indexes(db, handled_ttl_seconds=3600)
    group, topic = names
    yield OpsService(
        MongoOpsStore(mongo_client, db),
        kafka,
        kafka,
        FakeProbes(),
        kafka,
        services={},
        groups={group: (topic,)},
    )
    await mongo_client.drop_database(unique_db_name)


async def _dead_letter(bootstrap: str, group: str, topic: str, ce_id: str, offset: int) -> None:
    producer = make_producer(bootstrap, "opsit")
    await producer.start()
    try:
        record = MemoryRecord(
            topic,
            0,
            offset,
            b"acme:alice",
            b'{"action_id": 1}',
            [("ce_id", ce_id.encode()), ("ce_tenantid", b"acme"), ("ce_type", b"t.v1")],
        )
        await KafkaDeadLetterSink(producer, group).send(record, ValueError("bad action"), 1)
    finally:
        await producer.stop()


async def _read_all(bootstrap: str, topic: str, want: int) -> list[Any]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    seen: list[Any] = []
    try:
        async with asyncio.timeout(30):
            while len(seen) < want:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    seen.extend(records)
    finally:
        await consumer.stop()
    return seen


async def test_a_letter_is_listed_redriven_with_its_event_id_and_then_no_longer_listed(
    infra: Any,
    service: OpsService,
    mongo_client: AsyncMongoClient[Doc],
    unique_db_name: str,
    names: tuple[str, str],
) -> None:
    group, topic = names
    await _dead_letter(infra.bootstrap_servers, group, topic, "ev-1", 7)
    await _dead_letter(infra.bootstrap_servers, group, topic, "ev-2", 8)

    page = await service.dead_letters(group, 50)
    assert [d.header("ce_id") for d in page.items] == ["ev-2", "ev-1"]
    first = page.items[1]
    assert first.original_topic == topic
    assert first.header("dlt_original_offset") == "7"
    assert first.error == "ValueError: bad action"

    done = await service.redrive(OPERATOR, group, Selection(ids=frozenset({first.id})))
    assert [d.id for d in done.letters] == [first.id]
    (back,) = await _read_all(infra.bootstrap_servers, topic, 1)
    headers = dict(back.headers)
    assert headers["ce_id"] == b"ev-1"
    assert back.key == b"acme:alice"
    assert back.value == b'{"action_id": 1}'
    assert not [k for k in headers if k.startswith("dlt_")]
    assert [d.header("ce_id") for d in (await service.dead_letters(group, 50)).items] == ["ev-2"]

    await service.discard(OPERATOR, group, Selection(everything=True))
    assert (await service.dead_letters(group, 50)).items == ()
    audit = await mongo_client[unique_db_name][AUDIT].find({}, {"_id": 0}).to_list()
    assert sorted((a["action"], a["state"], a["tenant_id"]) for a in audit) == [
        ("discarded", "done", "platform"),
        ("redriven", "done", "platform"),
    ]


async def test_lag_is_what_the_group_has_not_committed(
    infra: Any, service: OpsService, kafka: KafkaOps, names: tuple[str, str]
) -> None:
    group, topic = names
    producer = make_producer(infra.bootstrap_servers, "opsit")
    await producer.start()
    try:
        for n in range(3):
            await producer.send_and_wait(topic, value=f"{n}".encode(), key=b"k")
    finally:
        await producer.stop()
    assert (await kafka.lag(group, [topic])).total == 3

    member = AIOKafkaConsumer(
        bootstrap_servers=infra.bootstrap_servers, group_id=group, enable_auto_commit=False
    )
    await member.start()
    try:
        member.assign([TopicPartition(topic, 0)])
        await member.commit({TopicPartition(topic, 0): 2})
    finally:
        await member.stop()
    lag = await kafka.lag(group, [topic])
    assert [(p.partition, p.committed, p.end, p.lag) for p in lag.partitions] == [(0, 2, 3, 1)]
    overview = await service.overview()
    assert [(g.group, g.total) for g in overview.groups] == [(group, 1)]


async def test_the_tail_shows_events_from_now_on_for_the_asked_tenant(
    infra: Any, service: OpsService, names: tuple[str, str]
) -> None:
    _, topic = names
    producer = make_producer(infra.bootstrap_servers, "opsit")
    await producer.start()
    tail = service.events([topic], "acme")
    try:
        await producer.send_and_wait(topic, value=b"before", headers=[("ce_tenantid", b"acme")])
        first = asyncio.ensure_future(anext(tail))
        await asyncio.sleep(2)  # the tail pins "latest" when it starts
        for tenant, value in ((b"globex", b"other"), (b"acme", b"mine")):
            await producer.send_and_wait(topic, value=value, headers=[("ce_tenantid", tenant)])
        seen: list[bytes | None] = [e.value for e in await first]
        async with asyncio.timeout(20):
            while b"mine" not in seen:
                seen.extend(e.value for e in await anext(tail))
        assert seen == [b"mine"]
    finally:
        await tail.aclose()
        await producer.stop()
