"""The test infrastructure really works: Kafka (idempotent producer) and Mongo transactions."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pymongo import AsyncMongoClient
from pymongo.uri_parser import parse_uri

from mandaact_devstack import (
    check_mongo_features,
    create_topics,
    port_open,
    start_test_infra,
    wait_port_closed,
)
from mandaact_devstack.procs import split_host_port

pytestmark = pytest.mark.integration


async def _kafka_roundtrip(bootstrap: str, topic: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all")
    await producer.start()
    try:
        meta = await producer.send_and_wait(topic, b"hello", key=b"k1")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"devstack-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), timeout=30)
        await consumer.commit()
    finally:
        await consumer.stop()
    assert (record.key, record.value) == (b"k1", b"hello")
    assert (record.partition, record.offset) == (meta.partition, meta.offset)


async def _mongo_transaction(url: str) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url)
    db = client[f"t_{uuid.uuid4().hex[:10]}"]
    try:
        async with client.start_session() as session, await session.start_transaction():
            await db.goals.insert_one({"_id": "g1"}, session=session)
            await db.outbox.insert_one({"_id": "e1", "goal": "g1"}, session=session)
        assert await db.goals.count_documents({}) == 1
        assert await db.outbox.count_documents({}) == 1

        async def failing_unit_of_work() -> None:
            async with client.start_session() as session, await session.start_transaction():
                await db.goals.insert_one({"_id": "g2"}, session=session)
                await db.outbox.insert_one({"_id": "e2"}, session=session)
                raise RuntimeError("rollback")

        with pytest.raises(RuntimeError, match="rollback"):
            await failing_unit_of_work()
        assert await db.goals.count_documents({}) == 1
        assert await db.outbox.count_documents({}) == 1
    finally:
        await client.drop_database(db.name)
        await client.close()


async def test_test_infra_starts_works_and_stops(tmp_path: Path) -> None:
    topic = f"devstack.selftest.{uuid.uuid4().hex[:6]}"
    handle = start_test_infra(tmp_path, topics={topic: 2})
    try:
        assert await create_topics(handle.bootstrap_servers, {topic: 2}) == []  # idempotent
        await _kafka_roundtrip(handle.bootstrap_servers, topic)
        await _mongo_transaction(handle.mongodb_url)
        await check_mongo_features(handle.mongodb_url)
    finally:
        handle.stop()
    owned: list[tuple[str, int]] = []
    if handle.kafka_mode == "local":
        owned.append(split_host_port(handle.bootstrap_servers, 9092))
    if handle.mongo_mode == "local":
        owned.append(next(iter(parse_uri(handle.mongodb_url)["nodelist"])))
    for host, port in owned:
        assert wait_port_closed(host, port, timeout=10), f"{host}:{port} still open"
        assert not port_open(host, port)
    assert not any(proc.alive() for proc in handle.processes)
