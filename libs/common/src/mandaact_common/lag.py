"""Consumer lag per group, topic and partition: the end offset minus the group's committed one.

Read from the broker (the group's committed offsets, the partitions' end offsets), not from the
consumer's memory: the figure is the same whichever process exports it, and it keeps growing
while the group's worker is stopped. Every worker exports the lag of its own groups, and every
API process the lag of its service's groups, so the figure stays visible while the worker is
down (docs/operations.md). A refresh is three small Kafka requests per group; no database call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from mandaact_common.observability import CONSUMER_LAG, CONSUMER_LAG_REFRESHED

log = logging.getLogger(__name__)

Lag = dict[tuple[str, str, int], int]
"""(group, topic, partition) → records not yet committed by the group."""


class LagMonitor:
    """Refreshes `mandaact_consumer_lag` for some consumer groups every `interval_seconds`."""

    def __init__(
        self,
        bootstrap_servers: str,
        groups: Mapping[str, Sequence[str]],
        *,
        client_id: str,
        interval_seconds: float = 10.0,
        security: Mapping[str, Any] | None = None,
    ) -> None:
        self._groups = {group: tuple(topics) for group, topics in groups.items()}
        self._interval = interval_seconds
        self._options = {**(security or {}), "bootstrap_servers": bootstrap_servers}
        self._client_id = f"{client_id}-lag"
        self._clients: tuple[AIOKafkaAdminClient, AIOKafkaConsumer] | None = None

    async def _connect(self) -> tuple[AIOKafkaAdminClient, AIOKafkaConsumer]:
        if self._clients is None:
            admin = AIOKafkaAdminClient(**self._options, client_id=self._client_id)
            # No group, no subscription: it only asks partitions for their first and end offsets.
            offsets = AIOKafkaConsumer(
                **self._options,
                client_id=self._client_id,
                group_id=None,
                enable_auto_commit=False,
            )
            try:
                await admin.start()
                await offsets.start()
            except BaseException:
                await offsets.stop()
                await admin.close()
                raise
            self._clients = (admin, offsets)
        return self._clients

    async def close(self) -> None:
        """Release the Kafka connections (the next refresh makes new ones)."""
        if self._clients is not None:
            admin, offsets = self._clients
            self._clients = None
            await offsets.stop()
            await admin.close()

    async def refresh(self) -> Lag:
        """Read every group's lag from the broker and set the gauges; returns the figures."""
        admin, offsets = await self._connect()
        topics = sorted({t for topics in self._groups.values() for t in topics})
        partitions: dict[str, list[TopicPartition]] = {}
        for described in await admin.describe_topics(topics):
            if described.get("error_code", 0) == 0:
                partitions[described["topic"]] = [
                    TopicPartition(described["topic"], p["partition"])
                    for p in described.get("partitions", [])
                ]
        every = [tp for tps in partitions.values() for tp in tps]
        if not every:
            return {}
        end = await offsets.end_offsets(every)
        start = await offsets.beginning_offsets(every)
        lag: Lag = {}
        for group, group_topics in self._groups.items():
            committed = await admin.list_consumer_group_offsets(group)
            for topic in group_topics:
                for tp in partitions.get(topic, []):
                    meta = committed.get(tp)
                    # No commit yet: the group starts at the earliest record (auto_offset_reset).
                    position = meta.offset if meta is not None and meta.offset >= 0 else start[tp]
                    behind = max(0, end[tp] - position)
                    lag[(group, topic, tp.partition)] = behind
                    CONSUMER_LAG.labels(group, topic, str(tp.partition)).set(behind)
            CONSUMER_LAG_REFRESHED.labels(group).set_to_current_time()
        return lag

    async def run(self, stop: asyncio.Event) -> None:
        """Refresh until `stop` is set; a failed refresh keeps the last figures and is retried."""
        failing = False
        try:
            while not stop.is_set():
                try:
                    await self.refresh()
                    failing = False
                except Exception as exc:
                    if not failing:
                        log.warning("consumer lag not readable (%r); retrying", exc)
                    failing = True
                    await self.close()  # reconnect next time
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self._interval)
        finally:
            await self.close()
