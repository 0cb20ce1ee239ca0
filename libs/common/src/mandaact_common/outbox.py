"""Transactional outbox: events are stored with the state change, then relayed to Kafka."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    CorruptRecordException,
    KafkaError,
    MessageSizeTooLargeError,
    RecordTooLargeError,
    TopicAuthorizationFailedError,
    UnknownTopicOrPartitionError,
)
from opentelemetry.trace import SpanKind
from pydantic import BaseModel
from pymongo import ASCENDING, AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, OperationFailure, PyMongoError

from mandaact_common import consistency
from mandaact_common.mongo import Doc, find_in, in_transaction
from mandaact_common.observability import (
    OUTBOX_OLDEST_AGE,
    OUTBOX_PARKED_ROWS,
    OUTBOX_PENDING,
    OUTBOX_PUBLISH_FAILURES,
    OUTBOX_PUBLISHED,
    RELAY_PUBLISH_SECONDS,
    current_traceparent,
)
from mandaact_common.tracing import Message, message_spans, span
from mandaact_contracts.envelope import (
    Envelope,
    encode_value,
    new_envelope,
    partition_key,
    to_kafka_headers,
)
from mandaact_contracts.topics import LIFECYCLE_TOPICS

log = logging.getLogger(__name__)
T = TypeVar("T")

OUTBOX = "outbox"
OUTBOX_EVENTS = "outbox_events"
OUTBOX_PARKED = "outbox_parked"
"""Rows the relay gave up on, with their events and the last error (see docs/delivery.md)."""
EVENTS_PER_ROW = 1000
RELAY_LEASE = "outbox_relay_lease"
PARKED_RECOUNT_SECONDS = 60.0
"""How often the relay refreshes the `mandaact_outbox_parked` gauge (and at once on parking)."""
WATCH_AWAIT_SECONDS = 5.0
WATCHED_POLL_SECONDS = 10.0
"""The safety-net poll while a change stream is open (it and the in-process signal wake the
relay for every commit; a stream that reopens wakes it once too)."""
"""How long one change-stream `getMore` waits on the server for an insert (at most)."""
_WATCH_UNSUPPORTED = frozenset({40573, 40324, 115, 59, 20})
"""Server answers meaning "no change streams here" (standalone, unknown stage or command)."""
_WATCH_HISTORY_LOST = frozenset({286, 280, 260})
"""The resume token is too old or invalid: start a new stream (and re-poll once)."""

API_KIND = "api"
WORKER_KIND = "worker"
"""Process kinds. Every process relays the rows its own commits wrote (woken in-process); a
worker's relay also sweeps up what no live process will publish."""
SWEEP_AFTER_SECONDS = 10.0
"""Rows this old are published by the sweeping relay whoever wrote them (a process that died
between its commit and its publish); rows of no relay (`by` missing) are swept at once."""
_RECENT_ROWS = 4096
"""How many of its deleted rows' ids a relay remembers (see `OutboxRelay._recent`)."""

_wakers: dict[str, set[asyncio.Event]] = {}
"""In-process wake-up: the relays of this process, by database name."""

HANDOFF_MAX_ROWS = 2000
"""The most committed rows held for a relay in memory; past it the relay reads the collection."""

Handed = tuple[Doc, list[Doc]]
"""An outbox row as committed, with its events."""


@dataclass
class _Writer:
    """The relay of this process for a database: the rows its commits write carry its id
    (`by`), and are handed to it once committed."""

    owner: str
    rows: list[Handed] = field(default_factory=list)
    missed: bool = False
    """Rows were committed that `rows` does not hold (it was full): read the collection."""


_writers: dict[str, _Writer] = {}
"""By database name."""


def register_wake(db: AsyncDatabase[Doc], event: asyncio.Event, owner: str | None = None) -> None:
    """Have `event` set whenever a transaction of this process commits outbox rows into `db`;
    with `owner`, those rows are marked as that relay's to publish and handed to it."""
    _wakers.setdefault(db.name, set()).add(event)
    if owner is not None:
        _writers[db.name] = _Writer(owner)


