"""The worker process every service runs: outbox relay plus its idempotent consumers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiokafka import AIOKafkaProducer, TopicPartition
from faststream import AckPolicy
from faststream.kafka import KafkaBroker, Topic
from faststream.kafka.annotations import KafkaMessage
from faststream.message import StreamMessage
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from mandaact_common.consumer import (
    BatchHandler,
    ConsumerStopping,
    IdempotentConsumer,
    KafkaDeadLetterSink,
    RetryPolicy,
    ensure_delivery_indexes,
    raw_records,
)
from mandaact_common.kafka import broker_security, client_security
from mandaact_common.lag import LagMonitor
from mandaact_common.lifecycle import DELETION_TOPICS, Eraser, Lifecycle, eraser_from_settings
from mandaact_common.liveness import Heartbeat, ProbeServer
from mandaact_common.mongo import Doc, make_client
from mandaact_common.observability import configure_logging
from mandaact_common.outbox import OutboxRelay, make_producer
from mandaact_common.settings import ServiceSettings
from mandaact_contracts.asyncapi import asyncapi_document as contract_asyncapi
from mandaact_contracts.events import EVENT_TYPES

log = logging.getLogger(__name__)

ERASURE_STARTERS = frozenset({"goals"})
"""Services that start erasures in their own requests (goals: `DELETE /v1/me`) rather than
hearing of them on `user.deleted`."""


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
    gather_ms: int = 0
    """How long the broker may hold a fetch to gather more records when they trickle in (0: a
    lone event is handled at once). A group whose results nobody waits on at once can trade
    that much latency for batches that cost the database one transaction for many events; a
    backlog comes in full batches either way."""


GATHER_MIN_BYTES = 1024 * 1024
"""What a gathering consumer's fetch waits for (a full batch of events is far less): in effect,
the fetch waits `gather_ms` unless a backlog fills it at once."""

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
    observes: tuple[str, ...] = ()
    """Topics read with no consumer group (ops: the dead-letter topics, the live tail)."""
    describes_groups: tuple[str, ...] = ()
    """Consumer groups whose committed offsets the service reads (ops: every group's lag)."""
    lifecycle: Lifecycle | None = None
    """Where the service keeps users' documents: its consumers drop events of erased users,
    its worker runs their erasures, its API serves `GET /v1/me/export` (SPEC §9)."""

    def __post_init__(self) -> None:
        if self.lifecycle is None:
            return
        if self.lifecycle.service != self.service:
            raise ValueError(f"{self.service}: its lifecycle names {self.lifecycle.service}")
        consumed = {t for c in self.consumers for t in c.topics}
        if not consumed & DELETION_TOPICS and self.service not in ERASURE_STARTERS:
            raise ValueError(
                f"{self.service} keeps users' data but consumes neither user.deleted nor"
                " tenant.deleted: it would never erase them"
            )


async def _keep_raw(message: StreamMessage[Any]) -> Any:
    """Leave decoding to the idempotent consumer, so a poison body cannot crash the subscriber."""
    return None


MAX_POLL_INTERVAL_MS = 300_000
"""Kafka drops a member that has not polled for this long; a waiting batch polls every second
(`GroupKeeper`) and one try ends within `MANDAACT_CONSUMER_BATCH_DEADLINE_S` (at most 240 s)."""


class PausableConsumer(Protocol):
    """The parts of aiokafka's consumer a waiting batch uses."""

    def assignment(self) -> set[TopicPartition]: ...
    def paused(self) -> set[TopicPartition]: ...
    def pause(self, *partitions: TopicPartition) -> None: ...
    def resume(self, *partitions: TopicPartition) -> None: ...
    def seek(self, partition: TopicPartition, offset: int) -> None: ...
    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, Sequence[Any]]: ...


class GroupKeeper:
    """Waits between two tries of a batch without leaving the consumer group.

    aiokafka leaves the group when `getmany` has not been called for `max_poll_interval_ms`,
    and FastStream calls it only between batches. So while a batch waits, every assigned
    partition is paused and `getmany` is called each second: it returns nothing (the member
    stays, nothing new is consumed, nothing is committed). Anything a rebalance lets through
    meanwhile is put back with `seek`. `release` resumes what was paused here.
    """

    def __init__(
        self, consumer: PausableConsumer, stop: asyncio.Event, *, poll_seconds: float = 1.0
    ) -> None:
        self._consumer = consumer
        self._stop = stop
        self._poll = poll_seconds
        self._paused: set[TopicPartition] = set()

    async def __call__(self, seconds: float) -> None:
        """Wait `seconds`, polling; raises `ConsumerStopping` when the worker stops."""
        deadline = time.monotonic() + seconds
        while True:
            if self._stop.is_set():
                raise ConsumerStopping("the worker is stopping")
            self._pause_assigned()
            fetched = await self._consumer.getmany(timeout_ms=0)
            for tp, records in fetched.items():
                if records:
                    self._consumer.seek(tp, min(r.offset for r in records))
            left = deadline - time.monotonic()
            if left <= 0:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=min(left, self._poll))

    def _pause_assigned(self) -> None:
        fresh = self._consumer.assignment() - self._consumer.paused()
        if fresh:
            self._consumer.pause(*fresh)
            self._paused |= fresh

    def release(self) -> None:
        """Resume the partitions this keeper paused that are still assigned."""
        if not self._paused:
            return
        still = self._paused & self._consumer.assignment()
        if still:
            self._consumer.resume(*still)
        self._paused.clear()


