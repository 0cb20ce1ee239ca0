"""Through real Kafka: events in, the worker's subscriber folds them, a report event comes out."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from mandaact_common.consumer import IdempotentConsumer, KafkaDeadLetterSink
from mandaact_common.domain.owner import Owner
from mandaact_common.mongo import Doc
from mandaact_common.outbox import OutboxRelay, make_producer
from mandaact_common.worker import WorkerDeps, build_broker
from mandaact_contracts import topics
from mandaact_contracts.envelope import encode_value, new_envelope, partition_key, to_kafka_headers
from reports.bootstrap import CONSUMES, mongo_service, worker_spec
from reports.llm import FallbackWriter
from reports.store.mongo import JOBS
from reports.store.ports import user_key, week_key

pytestmark = pytest.mark.integration

MON = date(2026, 11, 16)


async def _read_reports(bootstrap: str, key: bytes, wait_seconds: float = 30.0) -> list[Any]:
    consumer = AIOKafkaConsumer(
        topics.REPORT_GENERATED,
        bootstrap_servers=bootstrap,
        group_id=f"reader-{uuid.uuid4().hex}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    found: list[Any] = []
    try:
        deadline = asyncio.get_running_loop().time() + wait_seconds
        while not found and asyncio.get_running_loop().time() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                found += [r for r in records if r.key == key]
        # Drain a little longer: a duplicate would show up now.
        for records in (await consumer.getmany(timeout_ms=1000)).values():
            found += [r for r in records if r.key == key]
    finally:
        await consumer.stop()
    return found


async def test_events_from_kafka_become_one_report_event_on_kafka(
    infra: Any,
    kit: Any,
    mongo_client: AsyncMongoClient[Doc],
    db: AsyncDatabase[Doc],
    make_settings: Any,
) -> None:
    u = kit.Users(tenant=f"t-{uuid.uuid4().hex[:8]}", user="alice")
    events = [u.settings(), u.grid([("Sub", [("a1", kit.DAILY)])], added=MON)]
    events += [u.check("a1", MON + timedelta(days=i)) for i in range(3)]
    settings = make_settings()
    # A group of this test's own, so it does not fold other tests' events into shared offsets.
    group = f"reports-{uuid.uuid4().hex[:8]}"
    spec = worker_spec()
    spec = dataclasses.replace(
        spec, consumers=(dataclasses.replace(spec.consumers[0], group=group),)
    )
    assert spec.consumers[0].topics == CONSUMES
    producer = make_producer(infra.bootstrap_servers, "reports-test")
    await producer.start()
    deps = WorkerDeps(settings=settings, client=mongo_client, db=db, producer=producer)
    consumer = IdempotentConsumer(
        group=group,
        client=mongo_client,
        db=db,
        handler=spec.consumers[0].handler(deps),
        dead_letters=KafkaDeadLetterSink(producer, group),
    )
    broker = build_broker(spec, settings, {group: consumer})
    await broker.start()
    try:
        for payload in events:
            topic = kit.record(payload).topic
            env = new_envelope(topic, payload, "test")
            await producer.send_and_wait(
                topic, encode_value(env), key=partition_key(payload), headers=to_kafka_headers(env)
            )
        key = week_key(user_key(u.tenant, u.user), "2026-W47")
        for _ in range(300):
            job = await db[JOBS].find_one({"_id": key})
            if job is not None and job.get("active"):
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the check-ins were not folded from Kafka")
    finally:
        await broker.stop()

    # A new group reads the topics from the start: on a shared broker that includes other
    # tests' users, so only this test's own user is looked at from here on.
    generator = mongo_service(settings, mongo_client, db, writer=FallbackWriter())
    assert await generator.run_due(datetime(2026, 11, 22, 21, 0, tzinfo=UTC)) >= 1
    assert await generator.find(Owner(u.tenant, u.user), "2026-W47") is not None
    relay = OutboxRelay(db, producer, "reports")
    try:
        while await relay.publish_pending():
            pass
    finally:
        await producer.stop()
    (record,) = await _read_reports(infra.bootstrap_servers, f"{u.tenant}:{u.user}".encode())
    headers = dict(record.headers)
    assert headers["ce_type"] == b"mandaact.report.generated.v1"
    assert headers["ce_source"] == b"reports"
    body = json.loads(record.value)
    assert (body["week"], body["generator"], body["user_id"]) == ("2026-W47", "fallback", "alice")