def unregister_wake(db: AsyncDatabase[Doc], event: asyncio.Event) -> None:
    waiting = _wakers.get(db.name)
    if waiting is not None:
        waiting.discard(event)
        if not waiting:
            del _wakers[db.name]
            _writers.pop(db.name, None)


def notify_committed(db: AsyncDatabase[Doc]) -> None:
    """Wake this process's relays of `db`: call only after the outbox rows were committed."""
    for event in tuple(_wakers.get(db.name, ())):
        event.set()


def hand_over(db: AsyncDatabase[Doc], rows: list[Handed]) -> None:
    """Give this process's relay of `db` the rows a transaction just committed (in order)."""
    writer = _writers.get(db.name)
    if writer is None or not rows:
        return
    if len(writer.rows) + len(rows) > HANDOFF_MAX_ROWS:
        writer.missed = True  # they are in the collection: the relay reads them in order
        return
    writer.rows.extend(rows)


def take_handed(db: AsyncDatabase[Doc]) -> tuple[list[Handed], bool]:
    """The rows handed over since the last call, and whether any were not (see `_Writer`)."""
    writer = _writers.get(db.name)
    if writer is None:
        return [], False
    rows, missed = writer.rows, writer.missed
    writer.rows, writer.missed = [], False
    return rows, missed


_ROW_FAULTS = (
    MessageSizeTooLargeError,
    RecordTooLargeError,
    TopicAuthorizationFailedError,
    UnknownTopicOrPartitionError,
    CorruptRecordException,
)
"""Broker answers that are about the record, not the broker: they fail again however often."""


def make_producer(
    bootstrap_servers: str, client_id: str, *, security: Mapping[str, Any] | None = None
) -> AIOKafkaProducer:
    """An idempotent producer: no duplicates or reordering per partition on retries.

    `security`: the principal's aiokafka arguments (`mandaact_common.kafka.client_security`).
    """
    return AIOKafkaProducer(
        **(security or {}),
        bootstrap_servers=bootstrap_servers,
        client_id=client_id,
        enable_idempotence=True,
        acks="all",
        linger_ms=0,  # a lone event goes at once; a relay round's events are sent together
        request_timeout_ms=30000,
    )


