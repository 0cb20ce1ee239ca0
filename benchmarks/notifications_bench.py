"""Notifications: finding the users due in one minute, next to a full scan of the same rows.

In the same run, over BENCH_NOTIFY_USERS users (default 100,000) spread over 24 time zones,
each with a daily reminder at a local time between 18:00 and 22:59 (one schedule row each,
written with the service's own codec straight into `timers`, batched `insert_many`):
- due_minute: the rows whose `fire_at` falls in one UTC minute, read on the `fire_at` index
  (what a worker's claim reads), median of several runs;
- full_scan: the same question answered by reading the whole collection in natural order
  (`hint={"$natural": 1}`, what the claim would cost without the index), median of fewer runs;
- claim: the worker's real claim (`MongoTimerLeases.claim_due`) of that minute's rows, once.
Both reads must return the same rows.
"""

from __future__ import annotations

import os
import statistics
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from datetime import time as wall
from typing import Any

from mandaact_common.mongo import make_client
from notifications.domain.model import Owner, Preferences, UserState, next_fire
from notifications.domain.records import schedule_timer
from notifications.store.mongo import TIMERS, MongoTimerLeases, ensure_indexes, timer_doc

USERS = int(os.environ.get("BENCH_NOTIFY_USERS", "100000"))
BATCH = 500
RUNS = 9
SCAN_RUNS = 3
ZONES = (
    "Pacific/Honolulu",
    "America/Anchorage",
    "America/Los_Angeles",
    "America/Denver",
    "America/Chicago",
    "America/New_York",
    "America/Halifax",
    "America/Sao_Paulo",
    "Atlantic/South_Georgia",
    "Atlantic/Azores",
    "Europe/London",
    "Europe/Berlin",
    "Europe/Athens",
    "Europe/Moscow",
    "Asia/Dubai",
    "Asia/Karachi",
    "Asia/Dhaka",
    "Asia/Bangkok",
    "Asia/Shanghai",
    "Asia/Seoul",
    "Australia/Sydney",
    "Pacific/Noumea",
    "Pacific/Auckland",
    "Pacific/Tongatapu",
)
NOW = datetime(2026, 12, 2, 0, 0, tzinfo=UTC)


def _mongodb_url(infra_or_urls: Any) -> str:
    if isinstance(infra_or_urls, str):
        return infra_or_urls
    if isinstance(infra_or_urls, dict):
        return str(infra_or_urls["mongodb_url"])
    return str(infra_or_urls.mongodb_url)


def _rows(tenant: str) -> list[dict[str, Any]]:
    rows = []
    for n in range(USERS):
        reminder = wall(18 + (n // 24) % 5, (n * 7) % 60)
        prefs = Preferences(timezone=ZONES[n % len(ZONES)], reminder_time=reminder)
        state = UserState(Owner(tenant, f"user-{n:06d}"), prefs)
        fire_at = next_fire("daily_reminder", state, None, NOW)
        assert fire_at is not None
        rows.append(timer_doc(schedule_timer(state.owner, "daily_reminder", fire_at)))
    return rows


async def _timed(read: Any, runs: int) -> tuple[float, list[Any]]:
    times = []
    found: list[Any] = []
    for _ in range(runs):
        started = time.perf_counter()
        found = await read()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), found


async def run(infra_or_urls: Any) -> dict[str, Any]:
    """Run the benchmark against an infra handle, a {"mongodb_url": …} dict or a URL."""
    client = make_client(_mongodb_url(infra_or_urls), timeout_ms=120_000)
    db = client[f"bench_notifications_{uuid.uuid4().hex[:8]}"]
    try:
        await ensure_indexes(db)
        rows = _rows(f"bench-{uuid.uuid4().hex[:6]}")
        started = time.perf_counter()
        for first in range(0, len(rows), BATCH):
            await db[TIMERS].insert_many(rows[first : first + BATCH], ordered=False)
        seed_s = time.perf_counter() - started

        # The busiest minute of the day, so the indexed read returns the most rows it can.
        per_minute: dict[datetime, int] = {}
        for row in rows:
            minute = row["fire_at"].replace(second=0, microsecond=0)
            per_minute[minute] = per_minute.get(minute, 0) + 1
        minute = max(per_minute, key=lambda m: (per_minute[m], m))
        window = {"fire_at": {"$gte": minute, "$lt": minute + timedelta(minutes=1)}}

        async def indexed() -> list[Any]:
            return sorted([d["_id"] async for d in db[TIMERS].find(window, {"_id": 1})])

        async def scanned() -> list[Any]:
            cursor = db[TIMERS].find(window, {"_id": 1}, hint=[("$natural", 1)])
            return sorted([d["_id"] async for d in cursor])

        due_ms, due = await _timed(indexed, RUNS)
        scan_ms, scan = await _timed(scanned, SCAN_RUNS)
        assert due == scan, "the indexed read and the full scan disagree"
        assert len(due) == per_minute[minute]

        # The worker's claim of the rows due by the end of the earliest minute.
        first_minute = min(per_minute)
        leases = MongoTimerLeases(db)
        started = time.perf_counter()
        claimed = await leases.claim_due(
            first_minute + timedelta(seconds=59), timedelta(seconds=60), 5000, "bench"
        )
        claim_ms = (time.perf_counter() - started) * 1000
        assert len(claimed) == per_minute[first_minute]
        return {
            "users": USERS,
            "time_zones": len(ZONES),
            "rows": await db[TIMERS].count_documents({}),
            "seed_s": round(seed_s, 1),
            "seed_rows_per_s": round(USERS / seed_s),
            "minute": minute.isoformat(),
            "due_in_minute": len(due),
            "due_minute_ms": round(due_ms, 2),
            "full_scan_ms": round(scan_ms, 2),
            "full_scan_over_due_minute": round(scan_ms / due_ms, 1),
            "claim_first_minute_rows": len(claimed),
            "claim_first_minute_ms": round(claim_ms, 2),
            "runs": {"due_minute": RUNS, "full_scan": SCAN_RUNS},
            "day": date(2026, 12, 2).isoformat(),
        }
    finally:
        await client.drop_database(db.name)
        await client.close()
