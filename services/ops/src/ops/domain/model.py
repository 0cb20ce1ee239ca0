"""What operators look at: consumer lag, dead letters and which of them were handled. Pure."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final, Literal

from mandaact_common.errors import InvalidInput

DLT_HEADER_PREFIX: Final = "dlt_"
"""Headers the dead-letter sink adds (mandaact_common.consumer.KafkaDeadLetterSink)."""

_LETTER_ID = re.compile(r"(\d{1,5})-(\d{1,19})")


@dataclass(frozen=True, order=True, slots=True)
class LetterId:
    """Where a dead letter sits in its group's dead-letter topic: `<partition>-<offset>`."""

    partition: int
    offset: int

    def __str__(self) -> str:
        return f"{self.partition}-{self.offset}"

    @classmethod
    def parse(cls, text: str, field: str = "body.ids") -> LetterId:
        """A letter id as the listing shows it, else InvalidInput."""
        match = _LETTER_ID.fullmatch(text)
        if match is None:
            raise InvalidInput(field, f"{text!r} is not a dead-letter id (`<partition>-<offset>`)")
        return cls(int(match.group(1)), int(match.group(2)))


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One record of `<group>.dlt`: the original message plus why it failed."""

    group: str
    id: LetterId
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    timestamp_ms: int

    def header(self, name: str) -> str | None:
        """A header's value as text (the last one of that name), None when absent."""
        found = [v for k, v in self.headers if k == name]
        return found[-1].decode(errors="replace") if found else None

    @property
    def original_topic(self) -> str | None:
        """The topic the message was consumed from."""
        return self.header("dlt_original_topic")

    @property
    def error(self) -> str:
        """`<type>: <message>` from the error headers."""
        kind = self.header("dlt_error_type") or "unknown error"
        message = self.header("dlt_error_message")
        return f"{kind}: {message}" if message else kind

    @property
    def tenant_id(self) -> str | None:
        """The tenant of the original event (its `ce_tenantid`), when it had one."""
        return self.header("ce_tenantid")

    def original_headers(self) -> list[tuple[str, bytes]]:
        """The headers the message had before it was dead-lettered (the same `ce_id`)."""
        return [(k, v) for k, v in self.headers if not k.startswith(DLT_HEADER_PREFIX)]


@dataclass(frozen=True, slots=True)
class Selection:
    """Which letters an operator acts on: named ids, or every listed one."""

    ids: frozenset[LetterId] = frozenset()
    everything: bool = False

    def picks(self, letter: DeadLetter) -> bool:
        """Whether this selection takes the letter."""
        return self.everything or letter.id in self.ids


Verdict = Literal["redriven", "discarded"]


def still_listed(letters: Iterable[DeadLetter], handled: set[LetterId]) -> list[DeadLetter]:
    """The letters not yet redriven or discarded, newest first."""
    open_letters = [letter for letter in letters if letter.id not in handled]
    return sorted(open_letters, key=lambda d: (d.timestamp_ms, d.id), reverse=True)


def page_after(
    letters: list[DeadLetter], after: tuple[int, LetterId] | None, limit: int
) -> tuple[list[DeadLetter], DeadLetter | None]:
    """One page of newest-first letters after a keyset position; and the last one if more."""
    if after is not None:
        letters = [d for d in letters if (d.timestamp_ms, d.id) < after]
    page = letters[:limit]
    more = len(letters) > limit
    return page, page[-1] if more and page else None


@dataclass(frozen=True, slots=True)
class PartitionLag:
    """One partition of a topic a group reads: how far its committed offset is behind."""

    topic: str
    partition: int
    committed: int | None
    end: int
    lag: int


@dataclass(frozen=True, slots=True)
class GroupLag:
    """A consumer group's lag, per partition and in all."""

    group: str
    partitions: tuple[PartitionLag, ...]

    @property
    def total(self) -> int:
        """The group's whole lag (messages not yet committed)."""
        return sum(p.lag for p in self.partitions)


def lag_of(
    group: str,
    ends: Mapping[tuple[str, int], int],
    starts: Mapping[tuple[str, int], int],
    committed: Mapping[tuple[str, int], int],
) -> GroupLag:
    """Lag per partition: end offset minus committed (minus the log start when the group never
    committed there, since it would start from there)."""
    rows = []
    for (topic, partition), end in sorted(ends.items()):
        done = committed.get((topic, partition))
        base = done if done is not None and done >= 0 else starts.get((topic, partition), 0)
        rows.append(PartitionLag(topic, partition, done, end, max(0, end - base)))
    return GroupLag(group, tuple(rows))


@dataclass(frozen=True, slots=True)
class ServiceHealth:
    """What a service's `/readyz` and `/metrics` said."""

    service: str
    ready: bool
    detail: str
    outbox_pending: float | None = None
    outbox_oldest_age_seconds: float | None = None
    outbox_parked: float | None = None


@dataclass(frozen=True, slots=True)
class Overview:
    """Everything the operator's first screen shows."""

    services: tuple[ServiceHealth, ...]
    groups: tuple[GroupLag, ...]
    dead_letters: Mapping[str, int] = field(default_factory=dict)
    at: datetime | None = None


def metric_value(text: str, name: str) -> float | None:
    """The sum of a Prometheus text metric's samples (any labels), None when absent."""
    total: float | None = None
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        rest = line[len(name) :]
        if rest and rest[0] not in "{ ":
            continue  # a longer name with this prefix
        try:
            value = float(rest.rsplit(" ", 1)[-1])
        except ValueError:
            continue
        total = value if total is None else total + value
    return total


@dataclass(frozen=True, slots=True)
class LiveEvent:
    """One record seen by the live tail."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    timestamp_ms: int

    def header(self, name: str) -> str | None:
        """A header's value as text, None when absent."""
        found = [v for k, v in self.headers if k == name]
        return found[-1].decode(errors="replace") if found else None

    def shown_to(self, tenant: str | None) -> bool:
        """Whether a tail filtered on `tenant` (None: every tenant) shows this event."""
        return tenant is None or self.header("ce_tenantid") == tenant