@dataclass
class Transaction:
    """One unit of work: a session in a Mongo transaction and the events it causes."""

    session: AsyncClientSession
    db: AsyncDatabase[Doc]
    source: str
    events: list[tuple[str, Envelope, bytes]] = field(default_factory=list)
    wrote_outbox: bool = False
    """Whether `flush` wrote rows (they are stored only once the transaction commits)."""
    askers: list[consistency.RequestTokens | None] = field(default_factory=list)
    """Per event, the request it was emitted for (its response carries the event's number)."""
    numbered: list[tuple[consistency.RequestTokens, tuple[str, str], dict[str, int]]] = field(
        default_factory=list
    )
    """What `flush` numbered, per request and owner: handed over once the transaction commits."""
    handing_over: bool = False
    """Whether the rows go to this process's relay once committed (`transact` does that): only
    then are they marked as its rows; others are left unmarked for a worker's sweep."""
    written: list[Handed] = field(default_factory=list)
    """The rows `flush` wrote, with their events: handed to this process's relay on commit."""

    def emit(self, topic: str, payload: BaseModel, subject: str | None = None) -> Envelope:
        """Record an event to be written to the outbox with this transaction's changes."""
        envelope = new_envelope(
            topic, payload, self.source, subject=subject, traceparent=current_traceparent()
        )
        self.events.append((topic, envelope, partition_key(payload)))
        self.askers.append(consistency.CURRENT.get())
        return envelope

    async def flush(self) -> None:
        """Write the recorded events into the outbox in this transaction.

        The events of one transaction share one outbox document (chunked), so a consumer batch
        that causes a thousand events adds a couple of rows, not a thousand: the relay's reads
        and deletes stay small whatever the event volume.
        """
        if not self.events:
            return
        self.wrote_outbox = True
        await self._number()
        now = datetime.now(UTC)
        events: list[Doc] = [
            {
                "id": env.id,
                "topic": topic,
                "key": key,
                "headers": [[k, v] for k, v in to_kafka_headers(env)],
                "value": encode_value(env),
                "tenant_id": env.tenant_id,
            }
            for topic, env, key in self.events
        ]
        # A row holds one tenant's events (so it carries that `tenant_id`), in the order they
        # were recorded; rows are named so that the relay's (`created_at`, `_id`) order is this
        # transaction's order: a tenant's events keep their order across its rows.
        by_tenant: dict[str, list[Doc]] = {}
        for event in events:
            by_tenant.setdefault(event["tenant_id"], []).append(event)
        flush_id = uuid.uuid4().hex
        chunks = [
            (tenant, kept[i : i + EVENTS_PER_ROW])
            for tenant, kept in by_tenant.items()
            for i in range(0, len(kept), EVENTS_PER_ROW)
        ]
        ids = [f"{flush_id}.{n:06d}" for n in range(len(chunks))]
        # The small row is what the relay sorts; the events sit beside it, read by `_id`.
        writer = _writers.get(self.db.name) if self.handing_over else None
        by = {"by": writer.owner} if writer is not None else {}
        rows = [
            {"_id": i, "tenant_id": tenant, "created_at": now, "n": len(c), **by}
            for i, (tenant, c) in zip(ids, chunks, strict=True)
        ]
        await self.db[OUTBOX].insert_many(rows, session=self.session)
        await self.db[OUTBOX_EVENTS].insert_many(
            [
                {"_id": i, "tenant_id": tenant, "events": c}
                for i, (tenant, c) in zip(ids, chunks, strict=True)
            ],
            session=self.session,
        )
        if writer is not None:
            self.written += [(row, c) for row, (_, c) in zip(rows, chunks, strict=True)]
        self.events.clear()
        self.askers.clear()

    async def _number(self) -> None:
        """Number the events per user and topic (SPEC §12): `source_seq` in each payload."""
        counts: dict[tuple[str, str], dict[str, int]] = {}
        for topic, env, _ in self.events:
            if topic in LIFECYCLE_TOPICS:
                continue  # about erasure itself: a counter would bring the erased id back
            owner = (env.tenant_id, str(env.data.get("user_id", "")))
            per_topic = counts.setdefault(owner, {})
            per_topic[topic] = per_topic.get(topic, 0) + 1
        last = await consistency.number_events(self.db, self.session, counts)
        next_of = {
            (owner, topic): last[owner][topic] - n + 1
            for owner, per_topic in counts.items()
            for topic, n in per_topic.items()
        }
        by_asker: dict[tuple[int, tuple[str, str]], dict[str, int]] = {}
        askers: dict[int, consistency.RequestTokens] = {}
        for i, ((topic, env, key), asker) in enumerate(zip(self.events, self.askers, strict=True)):
            if topic in LIFECYCLE_TOPICS:
                continue
            owner = (env.tenant_id, str(env.data.get("user_id", "")))
            seq = next_of[(owner, topic)]
            next_of[(owner, topic)] = seq + 1
            self.events[i] = (
                topic,
                env.model_copy(update={"data": {**env.data, "source_seq": seq}}),
                key,
            )
            if asker is not None:
                askers[id(asker)] = asker
                held = by_asker.setdefault((id(asker), owner), {})
                held[topic] = seq
        self.numbered = [(askers[a], owner, seqs) for (a, owner), seqs in by_asker.items()]


async def _events_of(db: AsyncDatabase[Doc], ids: list[Any]) -> dict[Any, list[Doc]]:
    found = {d["_id"]: d["events"] for d in await find_in(db[OUTBOX_EVENTS], "_id", ids)}
    return {i: found.get(i, []) for i in ids}


