"""Test support: fakes of Kafka and the probes, and dead letters as the sink writes them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from ops.domain.model import DeadLetter, GroupLag, LetterId, LiveEvent, ServiceHealth, lag_of


def letter(
    group: str,
    partition: int,
    offset: int,
    *,
    topic: str = "action.completed",
    ce_id: str = "e-1",
    tenant: str = "acme",
    value: bytes = b'{"broken": true}',
    at_ms: int = 1_000,
    error: str = "ValidationError",
) -> DeadLetter:
    """A letter with the headers `KafkaDeadLetterSink` writes."""
    return DeadLetter(
        group=group,
        id=LetterId(partition, offset),
        key=f"{tenant}:alice".encode(),
        value=value,
        headers=(
            ("ce_id", ce_id.encode()),
            ("ce_tenantid", tenant.encode()),
            ("ce_type", b"mandaact.action.completed.v1"),
            ("dlt_error_type", error.encode()),
            ("dlt_error_message", b"1 validation error"),
            ("dlt_original_topic", topic.encode()),
            ("dlt_original_partition", b"2"),
            ("dlt_original_offset", str(offset + 100).encode()),
            ("dlt_consumer_group", group.encode()),
            ("dlt_failed_at", b"2026-11-20T03:00:00+00:00"),
        ),
        timestamp_ms=at_ms,
    )


@dataclass
class FakeKafka:
    """Dead-letter topics, end/committed offsets and a tail, in memory."""

    letters: dict[str, list[DeadLetter]] = field(default_factory=dict)
    republished: list[DeadLetter] = field(default_factory=list)
    ends: dict[tuple[str, int], int] = field(default_factory=dict)
    committed: dict[str, dict[tuple[str, int], int]] = field(default_factory=dict)
    live: asyncio.Queue[list[LiveEvent]] = field(default_factory=asyncio.Queue)
    fail_republish: bool = False

    async def read(self, group: str) -> list[DeadLetter]:
        return list(self.letters.get(group, []))

    async def republish(self, letters: Sequence[DeadLetter]) -> None:
        if self.fail_republish:
            raise ConnectionError("broker down")
        self.republished.extend(letters)

    async def lag(self, group: str, topics: Sequence[str]) -> GroupLag:
        ends = {k: v for k, v in self.ends.items() if k[0] in topics}
        return lag_of(group, ends, {}, self.committed.get(group, {}))

    async def follow(self, topics: Sequence[str]) -> AsyncIterator[list[LiveEvent]]:
        while True:
            batch = await self.live.get()
            yield [e for e in batch if e.topic in topics]


@dataclass
class FakeProbes:
    """Every service ready, with a pending outbox of 3 for checkins."""

    down: set[str] = field(default_factory=set)

    async def check(self, service: str, base_url: str) -> ServiceHealth:
        if service in self.down:
            return ServiceHealth(service, False, "unreachable: ConnectError")
        return ServiceHealth(
            service, True, '{"status":"ready"}', outbox_pending=3 if service == "checkins" else 0
        )
