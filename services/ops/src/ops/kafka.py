"""Ops' Kafka adapter: admin offsets, the dead-letter topics, re-publishing, the live tail."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from mandaact_common.kafka import client_security, partitions_of
from mandaact_common.outbox import make_producer
from mandaact_contracts.topics import dead_letter_topic
from ops.domain.model import DeadLetter, GroupLag, LetterId, LiveEvent, lag_of
from ops.settings import Settings

log = logging.getLogger(__name__)

READ_LIMIT_PER_GROUP = 10_000
"""At most this many letters are read from one dead-letter topic per listing (newest kept)."""
READ_DEADLINE_S = 10.0
"""The longest one read of a dead-letter topic takes (what was read by then is answered)."""


class KafkaOps:
    """One admin client, one metadata consumer and one idempotent producer per process."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._security: dict[str, Any] = client_security(settings)
        self._admin: AIOKafkaAdminClient | None = None
        self._meta: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    def _consumer(self) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            **self._security,
            bootstrap_servers=self._settings.kafka_bootstrap_servers,
            client_id=f"mandaact-ops-{uuid.uuid4().hex[:6]}",
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )

    async def _started(self) -> tuple[AIOKafkaAdminClient, AIOKafkaConsumer, AIOKafkaProducer]:
        """The clients, started on first use (the API starts while the broker may be down)."""
        async with self._lock:
            if self._admin is None or self._meta is None or self._producer is None:
                admin = AIOKafkaAdminClient(
                    **self._security, bootstrap_servers=self._settings.kafka_bootstrap_servers
                )
                meta = self._consumer()
                producer = make_producer(
                    self._settings.kafka_bootstrap_servers, "mandaact-ops", security=self._security
                )
                try:
                    await admin.start()
                    await meta.start()
                    await producer.start()
                except Exception:
                    await _quietly_close(admin, meta, producer)
                    raise
                self._admin, self._meta, self._producer = admin, meta, producer
            return self._admin, self._meta, self._producer

    async def close(self) -> None:
        """Stop the clients."""
        await _quietly_close(self._admin, self._meta, self._producer)
        self._admin = self._meta = self._producer = None

    async def _partitions(self, _consumer: AIOKafkaConsumer, topics: Sequence[str]) -> list[Any]:
        """Every partition of these topics, from fresh cluster metadata."""
        return await partitions_of(
            self._settings.kafka_bootstrap_servers, topics, security=self._security
        )

    async def lag(self, group: str, topics: Sequence[str]) -> GroupLag:
        """Committed offsets of the group against the end offsets of its topics."""
        admin, meta, _ = await self._started()
        partitions = await self._partitions(meta, topics)
        ends = await meta.end_offsets(partitions)
        starts = await meta.beginning_offsets(partitions)
        committed = await admin.list_consumer_group_offsets(group)
        return lag_of(
            group,
            {(tp.topic, tp.partition): end for tp, end in ends.items()},
            {(tp.topic, tp.partition): start for tp, start in starts.items()},
            {(tp.topic, tp.partition): om.offset for tp, om in committed.items()},
        )

    async def read(self, group: str) -> list[DeadLetter]:
        """The letters of `<group>.dlt` (the newest READ_LIMIT_PER_GROUP at most)."""
        await self._started()
        consumer = self._consumer()
        await consumer.start()
        try:
            partitions = await self._partitions(consumer, [dead_letter_topic(group)])
            if not partitions:
                return []
            consumer.assign(partitions)
            ends = await consumer.end_offsets(partitions)
            starts = await consumer.beginning_offsets(partitions)
            share = max(1, READ_LIMIT_PER_GROUP // len(partitions))
            todo = {}
            for tp in partitions:
                first = max(starts[tp], ends[tp] - share)
                if first < ends[tp]:
                    consumer.seek(tp, first)
                    todo[tp] = ends[tp]
            letters: list[DeadLetter] = []
            deadline = asyncio.get_running_loop().time() + READ_DEADLINE_S
            while todo and asyncio.get_running_loop().time() < deadline:
                batch = await consumer.getmany(*todo, timeout_ms=1000, max_records=1000)
                for tp, records in batch.items():
                    for r in records:
                        if r.offset < todo.get(tp, -1):
                            letters.append(
                                DeadLetter(
                                    group=group,
                                    id=LetterId(tp.partition, r.offset),
                                    key=r.key,
                                    value=r.value,
                                    headers=tuple((k, bytes(v)) for k, v in r.headers),
                                    timestamp_ms=r.timestamp,
                                )
                            )
                for tp in list(todo):
                    if await consumer.position(tp) >= todo[tp]:
                        del todo[tp]
            return letters
        finally:
            await consumer.stop()

    async def republish(self, letters: Sequence[DeadLetter]) -> None:
        """Each letter's original key, value and headers (same `ce_id`) to its original topic."""
        _, _, producer = await self._started()
        sent = []
        for letter in letters:
            topic = letter.original_topic
            if topic is None:
                raise ValueError(f"letter {letter.id} of {letter.group} names no original topic")
            sent.append(
                await producer.send(
                    topic,
                    value=letter.value,
                    key=letter.key,
                    headers=letter.original_headers(),
                )
            )
        await asyncio.gather(*sent)

    async def follow(self, topics: Sequence[str]) -> AsyncIterator[list[LiveEvent]]:
        """Batches of new records of these topics (an empty batch each idle second)."""
        await self._started()
        consumer = self._consumer()
        await consumer.start()
        try:
            partitions = await self._partitions(consumer, topics)
            consumer.assign(partitions)
            await consumer.seek_to_end(*partitions)
            for tp in partitions:
                await consumer.position(tp)  # pin "latest" now, not at the first poll
            while True:
                batch = await consumer.getmany(timeout_ms=1000, max_records=200)
                yield [
                    LiveEvent(
                        topic=tp.topic,
                        partition=tp.partition,
                        offset=r.offset,
                        key=r.key,
                        value=r.value,
                        headers=tuple((k, bytes(v)) for k, v in r.headers),
                        timestamp_ms=r.timestamp,
                    )
                    for tp, records in batch.items()
                    for r in records
                ]
        finally:
            await consumer.stop()


async def _quietly_close(*clients: Any) -> None:
    for c in clients:
        if c is None:
            continue
        with contextlib.suppress(Exception):
            await (c.close() if isinstance(c, AIOKafkaAdminClient) else c.stop())