async def pending_events(db: AsyncDatabase[Doc], topic: str | None = None) -> list[Doc]:
    """The outbox's unpublished events in order, with `payload` and `header_map` decoded."""
    rows = await db[OUTBOX].find({}).sort([("created_at", ASCENDING), ("_id", ASCENDING)]).to_list()
    events_of = await _events_of(db, [row["_id"] for row in rows])
    out: list[Doc] = []
    for row in rows:
        for event in events_of[row["_id"]]:
            if topic is not None and event["topic"] != topic:
                continue
            out.append(
                {
                    **event,
                    "_id": event["id"],
                    "created_at": row["created_at"],
                    "payload": json.loads(event["value"]),
                    "header_map": {
                        k: v if isinstance(v, str) else bytes(v).decode()
                        for k, v in event["headers"]
                    },
                }
            )
    return out


async def transact(
    client: AsyncMongoClient[Doc],
    db: AsyncDatabase[Doc],
    source: str,
    work: Callable[[Transaction], Awaitable[T]],
) -> T:
    """Run `work` and write the events it emits in the same Mongo transaction.

    Once the transaction has committed with outbox rows, this process's relays of `db` are
    woken (never from inside the callback, which the driver may retry or abort).
    """
    wrote = False

    async def callback(session: AsyncClientSession) -> T:
        nonlocal wrote
        tx = Transaction(session=session, db=db, source=source, handing_over=True)
        result = await work(tx)
        with span("outbox write", attributes={"messaging.batch.message_count": len(tx.events)}):
            await tx.flush()
        wrote = tx.wrote_outbox  # of the try that commits: the last one
        numbered[:] = tx.numbered
        written[:] = tx.written
        return result

    numbered: list[tuple[consistency.RequestTokens, tuple[str, str], dict[str, int]]] = []
    written: list[Handed] = []
    result = await in_transaction(client, callback)
    for asker, owner, seqs in numbered:
        asker.add(owner, seqs)  # committed: the requests' responses may name these numbers
    if wrote:
        hand_over(db, written)
        notify_committed(db)
    return result


async def ensure_outbox_indexes(db: AsyncDatabase[Doc]) -> None:
    """Indexes the relay and the operators read by."""
    await db[OUTBOX].create_index([("created_at", ASCENDING), ("_id", ASCENDING)])
    await db[OUTBOX_PARKED].create_index([("parked_at", ASCENDING)])


def row_at_fault(error: BaseException) -> bool:
    """Whether a failed publish is the row's own fault: it would fail on a healthy broker too.

    A broker that is down, slow or short of replicas (timeouts, connection errors, retriable
    broker errors) is never the row's fault; a record too large, a topic that does not exist
    or may not be written, or a row that cannot even be read into a record is.
    """
    if isinstance(error, KafkaError):
        return isinstance(error, _ROW_FAULTS)
    if isinstance(error, PyMongoError | OSError | TimeoutError):
        return False
    return isinstance(error, Exception)


async def requeue_parked(db: AsyncDatabase[Doc], row_id: Any) -> bool:
    """Put a parked row back at its place in the outbox (once its cause is fixed)."""
    parked = await db[OUTBOX_PARKED].find_one({"_id": row_id})
    if parked is None:
        return False

    async def move(session: AsyncClientSession) -> None:
        tenant = parked.get("tenant_id")
        row = {"_id": row_id, "tenant_id": tenant, "created_at": parked["created_at"]}
        await db[OUTBOX].insert_one({**row, "n": parked["n"]}, session=session)
        await db[OUTBOX_EVENTS].insert_one(
            {"_id": row_id, "tenant_id": tenant, "events": parked["events"]}, session=session
        )
        await db[OUTBOX_PARKED].delete_one({"_id": row_id}, session=session)

    await in_transaction(db.client, move)
    return True


def _span_of(event: Doc) -> Message:
    """The publish span of an outbox event: a child of the trace its envelope carries."""
    headers = {str(k): v if isinstance(v, str) else bytes(v).decode() for k, v in event["headers"]}
    return Message(
        f"{event['topic']} publish",
        headers.get("traceparent"),
        {
            "messaging.system": "kafka",
            "messaging.operation.type": "publish",
            "messaging.destination.name": str(event["topic"]),
            "messaging.message.id": str(event["id"]),
            "tenant_id": str(event.get("tenant_id", "")),
        },
    )


class _PublishFailed(Exception):
    """A row could not be published; the rows behind it wait for the next round."""


