"""The idempotent batch consumer: effects, processed ids and outgoing events in one transaction.

Delivery rules it enforces (see docs/delivery.md):
- FastStream's ack policy is MANUAL: offsets are committed only after every record of the
  batch is either stored or dead-lettered. A failure never gets followed by an ack that skips it.
- Every processed event id is inserted under a unique `_id` in the same transaction as the effect,
  so a redelivered event changes nothing.
- Every try of a batch has a deadline (`pymongo.timeout`, shared by each database call in it).
- An error that says nothing about the message (network, failover, a deadline, the database or
  the broker down) is waited out: the same batch is tried again with a capped exponential
  backoff, for as long as it takes, and nothing is committed meanwhile. Only a record that fails
  for a reason of its own, while the database answers, goes to the group's dead-letter topic
  with the error in headers, and the consumer moves on.
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import pymongo
from aiokafka import AIOKafkaProducer
from opentelemetry.trace import SpanKind
from pymongo import ASCENDING, AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, OperationFailure

from mandaact_common.consistency import record_applied
from mandaact_common.lifecycle import DELETION_TOPICS, Eraser, ensure_lifecycle_indexes
from mandaact_common.logs import log_context
from mandaact_common.mongo import Doc, find_in, is_deadline, is_transient, ping
from mandaact_common.observability import (
    BATCH_SECONDS,
    CONSUMER_PAUSED,
    CONSUMER_RETRIES,
    DEAD_LETTERED,
    EVENTS_CONSUMED,
)
from mandaact_common.outbox import Transaction, ensure_outbox_indexes, transact
from mandaact_common.tracing import Message, message_spans
from mandaact_contracts.envelope import Envelope, InvalidEvent, from_kafka, parse_payload
from mandaact_contracts.events import EventPayload
from mandaact_contracts.topics import LIFECYCLE_TOPICS, dead_letter_topic

log = logging.getLogger(__name__)

PROCESSED = "processed_events"
PROCESSED_TTL_INDEX = "at_ttl"
DUPLICATE_KEY = 11000
INDEX_OPTIONS_CONFLICT = frozenset({85, 86})  # IndexOptionsConflict, IndexKeySpecsConflict
DEFAULT_PROCESSED_TTL_SECONDS = 14 * 24 * 3600


class Record(Protocol):
    """The parts of a Kafka consumer record the consumer reads."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Sequence[tuple[str, bytes]]: ...


@dataclass(frozen=True, slots=True)
class Inbound:
    """One decoded, validated event with where it came from."""

    envelope: Envelope
    payload: EventPayload
    record: Record


BatchHandler = Callable[[Transaction, list[Inbound]], Awaitable[None]]
"""Applies a batch of new (never seen by this group) events inside the transaction."""

Wait = Callable[[float], Awaitable[None]]
"""How a consumer spends the pause between two tries of a batch (a Kafka consumer keeps its
group membership meanwhile, see `worker.GroupKeeper`); it raises `ConsumerStopping` when the
process stops."""


class ConsumerStopping(Exception):
    """The process stops while a batch waits for a dependency: leave the batch uncommitted."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a consumer tries a batch: a deadline per try, a capped exponential backoff between."""

    retries: int = 4
    """Failed retries after which the consumer counts as paused (it goes on trying)."""
    backoff_seconds: float = 0.2
    """The first pause; each further one doubles it."""
    max_backoff_seconds: float = 30.0
    """The longest pause while a dependency stays down."""
    batch_deadline_seconds: float = 30.0
    """One try of a batch: every database call inside shares this deadline."""
    probe_seconds: float = 2.0
    """Deadline of the ping that tells a slow database from a down one."""

    def pause_after(self, failures: int) -> float:
        """The pause after the `failures`-th failed try in a row."""
        doubling = 2.0 ** min(failures - 1, 32)  # bounded: an outage may last for days
        return min(self.backoff_seconds * doubling, self.max_backoff_seconds)


class DeadLetterSink(Protocol):
    """Where poison messages go."""

    async def send(self, record: Record, error: BaseException, attempts: int) -> None:
        """Publish the record to the dead-letter topic with the error in headers."""


