"""Transactional outbox: events are stored with the state change, then relayed to Kafka."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from aiokafka import AIOKafkaProducer
from pydantic import BaseModel
from pymongo import ASCENDING, AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from mandaact_common.mongo import Doc, find_in, in_transaction
from mandaact_common.observability import OUTBOX_PENDING, OUTBOX_PUBLISHED, current_traceparent
from mandaact_contracts.envelope import (
    Envelope,
    encode_value,
    new_envelope,
    partition_key,
    to_kafka_headers,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

OUTBOX = "outbox"
OUTBOX_EVENTS = "outbox_events"
EVENTS_PER_ROW = 1000
RELAY_LEASE = "outbox_relay_lease"


def make_producer(bootstrap_servers: str, client_id: str) -> AIOKafkaProducer:
    """An idempotent producer: no duplicates or reordering per partition on retries."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers,
        client_id=client_id,
        enable_idempotence=True,
        acks="all",
        linger_ms=5,
        request_timeout_ms=30000,
    )


@dataclass
class Transaction:
    """One unit of work: a session in a Mongo transaction and the events it causes."""

    session: AsyncClientSession
    db: AsyncDatabase[Doc]
    source: str
    events: list[tuple[str, Envelope, bytes]] = field(default_factory=list)

    def emit(self, topic: str, payload: BaseModel, subject: str | None = None) -> Envelope:
        """Record an event to be written to the outbox with this transaction's changes."""
        envelope = new_envelope(
            topic, payload, self.source, subject=subject, traceparent=current_traceparent()
        )
        self.events.append((topic, envelope, partition_key(payload)))
        return envelope

    async def flush(self) -> None:
        """Write the recorded events into the outbox in this transaction.

        The events of one transaction share one outbox document (chunked), so a consumer batch
        that causes a thousand events adds a couple of rows, not a thousand: the relay's reads
        and deletes stay small whatever the event volume.
        """
        if not self.events:
            return
        now = datetime.now(UTC)
        events = [
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
        chunks = [events[i : i + EVENTS_PER_ROW] for i in range(0, len(events), EVENTS_PER_ROW)]
        # The small row is what the relay sorts; the events sit beside it, read by `_id`.
        await self.db[OUTBOX].insert_many(
            [{"_id": c[0]["id"], "created_at": now, "n": len(c)} for c in chunks],
            session=self.session,
        )
        await self.db[OUTBOX_EVENTS].insert_many(
            [{"_id": c[0]["id"], "events": c} for c in chunks], session=self.session
        )
        self.events.clear()


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
    """Run `work` and write the events it emits in the same Mongo transaction."""

    async def callback(session: AsyncClientSession) -> T:
        tx = Transaction(session=session, db=db, source=source)
        result = await work(tx)
        await tx.flush()
        return result

    return await in_transaction(client, callback)


async def ensure_outbox_indexes(db: AsyncDatabase[Doc]) -> None:
    """Indexes the relay reads by."""
    await db[OUTBOX].create_index([("created_at", ASCENDING), ("_id", ASCENDING)])


class OutboxRelay:
    """Publishes outbox rows in creation order with an idempotent producer, then deletes them.

    A row is deleted only after Kafka acknowledged it (acks=all), so a crash re-sends it with
    the same `ce_id`, and consumers drop the repeat. A lease lets one relay of a service run
    at a time when several workers are up.
    """

    def __init__(
        self,
        db: AsyncDatabase[Doc],
        producer: AIOKafkaProducer,
        service: str,
        *,
        poll_seconds: float = 0.05,
        rows_per_poll: int = 10,
        lease_seconds: float = 10.0,
    ) -> None:
        self._db = db
        self._producer = producer
        self._service = service
        self._poll = poll_seconds
        self._rows = rows_per_poll
        self._lease_seconds = lease_seconds
        self._owner = uuid.uuid4().hex

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

    async def publish_pending(self) -> int:
        """Publish the events of the oldest outbox rows; return how many were published."""
        rows: list[dict[str, Any]] = (
            await self._db[OUTBOX]
            .find({})
            .sort([("created_at", ASCENDING), ("_id", ASCENDING)])
            .limit(self._rows)
            .to_list()
        )
        if not rows:
            OUTBOX_PENDING.labels(self._service).set(0)
            return 0
        futures = []
        events_of = await _events_of(self._db, [row["_id"] for row in rows])
        events = [event for row in rows for event in events_of[row["_id"]]]
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
        await asyncio.gather(*futures)
        ids = [r["_id"] for r in rows]
        await self._db[OUTBOX_EVENTS].delete_many({"_id": {"$in": ids}})
        await self._db[OUTBOX].delete_many({"_id": {"$in": ids}})
        for event in events:
            OUTBOX_PUBLISHED.labels(self._service, event["topic"]).inc()
        return len(events)

    async def run(self, stop: asyncio.Event) -> None:
        """Relay until `stop` is set; errors are logged and retried with backoff."""
        backoff = self._poll
        while not stop.is_set():
            try:
                if not await self._hold_lease():
                    await _wait(stop, self._lease_seconds / 2)
                    continue
                published = await self.publish_pending()
                backoff = self._poll
                if published == 0:
                    await _wait(stop, self._poll)
            except Exception as exc:
                log.warning("outbox relay error, retrying in %.2fs: %r", backoff, exc)
                await _wait(stop, backoff)
                backoff = min(backoff * 2, 5.0)


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