class OutboxRelay:
    """Publishes outbox rows in creation order with an idempotent producer, then deletes them.

    A row is deleted only after Kafka acknowledged it (acks=all), so a crash re-sends it with
    the same `ce_id`, and consumers drop the repeat. Every process relays the rows its own
    commits wrote, in their order, woken by the commit (no lease: no other relay takes them while
    they are young). A worker's relay also sweeps, under a lease so that one does at a time,
    the rows no live relay will publish: unmarked ones, and any older than
    `sweep_after_seconds` (their writer died before publishing). A row that fails
    `max_attempts` times for a reason of its own (the broker answered) is moved to
    `outbox_parked`, and the rows behind it go on; while the broker is down nothing is counted
    against any row.
    """

    def __init__(
        self,
        db: AsyncDatabase[Doc],
        producer: AIOKafkaProducer,
        service: str,
        *,
        poll_seconds: float = 1.0,
        rows_per_poll: int = 10,
        lease_seconds: float = 10.0,
        max_attempts: int = 10,
        probe_seconds: float = 5.0,
        watch: bool = True,
        kind: str = WORKER_KIND,
        sweep_after_seconds: float = SWEEP_AFTER_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = db
        self._producer = producer
        self._service = service
        self._poll = poll_seconds
        self._rows = rows_per_poll
        self._lease_seconds = lease_seconds
        self._max_attempts = max_attempts
        self._probe_seconds = probe_seconds
        self._owner = uuid.uuid4().hex
        self._watch = watch
        self._sweeps = kind == WORKER_KIND
        self._sweep_after = sweep_after_seconds
        self._clock = clock
        self._lease_until = float("-inf")
        """Until when (on `clock`) this relay surely holds the lease; -inf when it does not."""
        self.watching = False
        """Whether a change stream on `outbox` is open (for tests and diagnostics)."""
        self._recent: dict[Any, None] = {}
        """The ids of the rows this relay deleted last (in order, at most `_RECENT_ROWS`): a
        row handed over that a read of the collection already published is not sent again."""
        self._sweep_wake = False
        """The change stream saw an insert: sweep in the next round, not only on the poll."""

    async def ensure_lease(self) -> bool:
        """Whether this relay holds the lease, renewing it only when less than half is left.

        The local deadline is counted from *before* the write, so it never outlasts the one
        stored: while it runs no other relay can take the lease, and once it is past this relay
        publishes nothing until it has renewed.
        """
        started = self._clock()
        if started < self._lease_until - self._lease_seconds / 2:
            return True
        self._lease_until = float("-inf")
        if not await self._hold_lease():
            return False
        self._lease_until = started + self._lease_seconds
        return True

    async def _hold_lease(self) -> bool:
        now = datetime.now(UTC)
        try:
            await self._db[RELAY_LEASE].update_one(
                {"_id": "relay", "$or": [{"owner": self._owner}, {"expires_at": {"$lt": now}}]},
                {
                    "$set": {
                        "owner": self._owner,
                        "expires_at": now + timedelta(seconds=self._lease_seconds),
                    }
                },
                upsert=True,
            )
        except DuplicateKeyError:
            return False  # another relay holds an unexpired lease
        return True

    async def publish_pending(self, rows_of: Doc | None = None) -> int:
        """Publish the events of the oldest outbox rows (`rows_of`, default: every row this
        relay may publish); return how many were published.

        All the rows of a round are sent at once; when that fails they are sent one by one,
        in order, so that one bad row is found and the rows before it are not held back.
        """
        rows: list[dict[str, Any]] = (
            await self._db[OUTBOX]
            .find(self._publishable() if rows_of is None else rows_of)
            .sort([("created_at", ASCENDING), ("_id", ASCENDING)])
            .limit(self._rows)
            .to_list()
        )
        self._gauge(rows)
        if not rows:
            return 0
        events_of = await _events_of(self._db, [row["_id"] for row in rows])
        try:
            await self._send([event for row in rows for event in events_of[row["_id"]]])
        except Exception as exc:
            if len(rows) == 1:
                if await self._failed(rows[0], events_of[rows[0]["_id"]], exc):
                    return 0  # parked
                raise
            log.info("relaying %d rows failed (%r); trying them one by one", len(rows), exc)
        else:
            return await self._delete(rows, events_of)
        published = 0
        for row in rows:
            events = events_of[row["_id"]]
            try:
                await self._send(events)
            except Exception as exc:
                if not await self._failed(row, events, exc):
                    raise _PublishFailed(f"outbox row {row['_id']}: {exc!r}") from exc
                continue  # parked: the rows behind it go on
            published += await self._delete([row], events_of)
        return published

    def _gauge(self, rows: list[Doc]) -> None:
        """Pending events (of the rows this round read) and the oldest row's age, from what
        the round read anyway: no query of its own."""
        OUTBOX_PENDING.labels(self._service).set(sum(int(r.get("n", 1)) for r in rows))
        oldest = rows[0]["created_at"] if rows else None
        age = (datetime.now(UTC) - oldest).total_seconds() if oldest is not None else 0.0
        OUTBOX_OLDEST_AGE.labels(self._service).set(max(0.0, age))

    def _own(self) -> Doc:
        """The rows this process's commits wrote while this relay ran."""
        return {"by": self._owner}

    def _swept(self) -> Doc:
        """The rows no live relay will publish: unmarked, or older than the sweep age."""
        cutoff = datetime.now(UTC) - timedelta(seconds=self._sweep_after)
        return {"$or": [{"by": None}, {"created_at": {"$lt": cutoff}}]}

    def _publishable(self) -> Doc:
        if not self._sweeps:
            return self._own()
        return {"$or": [self._own(), *self._swept()["$or"]]}

    async def has_pending(self, rows_of: Doc | None = None) -> bool:
        """Whether any row waits (one indexed read, no lease needed)."""
        found = await self._db[OUTBOX].find_one(
            self._publishable() if rows_of is None else rows_of, {"_id": 1}
        )
        return found is not None

    async def _send(self, events: list[Doc]) -> None:
        started = time.perf_counter()
        with message_spans(SpanKind.PRODUCER, [_span_of(e) for e in events]):
            await self._send_all(events)
        RELAY_PUBLISH_SECONDS.labels(self._service).observe(time.perf_counter() - started)

    async def _send_all(self, events: list[Doc]) -> None:
        futures: list[asyncio.Future[Any]] = []
        try:
            for event in events:
                headers = [
                    (str(k), v.encode() if isinstance(v, str) else bytes(v))
                    for k, v in event["headers"]
                ]
                futures.append(
                    await self._producer.send(
                        event["topic"],
                        value=bytes(event["value"]),
                        key=bytes(event["key"]),
                        headers=headers,
                    )
                )
        except BaseException:
            # Settle what was already handed to the producer before giving up on the round.
            await asyncio.gather(*futures, return_exceptions=True)
            raise
        await asyncio.gather(*futures)

    async def publish_handed(self, handed: list[Handed]) -> int:
        """Publish rows this process committed, as handed over (`transact`), without reading
        them back; then delete them. Rows already published are skipped. A failure leaves the
        rows to the collection's read (`publish_pending`), which counts and parks."""
        rows = [(row, events) for row, events in handed if row["_id"] not in self._recent]
        if not rows:
            return 0
        await self._send([event for _, events in rows for event in events])
        return await self._delete([row for row, _ in rows], {row["_id"]: ev for row, ev in rows})

    async def _delete(self, rows: list[Doc], events_of: dict[Any, list[Doc]]) -> int:
        ids = [r["_id"] for r in rows]
        await self._db[OUTBOX_EVENTS].delete_many({"_id": {"$in": ids}})
        await self._db[OUTBOX].delete_many({"_id": {"$in": ids}})
        for i in ids:
            self._recent[i] = None
        for old in list(itertools.islice(self._recent, max(0, len(self._recent) - _RECENT_ROWS))):
            del self._recent[old]
        events = [event for row in rows for event in events_of[row["_id"]]]
        for event in events:
            OUTBOX_PUBLISHED.labels(self._service, event["topic"]).inc()
        return len(events)

    async def _broker_answers(self) -> bool:
        try:
            await asyncio.wait_for(
                self._producer.client.fetch_all_metadata(), timeout=self._probe_seconds
            )
        except Exception:
            return False
        return True

    async def _failed(self, row: Doc, events: list[Doc], error: BaseException) -> bool:
        """Count a failed publish against the row when it is the row's fault; park the row
        once it has failed `max_attempts` times. Returns whether the row was parked."""
        if not row_at_fault(error) or not await self._broker_answers():
            return False
        OUTBOX_PUBLISH_FAILURES.labels(self._service).inc()
        attempts = int(row.get("attempts", 0)) + 1
        failure = {
            "attempts": attempts,
            "last_error": str(error)[:2000] or type(error).__name__,
            "last_error_type": type(error).__name__,
            "last_failed_at": datetime.now(UTC),
        }
        if attempts < self._max_attempts:
            await self._db[OUTBOX].update_one({"_id": row["_id"]}, {"$set": failure})
            log.warning(
                "outbox row %s failed to publish (%d/%d): %r",
                row["_id"],
                attempts,
                self._max_attempts,
                error,
            )
            return False
        await self._park(row, events, failure)
        return True

    async def _park(self, row: Doc, events: list[Doc], failure: Doc) -> None:
        parked = {
            "_id": row["_id"],
            "created_at": row["created_at"],
            "n": row.get("n", len(events)),
            "parked_at": datetime.now(UTC),
            **failure,
            "topics": sorted({e["topic"] for e in events}),
            "tenant_id": row.get("tenant_id"),  # a row holds one tenant's events
            "event_ids": [e["id"] for e in events],
            "events": events,
        }

        async def move(session: AsyncClientSession) -> None:
            await self._db[OUTBOX_PARKED].replace_one(
                {"_id": row["_id"]}, parked, upsert=True, session=session
            )
            await self._db[OUTBOX_EVENTS].delete_one({"_id": row["_id"]}, session=session)
            await self._db[OUTBOX].delete_one({"_id": row["_id"]}, session=session)

        await in_transaction(self._db.client, move)
        log.error(
            "outbox row %s parked in %s after %d failed publishes (%s: %s); the rows behind it"
            " go on",
            row["_id"],
            OUTBOX_PARKED,
            failure["attempts"],
            failure["last_error_type"],
            failure["last_error"],
        )
        await self.count_parked()

    async def count_parked(self) -> int:
        """How many rows are parked (also sets the `mandaact_outbox_parked` gauge)."""
        parked = await self._db[OUTBOX_PARKED].count_documents({})
        OUTBOX_PARKED_ROWS.labels(self._service).set(parked)
        return int(parked)

    async def run(self, stop: asyncio.Event) -> None:
        """Relay until `stop` is set; errors are logged and retried with backoff.

        Woken, not polled: by a commit of this process (`transact`), by a change stream on
        `outbox` (other processes' commits) where the server has them, and otherwise by a slow
        poll (`poll_seconds`), the safety net. A round that published re-polls at once.
        """
        wake = asyncio.Event()
        register_wake(self._db, wake, self._owner)
        watcher = asyncio.create_task(self._watch_outbox(wake, stop), name="outbox-watch")
        try:
            await self._relay(wake, stop)
        finally:
            unregister_wake(self._db, wake)
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)

    async def _relay(self, wake: asyncio.Event, stop: asyncio.Event) -> None:
        backoff = 0.05
        recount_at = 0.0
        sweep_at = 0.0
        swept = 0
        # Read this relay's rows from the collection: at start, after an error, when a
        # handover was missed, and while such reads keep finding rows. Otherwise the rows of
        # this process's commits come handed over, and publishing them reads nothing.
        own_due = True
        while not stop.is_set():
            if time.monotonic() >= recount_at:
                # The gauge also follows rows that operators requeued or deleted.
                with contextlib.suppress(Exception):
                    await self.count_parked()
                recount_at = time.monotonic() + PARKED_RECOUNT_SECONDS
            try:
                wake.clear()  # a commit from now on wakes the next round
                # Taken before any read: a row committed after this is either in the read
                # below or handed over to the next round (and then skipped as published).
                handed, missed = take_handed(self._db)
                published = 0
                if own_due or missed:
                    published += await self.publish_pending(self._own())
                    own_due = published > 0
                else:
                    published += await self.publish_handed(handed)
                # Sweeping costs a read: on the poll, on the change stream, and while a sweep
                # keeps finding rows; not on every commit of this process.
                if self._sweeps and (swept > 0 or self._sweep_wake or time.monotonic() >= sweep_at):
                    self._sweep_wake = False
                    sweep_at = time.monotonic() + self._idle_poll()
                    swept = await self._sweep()
                    published += swept
                backoff = 0.05
                if published == 0:
                    await _wait(stop, max(0.0, self._next_wait(sweep_at)), wake)
            except Exception as exc:
                own_due = True
                self._lease_until = float("-inf")  # check the lease again before sweeping
                log.warning("outbox relay error, retrying in %.2fs: %r", backoff, exc)
                await _wait(stop, backoff)
                backoff = min(backoff * 2, 5.0)

    async def _sweep(self) -> int:
        """Publish what no live relay will, under the lease; idle it costs one read."""
        swept = self._swept()
        if self._clock() >= self._lease_until and not await self.has_pending(swept):
            return 0  # nothing to sweep: the lease is let go rather than renewed
        if not await self.ensure_lease():
            return 0  # another worker sweeps
        return await self.publish_pending(swept)

    def _idle_poll(self) -> float:
        return max(self._poll, WATCHED_POLL_SECONDS) if self.watching else self._poll

    def _next_wait(self, sweep_at: float) -> float:
        """Seconds until the next round unless woken: the sweep's time, or the poll."""
        if self._sweeps:
            return sweep_at - time.monotonic()
        return self._idle_poll()

    async def _watch_outbox(self, wake: asyncio.Event, stop: asyncio.Event) -> None:
        """Set `wake` on every insert into `outbox` (any process), by a change stream.

        Resumes after the last change seen; a server without change streams leaves the relay
        on its poll. Every (re)open also wakes the relay, for what came in meanwhile.
        """
        if not self._watch:
            return
        timeout = self._db.client.options.timeout
        await_s = WATCH_AWAIT_SECONDS if timeout is None else min(WATCH_AWAIT_SECONDS, timeout / 2)
        token: Mapping[str, Any] | None = None
        backoff = 0.5
        while not stop.is_set():
            try:
                async with await self._db[OUTBOX].watch(
                    [{"$match": {"operationType": "insert"}}],
                    resume_after=token,
                    max_await_time_ms=int(await_s * 1000),
                ) as stream:
                    self.watching = True
                    self._sweep_wake = True
                    wake.set()
                    backoff = 0.5
                    while not stop.is_set():
                        change = await stream.try_next()
                        token = stream.resume_token
                        if change is not None:
                            self._sweep_wake = True
                            wake.set()
            except OperationFailure as exc:
                self.watching = False
                if exc.code in _WATCH_UNSUPPORTED:
                    log.info("no change streams on this server (%s); the relay polls", exc)
                    return
                if exc.code in _WATCH_HISTORY_LOST:
                    token = None
                log.warning("outbox change stream failed, reopening in %.1fs: %r", backoff, exc)
                await _wait(stop, backoff)
                backoff = min(backoff * 2, 30.0)
            except PyMongoError as exc:
                self.watching = False
                log.warning("outbox change stream failed, reopening in %.1fs: %r", backoff, exc)
                await _wait(stop, backoff)
                backoff = min(backoff * 2, 30.0)


async def _wait(stop: asyncio.Event, seconds: float, wake: asyncio.Event | None = None) -> None:
    """Wait `seconds`, or less when `stop` (or `wake`) is set."""
    waits = [asyncio.ensure_future(stop.wait())]
    if wake is not None:
        waits.append(asyncio.ensure_future(wake.wait()))
    try:
        await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