class KafkaDeadLetterSink:
    """Publishes to `<group>.dlt` with the original key, value and headers plus error headers."""

    def __init__(self, producer: AIOKafkaProducer, group: str) -> None:
        self._producer = producer
        self._group = group
        self.topic = dead_letter_topic(group)

    async def send(self, record: Record, error: BaseException, attempts: int) -> None:
        """Publish and wait for the broker's acknowledgement."""
        message = str(error)[:2000] or type(error).__name__
        headers = [
            *(tuple(h) for h in (record.headers or ())),
            ("dlt_error_type", type(error).__name__.encode()),
            ("dlt_error_message", message.encode()),
            ("dlt_error_trace", "".join(traceback.format_exception(error))[-4000:].encode()),
            ("dlt_original_topic", record.topic.encode()),
            ("dlt_original_partition", str(record.partition).encode()),
            ("dlt_original_offset", str(record.offset).encode()),
            ("dlt_consumer_group", self._group.encode()),
            ("dlt_attempts", str(attempts).encode()),
            ("dlt_failed_at", datetime.now(UTC).isoformat().encode()),
        ]
        await self._producer.send_and_wait(
            self.topic, value=record.value, key=record.key, headers=list(headers)
        )
        DEAD_LETTERED.labels(self._group).inc()
        log.warning(
            "dead-lettered %s[%d]@%d to %s: %s",
            record.topic,
            record.partition,
            record.offset,
            self.topic,
            message,
        )


