"""What the ops use cases need from storage and from Kafka (adapters in mongo.py, kafka.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from ops.domain.model import DeadLetter, GroupLag, LetterId, LiveEvent, ServiceHealth, Verdict


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One operator action, written before it is carried out."""

    id: str
    at: datetime
    tenant_id: str
    user_id: str
    action: Verdict
    group: str
    letters: tuple[LetterId, ...]


class OpsStore(Protocol):
    """Ops' own database: the audit log and the letters already handled."""

    async def handled(self, group: str) -> set[LetterId]:
        """The ids of the group's letters that were redriven or discarded."""

    async def begin(self, entry: AuditEntry) -> None:
        """Write the audit row of an action about to be carried out."""

    async def settle(self, entry: AuditEntry, letters: Sequence[DeadLetter]) -> None:
        """Record the action done: its letters handled (no longer listed), its audit row done."""


class DeadLetterTopics(Protocol):
    """The dead-letter topics and the topics letters go back to."""

    async def read(self, group: str) -> list[DeadLetter]:
        """Every letter `<group>.dlt` holds (bounded by the topic's retention)."""

    async def republish(self, letters: Sequence[DeadLetter]) -> None:
        """Send each letter's original key, value and headers to its original topic, and wait
        for the broker's acknowledgements."""


class ConsumerOffsets(Protocol):
    """Kafka's admin data about the consumer groups."""

    async def lag(self, group: str, topics: Sequence[str]) -> GroupLag:
        """The group's committed offsets against the topics' end offsets."""


class EventTail(Protocol):
    """A live view of topics from their latest offsets (no consumer group)."""

    def follow(self, topics: Sequence[str]) -> AsyncIterator[list[LiveEvent]]:
        """Batches of these topics' records from the moment of the call (empty when idle)."""


class ServiceProbes(Protocol):
    """The other services' health and metrics endpoints."""

    async def check(self, service: str, base_url: str) -> ServiceHealth:
        """What the service's `/readyz` and `/metrics` say now."""
