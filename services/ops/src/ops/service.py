"""The ops use cases: the overview, dead letters (list, redrive, discard) and the live tail."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass

from mandaact_common.clock import Clock, utc_now
from mandaact_common.domain.owner import Owner
from mandaact_contracts import topics
from mandaact_contracts.asyncapi import CONSUMERS
from ops.domain.errors import UnknownGroup
from ops.domain.model import (
    DeadLetter,
    GroupLag,
    LetterId,
    LiveEvent,
    Overview,
    Selection,
    Verdict,
    page_after,
    still_listed,
)
from ops.store.ports import (
    AuditEntry,
    ConsumerOffsets,
    DeadLetterTopics,
    EventTail,
    OpsStore,
    ServiceProbes,
)


def group_topics() -> dict[str, tuple[str, ...]]:
    """Each consumer group and the topics it reads (from the contracts)."""
    return {
        group: tuple(t for t, readers in CONSUMERS.items() if group in readers)
        for group in topics.CONSUMER_GROUPS
    }


@dataclass(frozen=True, slots=True)
class Handled:
    """What an operator action did: the letters it took, and the asked-for ids not listed."""

    group: str
    action: Verdict
    letters: tuple[DeadLetter, ...]
    missing: tuple[LetterId, ...]


@dataclass(frozen=True, slots=True)
class LetterPage:
    """A page of listed letters, newest first; `last` is where the next page starts."""

    items: tuple[DeadLetter, ...]
    last: DeadLetter | None


class OpsService:
    """What operators do, over ops' store, Kafka and the services' probes."""

    def __init__(
        self,
        store: OpsStore,
        letters: DeadLetterTopics,
        offsets: ConsumerOffsets,
        probes: ServiceProbes,
        tail: EventTail,
        services: Mapping[str, str],
        groups: Mapping[str, Sequence[str]] | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self._store = store
        self._letters = letters
        self._offsets = offsets
        self._probes = probes
        self._tail = tail
        self._services = dict(services)
        self._groups = dict(groups) if groups is not None else group_topics()
        self._clock = clock

    @property
    def groups(self) -> tuple[str, ...]:
        """The consumer groups ops watches."""
        return tuple(self._groups)

    def _known(self, group: str) -> str:
        if group not in self._groups:
            raise UnknownGroup(group)
        return group

    async def listed(self, group: str) -> list[DeadLetter]:
        """The group's letters not yet redriven or discarded, newest first."""
        letters, handled = await asyncio.gather(
            self._letters.read(self._known(group)), self._store.handled(group)
        )
        return still_listed(letters, handled)

    async def dead_letters(
        self, group: str | None, limit: int, after: tuple[int, LetterId, str] | None = None
    ) -> LetterPage:
        """A page of listed letters of one group (or of all), newest first."""
        names = [self._known(group)] if group is not None else list(self._groups)
        found = await asyncio.gather(*(self.listed(g) for g in names))
        merged = sorted(
            (d for letters in found for d in letters),
            key=lambda d: (d.timestamp_ms, d.id, d.group),
            reverse=True,
        )
        if after is not None:
            merged = [d for d in merged if (d.timestamp_ms, d.id, d.group) < after]
        page, last = page_after(merged, None, limit)
        return LetterPage(tuple(page), last)

    async def overview(self) -> Overview:
        """Services' health, lag per group and partition, listed letters per group."""
        health = asyncio.gather(*(self._probes.check(n, u) for n, u in self._services.items()))
        lags = asyncio.gather(*(self._lag(g) for g in self._groups))
        counts = asyncio.gather(*(self.listed(g) for g in self._groups))
        services, groups, letters = await asyncio.gather(health, lags, counts)
        return Overview(
            services=tuple(services),
            groups=tuple(groups),
            dead_letters={g: len(found) for g, found in zip(self._groups, letters, strict=True)},
            at=self._clock(),
        )

    async def _lag(self, group: str) -> GroupLag:
        return await self._offsets.lag(group, self._groups[group])

    async def redrive(self, operator: Owner, group: str, selection: Selection) -> Handled:
        """Send the selected letters back to their original topics (same `ce_id`, so a consumer
        that already applied one drops it); they are no longer listed."""
        return await self._handle(operator, group, selection, "redriven")

    async def discard(self, operator: Owner, group: str, selection: Selection) -> Handled:
        """Stop listing the selected letters (they stay in the topic until its retention)."""
        return await self._handle(operator, group, selection, "discarded")

    async def _handle(
        self, operator: Owner, group: str, selection: Selection, action: Verdict
    ) -> Handled:
        listed = await self.listed(group)
        chosen = tuple(d for d in listed if selection.picks(d))
        missing = tuple(sorted(selection.ids - {d.id for d in chosen}))
        if chosen:
            entry = AuditEntry(
                id=str(uuid.uuid4()),
                at=self._clock(),
                tenant_id=operator.tenant_id,
                user_id=operator.user_id,
                action=action,
                group=group,
                letters=tuple(d.id for d in chosen),
            )
            # Audit first, then the effect, then "handled": a crash in between leaves the
            # letters listed (an operator redrives again; consumers drop the repeat).
            await self._store.begin(entry)
            if action == "redriven":
                await self._letters.republish(chosen)
            await self._store.settle(entry, chosen)
        return Handled(group, action, chosen, missing)

    async def events(
        self, topic_names: Sequence[str], tenant: str | None
    ) -> AsyncGenerator[list[LiveEvent], None]:
        """New events of these topics (of one tenant, or all), a batch at a time."""
        async for batch in self._tail.follow(topic_names):
            yield [e for e in batch if e.shown_to(tenant)]
