"""Small Kafka helpers shared by tools that read topics without a consumer group."""

from __future__ import annotations

from collections.abc import Iterable

from aiokafka import TopicPartition
from aiokafka.client import AIOKafkaClient


async def partitions_of(bootstrap_servers: str, topics: Iterable[str]) -> list[TopicPartition]:
    """Every partition of these topics, from fresh cluster metadata."""
    client = AIOKafkaClient(bootstrap_servers=bootstrap_servers)
    await client.bootstrap()
    try:
        metadata = await client.fetch_all_metadata()
    finally:
        await client.close()
    return [
        TopicPartition(topic, p)
        for topic in topics
        for p in sorted(metadata.partitions_for_topic(topic) or set())
    ]
