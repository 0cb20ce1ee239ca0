"""The idempotent batch consumer: effects, processed ids and outgoing events in one transaction.

Delivery rules it enforces (see docs/delivery.md):
- FastStream's ack policy is MANUAL: offsets are committed only after every record of the
  batch is either stored or dead-lettered. A failure never gets followed by an ack that skips it.
- Every processed event id is inserted under a unique `_id` in the same transaction as the effect,
  so a redelivered event changes nothing.
- Transient errors are retried with exponential backoff a bounded number of times; a record that
  still fails (or fails for a non-transient reason) goes to the group's dead-letter topic with the
  error in headers, and the consumer moves on.
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

from aiokafka import AIOKafkaProducer
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from mandaact_common.mongo import Doc, find_in, is_transient
from mandaact_common.observability import (
    BATCH_SECONDS,
    DEAD_LETTERED,
    EVENTS_CONSUMED,
    set_traceparent,
)
from mandaact_common.outbox import Transaction, transact
from mandaact_contracts.envelope import Envelope, InvalidEvent, from_kafka, parse_payload
from mandaact_contracts.events import EventPayload
from mandaact_contracts.topics import dead_letter_topic

log = logging.getLogger(__name__)

PROCESSED = "processed_events"
DUPLICATE_KEY = 11000


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
    ) -> None:
        self.group = group
        self._client = client
        self._db = db
        self._handler = handler
        self._dlq = dead_letters
        self._max_retries = max_retries
        self._backoff = backoff_seconds

    async def process(self, records: Sequence[Record]) -> None:
        """Store the effect of every record or dead-letter it; returns when it is safe to commit."""
        start = time.perf_counter()
        good: list[Inbound] = []
        for record in records:
            try:
                envelope = from_kafka(list(record.headers or ()), record.value or b"")
                good.append(Inbound(envelope, parse_payload(envelope), record))
            except InvalidEvent as exc:
                EVENTS_CONSUMED.labels(self.group, record.topic, "invalid").inc()
                await self._dlq.send(record, exc, attempts=1)
        if good:
            await self._apply_or_isolate(good)
        BATCH_SECONDS.labels(self.group).observe(time.perf_counter() - start)

    async def _apply_or_isolate(self, items: list[Inbound]) -> None:
        error = await self._apply_with_retries(items)
        if error is None:
            return
        if len(items) == 1:
            EVENTS_CONSUMED.labels(self.group, items[0].record.topic, "dead_lettered").inc()
            await self._dlq.send(items[0].record, error, attempts=self._max_retries + 1)
            return
        log.warning("batch of %d failed (%r); isolating records", len(items), error)
        for item in items:
            await self._apply_or_isolate([item])

    async def _apply_with_retries(self, items: list[Inbound]) -> BaseException | None:
        for attempt in range(self._max_retries + 1):
            try:
                await self._apply(items)
            except Exception as exc:
                if not is_transient(exc) or attempt == self._max_retries:
                    return exc
                delay = self._backoff * (2**attempt)
                log.info("transient error %r, retry %d in %.2fs", exc, attempt + 1, delay)
                await asyncio.sleep(delay)
            else:
                return None
        return None  # pragma: no cover - the loop always returns

    async def _apply(self, items: list[Inbound]) -> None:
        unique: dict[str, Inbound] = {}
        for item in items:
            unique.setdefault(item.envelope.id, item)
        keys = {f"{self.group}:{event_id}": item for event_id, item in unique.items()}

        async def record_processed(tx: Transaction, fresh: list[Inbound]) -> None:
            now = datetime.now(UTC)
            await tx.db[PROCESSED].insert_many(
                [
                    {"_id": f"{self.group}:{i.envelope.id}", "topic": i.record.topic, "at": now}
                    for i in fresh
                ],
                session=tx.session,
            )

        async def apply(tx: Transaction, fresh: list[Inbound]) -> int:
            if fresh[0].envelope.traceparent:
                set_traceparent(fresh[0].envelope.traceparent)
            await self._handler(tx, fresh)
            return len(fresh)

        async def optimistic(tx: Transaction) -> int:
            # The usual case is no repeat: claim every id first; a repeat fails the unique
            # index, which aborts this transaction before any effect is written.
            fresh = list(keys.values())
            await record_processed(tx, fresh)
            return await apply(tx, fresh)

        async def filtered(tx: Transaction) -> int:
            found = await find_in(tx.db[PROCESSED], "_id", keys, {"_id": 1}, session=tx.session)
            seen = {doc["_id"] for doc in found}
            fresh = [item for key, item in keys.items() if key not in seen]
            if not fresh:
                return 0
            await record_processed(tx, fresh)
            return await apply(tx, fresh)

        try:
            applied = await transact(self._client, self._db, self.group, optimistic)
        except BulkWriteError as exc:
            codes = {e.get("code") for e in exc.details.get("writeErrors", [])}
            if codes != {DUPLICATE_KEY}:
                raise
            applied = await transact(self._client, self._db, self.group, filtered)
        for item in items:
            EVENTS_CONSUMED.labels(self.group, item.record.topic, "applied").inc()
        if applied < len(items):
            log.debug("%d duplicate deliveries dropped", len(items) - applied)


def raw_records(raw: Any) -> Sequence[Record]:
    """The ConsumerRecords of a FastStream Kafka message (single or batch)."""
    if isinstance(raw, tuple | list):
        return list(raw)
    return [raw]
