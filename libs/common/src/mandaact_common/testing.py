"""Helpers for tests and benchmarks: Kafka records made in memory, a dead-letter sink that keeps.

They feed `IdempotentConsumer.process()` exactly what a broker would hand it (binary-mode
CloudEvents headers and the JSON value), so the real transaction and dedupe run against the
real server without a round trip through Kafka.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from mandaact_common.auth import mint_token
from mandaact_common.consumer import Record
from mandaact_common.settings import DEV_JWT_SECRET
from mandaact_contracts.envelope import (
    Envelope,
    encode_value,
    new_envelope,
    partition_key,
    to_kafka_headers,
)
from mandaact_contracts.events import EVENT_TYPES, EventPayload, spec_for_ce_type

_TOPIC_OF_MODEL = {spec.model: topic for topic, spec in EVENT_TYPES.items()}


@dataclass(frozen=True, slots=True)
class MemoryRecord:
    """A Kafka consumer record as the idempotent consumer reads it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]]


def record_of(
    event: EventPayload | Envelope, *, offset: int = 0, partition: int = 0, source: str = "test"
) -> MemoryRecord:
    """The record that carries `event` on its topic (a payload gets a new envelope first)."""
    if isinstance(event, Envelope):
        envelope = event
        topic = spec_for_ce_type(envelope.type).topic
    else:
        topic = _TOPIC_OF_MODEL[type(event)]
        envelope = new_envelope(topic, event, source)
    return MemoryRecord(
        topic,
        partition,
        offset,
        partition_key(envelope),
        encode_value(envelope),
        to_kafka_headers(envelope),
    )


class RecordingDeadLetters:
    """A dead-letter sink that keeps what it was given."""

    def __init__(self) -> None:
        self.sent: list[tuple[Record, BaseException]] = []

    async def send(self, record: Record, error: BaseException, attempts: int) -> None:
        """Keep the record and its error."""
        self.sent.append((record, error))


class SettableClock:
    """A clock tests set and move by hand; use cases read `now` from it like from `utc_now`."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, by: timedelta) -> datetime:
        """Move the clock forward and return the new instant."""
        self.now += by
        return self.now


def auth_header(tenant: str = "acme", user: str = "alice", **token_args: Any) -> dict[str, str]:
    """An Authorization header with a dev token (extra args go to `mint_token`)."""
    return {"Authorization": f"Bearer {mint_token(DEV_JWT_SECRET, tenant, user, **token_args)}"}