def retry_policy(settings: ServiceSettings) -> RetryPolicy:
    """The consumers' retry policy from the settings."""
    return RetryPolicy(
        retries=settings.consumer_max_retries,
        backoff_seconds=settings.consumer_backoff_seconds,
        max_backoff_seconds=settings.consumer_max_backoff_seconds,
        batch_deadline_seconds=settings.consumer_batch_deadline_seconds,
    )


def build_broker(
    spec: WorkerSpec,
    settings: ServiceSettings,
    consumers: Mapping[str, IdempotentConsumer],
    stop: asyncio.Event | None = None,
    *,
    max_poll_interval_ms: int = MAX_POLL_INTERVAL_MS,
) -> KafkaBroker:
    """Declare the service's subscribers and publishers (no connection is made here).

    `stop` tells a batch that waits for a dependency that the worker is stopping.
    """
    broker = KafkaBroker(
        # FastStream takes a str as one address: a cluster's "h1:p1,h2:p2" is split here.
        [
            server.strip()
            for server in settings.kafka_bootstrap_servers.split(",")
            if server.strip()
        ],
        client_id=f"{spec.service}-worker",
        security=broker_security(settings),
        enable_idempotence=True,
        acks="all",
        graceful_timeout=20.0,
        # Per-message lines at DEBUG, as JSON through the root logger (`logs`).
        logger=logging.getLogger("faststream.mandaact"),
        log_level=logging.DEBUG,
    )
    for cspec in spec.consumers:
        _subscribe(
            broker, cspec, settings, consumers, stop or asyncio.Event(), max_poll_interval_ms
        )
    for topic in spec.publishes:
        model = EVENT_TYPES[topic].model
        broker.publisher(topic, title=f"{topic}:publish", schema=model)
    return broker


def _subscribe(
    broker: KafkaBroker,
    cspec: ConsumerSpec,
    settings: ServiceSettings,
    consumers: Mapping[str, IdempotentConsumer],
    stop: asyncio.Event,
    max_poll_interval_ms: int,
) -> None:
    async def handle(message: KafkaMessage) -> None:
        consumer = consumers[cspec.group]
        records = raw_records(message.raw_message)
        keeper = GroupKeeper(message.consumer, stop)  # type: ignore[arg-type]
        try:
            await consumer.process(records, wait=keeper)
        except ConsumerStopping:
            # Shutdown while the batch waited for a dependency: rewind, commit nothing.
            await message.nack()
            log.info("%s: batch left uncommitted at shutdown", cspec.group)
            return
        except BaseException:
            # Nothing of this batch may be committed: rewind and let it be redelivered.
            await message.nack()
            raise
        finally:
            keeper.release()
        await message.ack()

    broker.subscriber(
        # declare=False: topics are provisioned with the stack (devstack, kafka-init), and a
        # service's principal may not create topics.
        *(Topic(topic, declare=False) for topic in cspec.topics),
        group_id=cspec.group,
        batch=True,
        max_records=settings.consumer_batch_size,
        batch_timeout_ms=100,
        # With gathering, the broker answers a fetch once it has GATHER_MIN_BYTES for it or
        # `gather_ms` passed; without, as soon as it has any record.
        fetch_min_bytes=GATHER_MIN_BYTES if cspec.gather_ms else 1,
        fetch_max_wait_ms=cspec.gather_ms or 500,
        max_poll_interval_ms=max_poll_interval_ms,
        ack_policy=AckPolicy.MANUAL,
        auto_offset_reset="earliest",
        decoder=_keep_raw,
        title=f"{cspec.group}:consume",
    )(handle)


def asyncapi_document(spec: WorkerSpec, settings: ServiceSettings) -> dict[str, Any]:
    """The service's AsyncAPI 3.0 document: the contracts' channels it publishes and consumes,
    with their payload schemas and CloudEvents headers, and its groups' dead-letter topics."""
    whole = contract_asyncapi()
    consumed = {t: c.group for c in spec.consumers for t in c.topics}
    keep = [t for t in whole["channels"] if t in consumed or t in spec.publishes]
    operations: dict[str, Any] = {}
    for topic in keep:
        channel = whole["channels"][topic]
        messages = [{"$ref": f"#/channels/{topic}/messages/{m}"} for m in channel["messages"]]
        if topic in spec.publishes:
            operations[f"send.{topic}"] = {
                "action": "send",
                "title": f"{spec.service} publishes {topic} (outbox relay)",
                "channel": {"$ref": f"#/channels/{topic}"},
                "messages": messages,
            }
        if topic in consumed:
            operations[f"receive.{topic}"] = {
                "action": "receive",
                "title": f"{spec.service} consumes {topic} (group {consumed[topic]})",
                "channel": {"$ref": f"#/channels/{topic}"},
                "messages": messages,
            }
    channels = {t: whole["channels"][t] for t in keep}
    if spec.consumers:
        channels["dead-letter"] = whole["channels"]["dead-letter"]
        operations["send.dead-letter"] = whole["operations"]["send.dead-letter"]
    used = {m.split("/")[-1] for c in channels.values() for m in _refs(c["messages"])}
    return {
        **whole,
        "info": {**whole["info"], "title": f"mandaact-{spec.service}"},
        "channels": channels,
        "operations": operations,
        "components": {
            "schemas": whole["components"]["schemas"],
            "messages": {k: v for k, v in whole["components"]["messages"].items() if k in used},
        },
    }