class IdempotentConsumer:
    """Processes batches of records exactly once in effect (see the module docstring)."""

    def __init__(
        self,
        *,
        group: str,
        client: AsyncMongoClient[Doc],
        db: AsyncDatabase[Doc],
        handler: BatchHandler,
        dead_letters: DeadLetterSink,
        max_retries: int = 4,
        backoff_seconds: float = 0.2,
        policy: RetryPolicy | None = None,
        eraser: Eraser | None = None,
    ) -> None:
        self.group = group
        self._eraser = eraser
        self._client = client
        self._db = db
        self._handler = handler
        self._dlq = dead_letters
        self.policy = policy or RetryPolicy(retries=max_retries, backoff_seconds=backoff_seconds)

    async def process(self, records: Sequence[Record], *, wait: Wait | None = None) -> None:
        """Store the effect of every record or dead-letter it; returns when it is safe to commit.

        While the database or the broker is down this does not return: it tries the batch
        again after each `wait` (default: a plain sleep) until it goes through.
        """
        start = time.perf_counter()
        pause = _Pause(self, wait or asyncio.sleep)
        try:
            good: list[Inbound] = []
            for record in records:
                try:
                    envelope = from_kafka(list(record.headers or ()), record.value or b"")
                    good.append(Inbound(envelope, parse_payload(envelope), record))
                except InvalidEvent as exc:
                    EVENTS_CONSUMED.labels(self.group, record.topic, "invalid").inc()
                    await self._dead_letter(record, exc, 1, pause)
            if good:
                await self._settle(good, pause)
        finally:
            pause.end()
        BATCH_SECONDS.labels(self.group).observe(time.perf_counter() - start)

    async def _settle(self, items: list[Inbound], pause: _Pause) -> None:
        """Store `items`, splitting them when they are too slow, isolating them when one fails."""
        tries = 0
        while True:
            tries += 1
            try:
                await self._try(items)
            except Exception as exc:
                if is_transient(exc):
                    if is_deadline(exc) and len(items) > 1 and await self._database_answers():
                        # The database answers but the batch outlives its deadline: smaller
                        # transactions go through where one big one never would.
                        log.warning("batch of %d hit its deadline; splitting it", len(items))
                        CONSUMER_RETRIES.labels(self.group, "split").inc()
                        half = len(items) // 2
                        await self._settle(items[:half], pause)
                        await self._settle(items[half:], pause)
                        return
                    await pause.wait(exc, "deadline" if is_deadline(exc) else "transient")
                    continue
                if not await self._database_answers():
                    # A failure while the database is down proves nothing about the message.
                    await pause.wait(exc, "database_down")
                    continue
                error = exc
                break
            else:
                pause.resumed()
                return
        if len(items) == 1:
            EVENTS_CONSUMED.labels(self.group, items[0].record.topic, "dead_lettered").inc()
            await self._dead_letter(items[0].record, error, tries, pause)
            return
        log.warning("batch of %d failed (%r); isolating records", len(items), error)
        for item in items:
            await self._settle([item], pause)

    async def _dead_letter(
        self, record: Record, error: BaseException, attempts: int, pause: _Pause
    ) -> None:
        """Send a record that can never succeed to the dead-letter topic, however long it takes."""
        while True:
            try:
                await self._dlq.send(record, error, attempts)
            except Exception as exc:
                # The broker is down or slow: the record waits, it is never skipped.
                await pause.wait(exc, "dead_letter_send")
            else:
                pause.resumed()
                return

    async def _database_answers(self) -> bool:
        return await ping(self._db, timeout_seconds=self.policy.probe_seconds)

    async def _try(self, items: list[Inbound]) -> None:
        """One try of the batch under its deadline."""
        deadline = self.policy.batch_deadline_seconds
        # The driver's deadline ends a stuck call cleanly (the transaction is aborted); the
        # asyncio one, a little later, ends whatever else the handler might be waiting for.
        async with asyncio.timeout(deadline + min(5.0, deadline)):
            with pymongo.timeout(deadline):
                await self._apply(items)

    async def _apply(self, items: list[Inbound]) -> None:
        unique: dict[str, Inbound] = {}
        for item in items:
            unique.setdefault(item.envelope.id, item)
        keys = {f"{self.group}:{event_id}": item for event_id, item in unique.items()}

        async def record_processed(tx: Transaction, fresh: list[Inbound]) -> None:
            now = datetime.now(UTC)
            await tx.db[PROCESSED].insert_many(
                [
                    {
                        "_id": f"{self.group}:{i.envelope.id}",
                        # A deletion's own events may arrive after its erasure: theirs name
                        # no tenant, or a deleted tenant's id would come back (SPEC §9).
                        "tenant_id": None
                        if i.record.topic in LIFECYCLE_TOPICS
                        else i.envelope.tenant_id,
                        "topic": i.record.topic,
                        "at": now,
                    }
                    for i in fresh
                ],
                session=tx.session,
            )

        async def apply(tx: Transaction, fresh: list[Inbound]) -> int:
            handled = fresh
            if self._eraser is not None:
                handled = []
                for item in fresh:
                    if item.record.topic in DELETION_TOPICS:
                        await self._eraser.accept(tx, item.payload)
                    else:
                        handled.append(item)
            if handled:
                await self._handler(tx, handled)
                # Read-your-writes (SPEC §12): what is applied, per user, source and topic.
                await record_applied(
                    tx.db,
                    tx.session,
                    (
                        (p.tenant_id, p.user_id, i.envelope.source, i.record.topic, p.source_seq)
                        for i in handled
                        if (p := i.payload).source_seq is not None
                    ),
                )
            return len(fresh)

        async def admitted(tx: Transaction, fresh: list[Inbound]) -> list[Inbound]:
            # Events of an erased user or tenant are dropped, and nothing of them is recorded:
            # a late event, a replay or a redriven dead letter changes nothing (SPEC §9).
            if self._eraser is None:
                return fresh
            eraser = self._eraser
            erased = await eraser.erased_among(
                tx, (i.payload for i in fresh if i.record.topic not in LIFECYCLE_TOPICS)
            )
            if not erased:
                return fresh
            kept: list[Inbound] = []
            for i in fresh:
                if i.record.topic in LIFECYCLE_TOPICS or not eraser.is_erased(i.payload, erased):
                    kept.append(i)
                else:
                    dropped.add(i.envelope.id)
            return kept

        dropped: set[str] = set()

        async def optimistic(tx: Transaction) -> int:
            # The usual case is no repeat: claim every id first; a repeat fails the unique
            # index, which aborts this transaction before any effect is written.
            dropped.clear()
            fresh = await admitted(tx, list(keys.values()))
            if not fresh:
                return 0
            await record_processed(tx, fresh)
            return await apply(tx, fresh)

        async def filtered(tx: Transaction) -> int:
            found = await find_in(tx.db[PROCESSED], "_id", keys, {"_id": 1}, session=tx.session)
            seen = {doc["_id"] for doc in found}
            dropped.clear()
            fresh = await admitted(tx, [item for key, item in keys.items() if key not in seen])
            if not fresh:
                return 0
            await record_processed(tx, fresh)
            return await apply(tx, fresh)

        first = next(iter(unique.values())).envelope
        # One span per event (each continues its own trace); the handler runs in the first's.
        with (
            message_spans(SpanKind.CONSUMER, [self._span_of(i) for i in unique.values()]),
            log_context(tenant_id=first.tenant_id, event_id=first.id if len(unique) == 1 else None),
        ):
            try:
                applied = await transact(self._client, self._db, self.group, optimistic)
            except BulkWriteError as exc:
                codes = {e.get("code") for e in exc.details.get("writeErrors", [])}
                if codes != {DUPLICATE_KEY}:
                    raise
                applied = await transact(self._client, self._db, self.group, filtered)
        if self._eraser is not None and any(i.record.topic in DELETION_TOPICS for i in items):
            self._eraser.wake.set()  # an erasure job was committed: run it when due
        for item in items:
            outcome = "erased" if item.envelope.id in dropped else "applied"
            EVENTS_CONSUMED.labels(self.group, item.record.topic, outcome).inc()
        if dropped:
            log.info("%d events of erased users or tenants dropped", len(dropped))
        if applied < len(items):
            log.debug("%d duplicate deliveries dropped", len(items) - applied)

    def _span_of(self, item: Inbound) -> Message:
        record = item.record
        return Message(
            f"{record.topic} process",
            item.envelope.traceparent,
            {
                "messaging.system": "kafka",
                "messaging.operation.type": "process",
                "messaging.destination.name": record.topic,
                "messaging.consumer.group.name": self.group,
                "messaging.destination.partition.id": str(record.partition),
                "messaging.kafka.offset": record.offset,
                "messaging.message.id": item.envelope.id,
                "cloudevents.event_type": item.envelope.type,
                "tenant_id": item.envelope.tenant_id,
            },
        )


