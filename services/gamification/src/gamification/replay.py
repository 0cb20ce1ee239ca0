"""Rebuild the whole gamification state from the Kafka topics into an empty database.

`mandaact-gamification-replay --database NAME` reads every partition of the consumed topics from
the beginning up to the end offsets seen at start (no consumer group, nothing committed) and
feeds the records through the same idempotent consumer and handler the worker uses. The events
the rebuild would announce stay in the new database's outbox and are dropped at the end unless
`--keep-outbox` is given, so a replay never republishes history.

Erasures are replayed too (`user.deleted` and `tenant.deleted` are among the topics read): an
erased user's (or tenant's) later events are dropped as the worker drops them, and once every
record is in, their erasures run (at once: no grace is needed with nothing else writing), so a
rebuild never brings an erased user back. Their tombstones stay in the new database.

When a partition no longer starts at offset 0 (its retention has deleted the first events), the
rebuild cannot reach the whole history: it says so on standard error, names the partitions and
their first offsets in its output (`truncated`), and exits with status 3.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from dataclasses import dataclass
from datetime import timedelta

from aiokafka import AIOKafkaConsumer

from gamification.bootstrap import CONSUMES, GROUP, accept_days, mongo_handler
from gamification.settings import Settings
from gamification.store.mongo import LIFECYCLE, ensure_indexes
from mandaact_common.consumer import IdempotentConsumer, Record
from mandaact_common.kafka import client_security, partitions_of
from mandaact_common.lifecycle import ensure_lifecycle_indexes, eraser_from_settings
from mandaact_common.mongo import make_client
from mandaact_common.outbox import OUTBOX, OUTBOX_EVENTS, ensure_outbox_indexes

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReplayStats:
    """What a replay read and where it wrote."""

    database: str
    records: int
    batches: int
    truncated: dict[str, int]
    """Partitions (`topic/partition`) whose first event is gone, with their first offset."""


class _CountDeadLetters:
    """A record the live worker dead-lettered is skipped by the replay too, and counted."""

    def __init__(self) -> None:
        self.skipped = 0

    async def send(self, record: Record, error: BaseException, attempts: int) -> None:
        self.skipped += 1
        log.warning("replay skipped %s@%d: %s", record.topic, record.offset, error)


async def replay(settings: Settings, database: str, *, keep_outbox: bool = False) -> ReplayStats:
    """Fold every event of the consumed topics into `database` (which should be empty)."""
    client = make_client(settings.mongodb_url)
    db = client[database]
    if await db.list_collection_names():
        await client.close()
        raise SystemExit(f"database {database!r} is not empty; replay needs an empty one")
    await ensure_indexes(db)
    await ensure_outbox_indexes(db)
    await ensure_lifecycle_indexes(db)
    eraser = eraser_from_settings(LIFECYCLE, client, db, settings)
    eraser.grace = timedelta(0)  # nothing else writes to the new database
    consumer = IdempotentConsumer(
        group=GROUP,
        client=client,
        db=db,
        handler=mongo_handler(client, db, accept_days=accept_days(settings)),
        dead_letters=_CountDeadLetters(),
        max_retries=settings.consumer_max_retries,
        backoff_seconds=settings.consumer_backoff_seconds,
        eraser=eraser,
    )
    security = client_security(settings)
    reader = AIOKafkaConsumer(
        **security,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        enable_auto_commit=False,
        group_id=None,
        auto_offset_reset="earliest",
        max_poll_records=settings.consumer_batch_size,
    )
    await reader.start()
    records = batches = 0
    truncated: dict[str, int] = {}
    try:
        partitions = await partitions_of(
            settings.kafka_bootstrap_servers, CONSUMES, security=security
        )
        reader.assign(partitions)
        await reader.seek_to_beginning(*partitions)
        first = await reader.beginning_offsets(partitions)
        truncated = {f"{tp.topic}/{tp.partition}": first[tp] for tp in partitions if first[tp]}
        for name, offset in sorted(truncated.items()):
            log.warning(
                "%s starts at offset %d: retention has deleted its first events", name, offset
            )
        end = await reader.end_offsets(partitions)
        remaining = {tp for tp in partitions if end[tp] > 0}
        while remaining:
            fetched = await reader.getmany(*remaining, timeout_ms=1000)
            batch = []
            for tp, recs in fetched.items():
                batch += [r for r in recs if r.offset < end[tp]]
                if await reader.position(tp) >= end[tp]:
                    remaining.discard(tp)
            if batch:
                await consumer.process(batch)
                records += len(batch)
                batches += 1
    finally:
        await reader.stop()
    await eraser.run_due()
    if not keep_outbox:
        await db[OUTBOX].delete_many({})
        await db[OUTBOX_EVENTS].delete_many({})
    await client.close()
    return ReplayStats(database, records, batches, truncated)


def main() -> None:
    """Entry point of `mandaact-gamification-replay`."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", required=True, help="an empty database to rebuild into")
    parser.add_argument("--keep-outbox", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    stats = asyncio.run(replay(Settings(), args.database, keep_outbox=args.keep_outbox))
    print(json.dumps(stats.__dict__))
    if stats.truncated:
        print(
            "replay incomplete: the topics' retention no longer reaches the first event of "
            + ", ".join(sorted(stats.truncated))
            + "; the rebuilt state misses what those events held",
            file=sys.stderr,
        )
        raise SystemExit(3)
