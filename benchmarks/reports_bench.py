"""Reports: folding a week of events and writing reports, next to one raw aggregation.

In the same run, over the same week of events of BENCH_REPORT_USERS users (default 10,000):
- fold: every event through the real idempotent consumer and batch handler, 500 per batch, one
  transaction per batch (what the worker does with a backlog);
- reports: every user's report built by the scheduler's path (claim, read the fold, derive the
  stats, the deterministic summary, store report + outbox event), without an LLM call;
- baseline: the same check-in events stored raw in one collection, and one MongoDB aggregation
  pipeline computing each user's weekly check-in count from them (latest state by seq).
The baseline computes one number per user; a report holds the whole fold. The comparison says what
reading a week costs when it is folded as it arrives versus scanning raw events at report time.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

from mandaact_common.consumer import IdempotentConsumer, Record
from mandaact_common.mongo import make_client
from mandaact_common.testing import MemoryRecord, record_of
from mandaact_common.worker import WorkerDeps
from mandaact_contracts import topics
from mandaact_contracts.events import (
    ActionCompleted,
    ActionSnapshot,
    ActionUncompleted,
    EventPayload,
    GoalChanged,
    MandalartSnapshot,
    ScheduleSnapshot,
    StreakChanged,
    SubGoalSnapshot,
    UserChanged,
    XpAwarded,
)
from reports.bootstrap import ensure_indexes, fold_handler, mongo_service
from reports.llm import FallbackWriter
from reports.settings import Settings
from reports.store.mongo import REPORTS

USERS = int(os.environ.get("BENCH_REPORT_USERS", "10000"))
BATCH = 500
MONDAY = date(2026, 11, 16)  # 2026-W47
WEEK = "2026-W47"
TIMEZONES = ("Asia/Seoul", "America/New_York", "Europe/Berlin")
AFTER_EVERY_0600 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


class _RaiseSink:
    """No event may be dead-lettered in a benchmark: that would be a bug, not a figure."""

    async def send(self, record: Record, error: BaseException, attempts: int) -> None:
        raise RuntimeError(f"dead-lettered {record.topic}: {error}")


def _grid(tenant: str, user: str, tz: str) -> GoalChanged:
    at = datetime(2026, 11, 9, tzinfo=UTC)
    schedules: list[ScheduleSnapshot | None] = [
        ScheduleSnapshot(frequency="daily"),
        ScheduleSnapshot(frequency="weekly", days=["mon", "wed", "fri"]),
        ScheduleSnapshot(frequency="weekly", times=3),
        None,
    ]
    return GoalChanged(
        tenant_id=tenant,
        user_id=user,
        timezone=tz,
        mandalart=MandalartSnapshot(
            id=f"{user}-grid",
            title="Bench goal",
            description=None,
            active=True,
            version=1,
            created_at=at,
            updated_at=at,
            sub_goals=[
                SubGoalSnapshot(
                    position=p,
                    title=f"Sub-goal {p}",
                    actions=[
                        ActionSnapshot(
                            id=f"{user}-a{p}{i}",
                            position=i + 1,
                            title=f"Action {p}.{i}",
                            type="routine" if schedule else "mission",
                            schedule=schedule,
                            due_date=None,
                            added_on=date(2026, 11, 9),
                        )
                        for i, schedule in enumerate(schedules)
                    ],
                )
                for p in (1, 2)
            ],
        ),
    )


def _user_events(rng: random.Random, tenant: str, n: int) -> Iterator[tuple[int, EventPayload]]:
    """(day index, event) of one user's week: settings, grid, check-ins (some undone), XP,
    streak. About 25 events per user."""
    user = f"u{n}"
    tz = TIMEZONES[n % len(TIMEZONES)]
    yield (
        -1,
        UserChanged(
            tenant_id=tenant,
            user_id=user,
            version=1,
            timezone=tz,
            locale="ko" if n % 2 else "en",
            display_name=None,
            changed_at=datetime(2026, 11, 1, tzinfo=UTC),
        ),
    )
    yield -1, _grid(tenant, user, tz)
    streak = 0
    for d in range(7):
        day = MONDAY + timedelta(days=d)
        todays = [a for a in ("a10", "a11", "a20", "a22") if rng.random() < 0.3]
        streak = streak + 1 if todays else 0
        for action in todays:
            occurred = datetime.combine(day, datetime.min.time(), UTC) + timedelta(
                hours=rng.randint(0, 23)
            )
            common: dict[str, Any] = {
                "tenant_id": tenant,
                "user_id": user,
                "checkin_id": str(uuid.uuid4()),
                "action_id": f"{user}-{action}",
                "mandalart_id": f"{user}-grid",
                "sub_goal_position": int(action[1]),
                "sub_goal_title": f"Sub-goal {action[1]}",
                "action_title": "Action",
                "action_type": "routine",
                "local_date": day,
                "timezone": tz,
                "occurred_at": occurred,
            }
            yield d, ActionCompleted(**common, seq=1)
            if rng.random() < 0.1:
                yield d, ActionUncompleted(**common, seq=2)
            yield (
                d,
                XpAwarded(
                    tenant_id=tenant,
                    user_id=user,
                    entry_id=str(uuid.uuid4()),
                    amount=10,
                    reason="checkin",
                    action_id=f"{user}-{action}",
                    local_date=day,
                    badge=None,
                    source_event_id=str(uuid.uuid4()),
                    xp_total=10,
                    level=1,
                    created_at=occurred,
                ),
            )
        if todays:
            yield (
                d,
                StreakChanged(
                    tenant_id=tenant,
                    user_id=user,
                    current=streak,
                    longest=streak,
                    last_active_date=day,
                    changed_at=datetime.combine(day, datetime.min.time(), UTC),
                ),
            )


def _records(tenant: str, users: int) -> tuple[list[MemoryRecord], list[dict[str, Any]]]:
    """The week's records, interleaved by day across users as live traffic is, and the raw
    check-in documents for the baseline."""
    rng = random.Random(20261116)
    timed: list[tuple[int, int, EventPayload]] = []
    for n in range(users):
        timed += [(day, n, e) for day, e in _user_events(rng, tenant, n)]
    timed.sort(key=lambda t: (t[0], t[1]))
    records: list[MemoryRecord] = []
    raw: list[dict[str, Any]] = []
    for i, (_, _, payload) in enumerate(timed):
        rec = record_of(payload, offset=i, source="bench")
        records.append(rec)
        if isinstance(payload, ActionCompleted | ActionUncompleted):
            raw.append(
                {
                    "_id": dict(rec.headers)["ce_id"].decode(),
                    "topic": rec.topic,
                    "tenant_id": payload.tenant_id,
                    "user_id": payload.user_id,
                    "action_id": payload.action_id,
                    "local_date": payload.local_date.isoformat(),
                    "week": WEEK,
                    "seq": payload.seq,
                }
            )
    return records, raw


# Per user, the week's check-ins that stand: the latest state by seq per (action, date), done.
WEEKLY_COUNTS_PIPELINE: list[dict[str, Any]] = [
    {"$match": {"week": WEEK}},
    {"$sort": {"seq": 1}},
    {
        "$group": {
            "_id": {"u": "$user_id", "a": "$action_id", "d": "$local_date"},
            "last": {"$last": "$topic"},
        }
    },
    {"$match": {"last": topics.ACTION_COMPLETED}},
    {"$group": {"_id": "$_id.u", "checkins": {"$sum": 1}}},
]


def _mongodb_url(infra_or_urls: Any) -> str:
    if isinstance(infra_or_urls, str):
        return infra_or_urls
    if isinstance(infra_or_urls, dict):
        return str(infra_or_urls["mongodb_url"])
    return str(infra_or_urls.mongodb_url)


async def run(infra_or_urls: Any) -> dict[str, Any]:
    """Run the benchmark against an infra handle, a {"mongodb_url": …} dict or a URL."""
    client = make_client(_mongodb_url(infra_or_urls), timeout_ms=20000)
    db = client[f"bench_reports_{uuid.uuid4().hex[:8]}"]
    try:
        await ensure_indexes(db)
        started = time.perf_counter()
        records, raw = _records(f"bench-{uuid.uuid4().hex[:6]}", USERS)
        prepare_s = time.perf_counter() - started

        settings = Settings(env="test", scheduler_chunk=BATCH)
        deps = WorkerDeps(settings=settings, client=client, db=db, producer=None)
        consumer = IdempotentConsumer(
            group="reports",
            client=client,
            db=db,
            handler=fold_handler(deps),
            dead_letters=_RaiseSink(),
        )
        started = time.perf_counter()
        for first in range(0, len(records), BATCH):
            await consumer.process(records[first : first + BATCH])
        fold_s = time.perf_counter() - started

        generator = mongo_service(settings, client, db, writer=FallbackWriter())
        started = time.perf_counter()
        written = await generator.run_due(AFTER_EVERY_0600)
        reports_s = time.perf_counter() - started
        await generator.aclose()

        raw_collection = db["raw_checkin_events"]
        for first in range(0, len(raw), 5000):
            await raw_collection.insert_many(raw[first : first + 5000], ordered=False)
        started = time.perf_counter()
        counts = await (await raw_collection.aggregate(WEEKLY_COUNTS_PIPELINE)).to_list()
        aggregation_s = time.perf_counter() - started

        # The two must agree on what they both compute: each user's weekly check-in count.
        by_user = {c["_id"]: c["checkins"] for c in counts}
        folded = {
            d["user_id"]: d["stats"]["checkins_total"]
            async for d in db[REPORTS].find({}, {"user_id": 1, "stats.checkins_total": 1})
        }
        assert folded == by_user, "fold and raw aggregation disagree"
        events = len(records)
        return {
            "users": USERS,
            "events": events,
            "raw_checkin_events": len(raw),
            "reports_written": written,
            "prepare_events_s": round(prepare_s, 2),
            "fold_s": round(fold_s, 2),
            "fold_events_per_s": round(events / fold_s),
            "reports_s": round(reports_s, 2),
            "reports_per_s": round(written / reports_s),
            "raw_aggregation_weekly_counts_s": round(aggregation_s, 2),
            "note": (
                "the aggregation yields one count per user; a report holds the whole fold "
                "(due/done per day and sub-goal, XP, streak, badges, previous week)"
            ),
        }
    finally:
        await client.drop_database(db.name)
        await client.close()


def main() -> None:
    """Print the figures, on MONGODB_URL if set, else on a fresh local server."""
    import json

    url = os.environ.get("MONGODB_URL")
    if url:
        print(json.dumps(asyncio.run(run(url)), indent=2))
        return
    import tempfile

    from mandaact_devstack import start_test_infra

    with tempfile.TemporaryDirectory(prefix="mandaact-bench-") as tmp:
        infra = start_test_infra(tmp, topics={})
        try:
            print(json.dumps(asyncio.run(run(infra)), indent=2))
        finally:
            infra.stop()


if __name__ == "__main__":
    main()
