"""The worker process every service runs: outbox relay plus its idempotent consumers."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaProducer
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.message import StreamMessage
from faststream.specification import AsyncAPI
from prometheus_client import start_http_server
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from mandaact_common.consumer import (
    BatchHandler,
    IdempotentConsumer,
    KafkaDeadLetterSink,
    raw_records,
)
from mandaact_common.mongo import Doc, make_client
from mandaact_common.observability import configure_logging
from mandaact_common.outbox import OutboxRelay, ensure_outbox_indexes, make_producer
from mandaact_common.settings import ServiceSettings
from mandaact_contracts.events import EVENT_TYPES

log = logging.getLogger(__name__)


@dataclass
class WorkerDeps:
    """What a worker's handlers get: the settings and the clients made at start-up."""

    settings: ServiceSettings
    client: AsyncMongoClient[Doc]
    db: AsyncDatabase[Doc]
    producer: AIOKafkaProducer


@dataclass(frozen=True)
class ConsumerSpec:
    """One consumer group: its topics and how to build its batch handler."""

    group: str
    topics: tuple[str, ...]
    handler: Callable[[WorkerDeps], BatchHandler]


IndexMaker = Callable[[AsyncDatabase[Doc]], Awaitable[None]]
"""Creates the indexes a service's queries rely on (once per process, at start)."""


@dataclass(frozen=True)
class WorkerSpec:
    """What a service's worker consumes and publishes, and the indexes its database needs."""

    service: str
    consumers: tuple[ConsumerSpec, ...] = ()
    publishes: tuple[str, ...] = ()
    ensure_indexes: IndexMaker | None = None
    on_start: Callable[[WorkerDeps], Awaitable[None]] | None = None
    background: tuple[Callable[[WorkerDeps, asyncio.Event], Coroutine[Any, Any, None]], ...] = (
        field(default=())
    )


async def _keep_raw(message: StreamMessage[Any]) -> Any:
    """Leave decoding to the idempotent consumer, so a poison body cannot crash the subscriber."""
    return None


def build_broker(
    spec: WorkerSpec, settings: ServiceSettings, consumers: dict[str, IdempotentConsumer]
) -> KafkaBroker:
    """Declare the service's subscribers and publishers (no connection is made here)."""
    broker = KafkaBroker(
        settings.kafka_bootstrap_servers,
        client_id=f"{spec.service}-worker",
        enable_idempotence=True,
        acks="all",
        graceful_timeout=20.0,
    )
    for cspec in spec.consumers:
        _subscribe(broker, cspec, settings, consumers)
    for topic in spec.publishes:
        model = EVENT_TYPES[topic].model
        broker.publisher(topic, title=f"{topic}:publish", schema=model)
    return broker


def _subscribe(
    broker: KafkaBroker,
    cspec: ConsumerSpec,
    settings: ServiceSettings,
    consumers: dict[str, IdempotentConsumer],
) -> None:
    async def handle(message: KafkaMessage) -> None:
        consumer = consumers[cspec.group]
        records = raw_records(message.raw_message)
        try:
            await consumer.process(records)
        except BaseException:
            # Nothing of this batch may be committed: rewind and let it be redelivered.
            await message.nack()
            raise
        await message.ack()

    broker.subscriber(
        *cspec.topics,
        group_id=cspec.group,
        batch=True,
        max_records=settings.consumer_batch_size,
        batch_timeout_ms=100,
        ack_policy=AckPolicy.MANUAL,
        auto_offset_reset="earliest",
        decoder=_keep_raw,
        title=f"{cspec.group}:consume",
    )(handle)


def asyncapi_document(spec: WorkerSpec, settings: ServiceSettings) -> dict[str, Any]:
    """The service's AsyncAPI 3.0 document, generated from its declared subscribers."""
    broker = build_broker(spec, settings, {})
    document = AsyncAPI(broker, title=f"mandaact-{spec.service}", version="1.0.0")
    result: dict[str, Any] = document.to_specification().to_jsonable()
    return result


async def run_worker(spec: WorkerSpec, settings: ServiceSettings) -> None:
    """Run relay, consumers and background jobs until SIGTERM or SIGINT."""
    configure_logging(f"{spec.service}-worker")
    if settings.worker_metrics_port:
        start_http_server(settings.worker_metrics_port, addr=settings.http_host)
    client = make_client(settings.mongodb_url)
    db = client[settings.mongodb_database]
    await ensure_outbox_indexes(db)
    if spec.ensure_indexes:
        await spec.ensure_indexes(db)
    producer = make_producer(settings.kafka_bootstrap_servers, f"{spec.service}-relay")
    await producer.start()
    deps = WorkerDeps(settings=settings, client=client, db=db, producer=producer)
    if spec.on_start:
        await spec.on_start(deps)
    consumers = {
        c.group: IdempotentConsumer(
            group=c.group,
            client=client,
            db=db,
            handler=c.handler(deps),
            dead_letters=KafkaDeadLetterSink(producer, c.group),
            max_retries=settings.consumer_max_retries,
            backoff_seconds=settings.consumer_backoff_seconds,
        )
        for c in spec.consumers
    }
    broker = build_broker(spec, settings, consumers)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    relay = OutboxRelay(db, producer, spec.service, poll_seconds=settings.relay_poll_seconds)
    tasks = [asyncio.create_task(relay.run(stop), name="outbox-relay")]
    tasks += [asyncio.create_task(job(deps, stop)) for job in spec.background]
    if spec.consumers:
        await broker.start()
    log.info("worker %s started", spec.service)
    try:
        await stop.wait()
    finally:
        log.info("worker %s stopping", spec.service)
        stop.set()
        if spec.consumers:
            await broker.stop()
        await asyncio.gather(*tasks, return_exceptions=True)
        await producer.stop()
        await client.close()


def main(spec: WorkerSpec, settings: ServiceSettings) -> None:
    """Console-script entry point for a worker."""
    asyncio.run(run_worker(spec, settings))
