"""Request and response bodies of the ops API (pydantic), mapped from the domain."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mandaact_common.paging import decode_cursor, encode_cursor
from ops.domain.model import DeadLetter, GroupLag, LetterId, Overview, Selection, ServiceHealth
from ops.service import Handled, LetterPage

MAX_IDS = 1000


def cursor_text(last: DeadLetter | None) -> str | None:
    """The opaque `next` of a page."""
    if last is None:
        return None
    return encode_cursor(last.timestamp_ms, last.id.partition, last.id.offset, last.group)


def cursor_of(token: str) -> tuple[int, LetterId, str]:
    """The keyset position of a `cursor` this API returned (422 otherwise)."""
    at, partition, offset, group = decode_cursor(token, (int, int, int, str))
    return int(at), LetterId(int(partition), int(offset)), str(group)


def _when(letter: DeadLetter) -> datetime:
    stamped = letter.header("dlt_failed_at")
    if stamped:
        try:
            return datetime.fromisoformat(stamped)
        except ValueError:
            pass
    return datetime.fromtimestamp(letter.timestamp_ms / 1000, UTC)


def _int(text: str | None) -> int | None:
    return int(text) if text is not None and text.lstrip("-").isdigit() else None


class DeadLetterPublic(BaseModel):
    """A dead letter: where it came from, what it was and why it failed."""

    id: str = Field(description="Its place in `<group>.dlt`: `<partition>-<offset>`.")
    group: str
    topic: str | None = Field(description="The topic it was consumed from.")
    partition: int | None = Field(description="Its partition in that topic.")
    offset: int | None = Field(description="Its offset in that topic.")
    key: str | None
    headers: dict[str, str] = Field(description="Every header, the `dlt_*` ones included.")
    value: str | None = Field(description="The payload as text.")
    error: str = Field(description="`<type>: <message>` from the `dlt_error_*` headers.")
    dead_lettered_at: datetime

    @classmethod
    def from_domain(cls, letter: DeadLetter) -> Self:
        """The public form of a letter."""
        return cls(
            id=str(letter.id),
            group=letter.group,
            topic=letter.original_topic,
            partition=_int(letter.header("dlt_original_partition")),
            offset=_int(letter.header("dlt_original_offset")),
            key=letter.key.decode(errors="replace") if letter.key is not None else None,
            headers={k: v.decode(errors="replace") for k, v in letter.headers},
            value=letter.value.decode(errors="replace") if letter.value is not None else None,
            error=letter.error,
            dead_lettered_at=_when(letter),
        )


class DeadLetterPage(BaseModel):
    """A page of listed letters, newest first."""

    items: list[DeadLetterPublic]
    next: str | None = Field(description="The `cursor` of the following page; null at the end.")

    @classmethod
    def from_domain(cls, page: LetterPage) -> Self:
        """The public form of a page."""
        return cls(
            items=[DeadLetterPublic.from_domain(d) for d in page.items],
            next=cursor_text(page.last),
        )


class LetterSelection(BaseModel):
    """Which letters: `{"ids": [...]}` or `{"all": true}`."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    ids: list[str] | None = Field(
        None,
        min_length=1,
        max_length=MAX_IDS,
        description="Ids from the listing (`<partition>-<offset>`).",
    )
    all_: bool = Field(False, alias="all", description="Every letter the group lists.")

    @model_validator(mode="after")
    def _one_of(self) -> Self:
        if (self.ids is None) == (not self.all_):
            raise ValueError('send either {"ids": [...]} or {"all": true}')
        return self

    def to_domain(self) -> Selection:
        """The selection the use cases take (an id that is not one answers 422)."""
        if self.all_:
            return Selection(everything=True)
        return Selection(ids=frozenset(LetterId.parse(i) for i in self.ids or ()))


class HandledPublic(BaseModel):
    """What a redrive or discard did."""

    group: str
    action: Literal["redriven", "discarded"]
    count: int
    ids: list[str] = Field(description="The letters handled (no longer listed).")
    missing: list[str] = Field(description="Ids asked for that the group does not list.")

    @classmethod
    def from_domain(cls, done: Handled) -> Self:
        """The public form of an action's result."""
        return cls(
            group=done.group,
            action=done.action,
            count=len(done.letters),
            ids=[str(d.id) for d in done.letters],
            missing=[str(i) for i in done.missing],
        )


class PartitionLagPublic(BaseModel):
    """One partition's lag."""

    topic: str
    partition: int
    committed: int | None = Field(description="The group's committed offset (null: none yet).")
    end: int
    lag: int


class GroupLagPublic(BaseModel):
    """A consumer group's lag."""

    group: str
    lag: int = Field(description="Summed over its partitions.")
    partitions: list[PartitionLagPublic]

    @classmethod
    def from_domain(cls, group: GroupLag) -> Self:
        """The public form of a group's lag."""
        return cls(
            group=group.group,
            lag=group.total,
            partitions=[
                PartitionLagPublic(
                    topic=p.topic,
                    partition=p.partition,
                    committed=p.committed,
                    end=p.end,
                    lag=p.lag,
                )
                for p in group.partitions
            ],
        )


class ServiceHealthPublic(BaseModel):
    """A service's readiness and outbox, as its `/readyz` and `/metrics` say."""

    service: str
    ready: bool
    detail: str
    outbox_pending: float | None
    outbox_oldest_age_seconds: float | None
    outbox_parked: float | None

    @classmethod
    def from_domain(cls, health: ServiceHealth) -> Self:
        """The public form of a service's health."""
        return cls(
            service=health.service,
            ready=health.ready,
            detail=health.detail,
            outbox_pending=health.outbox_pending,
            outbox_oldest_age_seconds=health.outbox_oldest_age_seconds,
            outbox_parked=health.outbox_parked,
        )


class OverviewPublic(BaseModel):
    """Services' health, consumer lag per group and partition, dead letters per group."""

    at: datetime
    services: list[ServiceHealthPublic]
    groups: list[GroupLagPublic]
    dead_letters: dict[str, int] = Field(description="Letters still listed, per group.")

    @classmethod
    def from_domain(cls, overview: Overview) -> Self:
        """The public form of the overview."""
        return cls(
            at=overview.at or datetime.now(UTC),
            services=[ServiceHealthPublic.from_domain(s) for s in overview.services],
            groups=[GroupLagPublic.from_domain(g) for g in overview.groups],
            dead_letters=dict(overview.dead_letters),
        )


IdText = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")


class DevTokenCreate(BaseModel):
    """Whom a development token is for (local and test modes only)."""

    model_config = ConfigDict(extra="forbid")

    tenant: str = IdText
    user: str = IdText
    roles: list[Literal["admin", "operator"]] = Field(default_factory=list, max_length=2)


class DevTokenPublic(BaseModel):
    """A signed development token."""

    token: str
    tenant: str
    user: str
    roles: list[str]
    expires_in: int


class ConsoleConfig(BaseModel):
    """What the console's script needs: where the services answer, whether it may mint."""

    services: dict[str, str]
    dev_tokens: bool