def _refs(messages: Mapping[str, Any]) -> list[str]:
    return [str(m["$ref"]) for m in messages.values()]


async def run_worker(spec: WorkerSpec, settings: ServiceSettings) -> None:
    """Run relay, consumers and background jobs until SIGTERM or SIGINT."""
    configure_logging(f"{spec.service}-worker")
    heartbeat = Heartbeat(settings.worker_stall_seconds)
    # The heartbeat outlives every other task: the probe stays green through a slow shutdown.
    done = asyncio.Event()
    beating = asyncio.create_task(heartbeat.run(done), name="heartbeat")
    probes = None
    if settings.worker_metrics_port:
        probes = ProbeServer(settings.http_host, settings.worker_metrics_port, heartbeat).start()
    client = make_client(settings.mongodb_url, timeout_ms=settings.mongo_timeout_ms)
    db = client[settings.mongodb_database]
    try:
        await run_components(spec, settings, client, db)
    finally:
        await client.close()
        done.set()
        await beating
        if probes is not None:
            probes.close()


async def run_components(
    spec: WorkerSpec,
    settings: ServiceSettings,
    client: AsyncMongoClient[Doc],
    db: AsyncDatabase[Doc],
    stop: asyncio.Event | None = None,
) -> None:
    """The worker's relay, consumers and jobs over these clients until `stop` is set (without
    one: until SIGTERM or SIGINT). Tests run a service's worker in process with it."""
    await ensure_delivery_indexes(db, processed_ttl_seconds=settings.processed_ttl_seconds)
    if spec.ensure_indexes:
        await spec.ensure_indexes(db)
    producer = make_producer(
        settings.kafka_bootstrap_servers,
        f"{spec.service}-relay",
        security=client_security(settings),
    )
    await producer.start()
    deps = WorkerDeps(settings=settings, client=client, db=db, producer=producer)
    if spec.on_start:
        await spec.on_start(deps)
    policy = retry_policy(settings)
    eraser: Eraser | None = None
    if spec.lifecycle is not None:
        eraser = eraser_from_settings(spec.lifecycle, client, db, settings)
    consumers = {
        c.group: IdempotentConsumer(
            group=c.group,
            client=client,
            db=db,
            handler=c.handler(deps),
            dead_letters=KafkaDeadLetterSink(producer, c.group),
            policy=policy,
            eraser=eraser,
        )
        for c in spec.consumers
    }
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    broker = build_broker(spec, settings, consumers, stop)
    relay = OutboxRelay(
        db,
        producer,
        spec.service,
        poll_seconds=settings.relay_poll_seconds,
        max_attempts=settings.relay_max_attempts,
        watch=settings.relay_watch,
    )
    tasks = [asyncio.create_task(relay.run(stop), name="outbox-relay")]
    tasks += [asyncio.create_task(job(deps, stop)) for job in spec.background]
    if eraser is not None:
        tasks.append(asyncio.create_task(eraser.run(stop), name="erasure"))
    if (lag := lag_monitor(spec, settings, "worker")) is not None:
        tasks.append(asyncio.create_task(lag.run(stop), name="consumer-lag"))
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


def lag_monitor(spec: WorkerSpec, settings: ServiceSettings, kind: str) -> LagMonitor | None:
    """The consumer lag exporter of a service's groups (None: no groups, or switched off)."""
    if not spec.consumers or settings.lag_refresh_seconds <= 0:
        return None
    return LagMonitor(
        settings.kafka_bootstrap_servers,
        {c.group: c.topics for c in spec.consumers},
        client_id=f"{spec.service}-{kind}",
        interval_seconds=settings.lag_refresh_seconds,
        security=client_security(settings),
    )


def main(spec: WorkerSpec, settings: ServiceSettings) -> None:
    """Console-script entry point for a worker."""
    asyncio.run(run_worker(spec, settings))


async def run_every(
    step: Callable[[], Awaitable[int]], seconds: float, stop: asyncio.Event, what: str
) -> None:
    """Run `step` now and every `seconds` until `stop` is set, at once again while it reports
    work done (a backlog drains without waiting); a failed pass is logged and tried next time."""
    while not stop.is_set():
        done = 0
        try:
            done = await step()
            if done:
                log.info("%s: %d done", what, done)
        except Exception:
            log.exception("%s failed; retrying next pass", what)
        if done:
            continue
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=seconds)