class _Pause:
    """The waiting of one `process` call: backoff, the paused gauge, the log lines."""

    def __init__(self, consumer: IdempotentConsumer, wait: Wait) -> None:
        self._consumer = consumer
        self._wait = wait
        self._failures = 0
        self._since = 0.0
        self._paused = False

    async def wait(self, error: BaseException, reason: str) -> None:
        """Count a failed try and wait before the next one."""
        group, policy = self._consumer.group, self._consumer.policy
        self._failures += 1
        if self._failures == 1:
            self._since = time.monotonic()
        CONSUMER_RETRIES.labels(group, reason).inc()
        delay = policy.pause_after(self._failures)
        if self._failures > policy.retries and not self._paused:
            self._paused = True
            CONSUMER_PAUSED.labels(group).set(1)
            log.warning(
                "consumer %s paused after %d failed tries (%s: %r); trying again every <= %.0fs,"
                " nothing is committed or dead-lettered meanwhile",
                group,
                self._failures,
                reason,
                error,
                policy.max_backoff_seconds,
            )
        else:
            log.info("%s: %s %r, try %d in %.2fs", group, reason, error, self._failures + 1, delay)
        await self._wait(delay)

    def resumed(self) -> None:
        """A try went through: the next failure starts the backoff from the beginning."""
        if self._paused:
            log.warning(
                "consumer %s resumed after %d failed tries (%.1fs)",
                self._consumer.group,
                self._failures,
                time.monotonic() - self._since,
            )
        self.end()
        self._failures = 0

    def end(self) -> None:
        """Leave the paused state (success, or the batch is given up at shutdown)."""
        if self._paused:
            self._paused = False
            CONSUMER_PAUSED.labels(self._consumer.group).set(0)


async def ensure_processed_ttl(db: AsyncDatabase[Doc], ttl_seconds: int) -> None:
    """Processed event ids expire `ttl_seconds` after they were stored (TTL index on `at`).

    An existing index with another TTL is changed in place (`collMod`), so a new setting
    takes effect at the next start without dropping the index.
    """
    collection = db[PROCESSED]
    try:
        await collection.create_index(
            [("at", ASCENDING)], name=PROCESSED_TTL_INDEX, expireAfterSeconds=ttl_seconds
        )
    except OperationFailure as exc:
        if exc.code not in INDEX_OPTIONS_CONFLICT:
            raise
        await db.command(
            "collMod",
            PROCESSED,
            index={"name": PROCESSED_TTL_INDEX, "expireAfterSeconds": ttl_seconds},
        )


async def ensure_delivery_indexes(
    db: AsyncDatabase[Doc], *, processed_ttl_seconds: int = DEFAULT_PROCESSED_TTL_SECONDS
) -> None:
    """The indexes the outbox relay and the idempotent consumer need (every service, at start)."""
    await ensure_outbox_indexes(db)
    await ensure_processed_ttl(db, processed_ttl_seconds)
    await ensure_lifecycle_indexes(db)


def raw_records(raw: Any) -> Sequence[Record]:
    """The ConsumerRecords of a FastStream Kafka message (single or batch)."""
    if isinstance(raw, tuple | list):
        return list(raw)
    return [raw]
