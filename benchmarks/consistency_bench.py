"""Read-your-writes: what a `MandaAct-Consistency` token adds to a read whose model is current.

In one run, against the real server, the checkins API in process (its real app and store) reads
one user's checklist (`GET /v1/checklist`) over and over, alternating:
- baseline: the read without a token;
- fresh token: with a token of a write whose events the read model has already applied, a new
  one for every read (what a client passes after each write): the token costs one indexed read
  of `applied_sequences`;
- repeated token: the same token again (this process has seen it satisfied: no database call).
The overhead is the difference of the medians (p50) of the token reads and the baseline reads;
`token_read_overhead_p50_ms` is the fresh-token one. Target (SPEC §12): under 1 ms.
"""

from __future__ import annotations

import os
import statistics
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx

from checkins.bootstrap import build_app
from checkins.consumers.handler import grid_of
from checkins.service import project
from checkins.settings import Settings
from checkins.store.mongo import MongoCheckinsStore
from mandaact_common.consistency import APPLIED, HEADER, Token, applied_key, field_of
from mandaact_common.mongo import make_client
from mandaact_common.outbox import transact
from mandaact_common.testing import auth_header
from mandaact_contracts import topics
from mandaact_contracts.events import (
    ActionSnapshot,
    GoalChanged,
    MandalartSnapshot,
    ScheduleSnapshot,
    SubGoalSnapshot,
)

ROUNDS = int(os.environ.get("BENCH_CONSISTENCY_ROUNDS", "1000"))
TENANT, USER = "bench-ryw", "reader"


def _grid() -> GoalChanged:
    now = datetime.now(UTC)
    actions = [
        ActionSnapshot(
            id=str(uuid.uuid4()),
            position=p,
            title=f"Action {p}",
            type="routine",
            schedule=ScheduleSnapshot(frequency="daily"),
            due_date=None,
            added_on=now.date(),
        )
        for p in range(1, 9)
    ]
    return GoalChanged(
        tenant_id=TENANT,
        user_id=USER,
        timezone="UTC",
        mandalart=MandalartSnapshot(
            id=str(uuid.uuid4()),
            title="Bench",
            description=None,
            version=1,
            active=True,
            deleted=False,
            created_at=now,
            updated_at=now,
            sub_goals=[SubGoalSnapshot(position=1, title="Sub", actions=actions)],
        ),
    )


def _p50(samples: list[float]) -> float:
    return statistics.median(samples)


async def run(infra: Any) -> dict[str, Any]:
    """Run against the session's infra (`infra.mongodb_url`)."""
    database = f"bench_consistency_{uuid.uuid4().hex[:8]}"
    settings = Settings(
        env="test",
        mongodb_url=infra.mongodb_url,
        mongodb_database=database,
        kafka_bootstrap_servers=infra.bootstrap_servers,
        api_relay=False,
        lag_refresh_seconds=0,
    )
    client = make_client(infra.mongodb_url, timeout_ms=60_000)
    db = client[database]
    app = build_app(settings, client=client)
    headers = auth_header(TENANT, USER)
    key = applied_key(TENANT, USER, "goals")
    samples: dict[str, list[float]] = {"baseline": [], "fresh": [], "repeated": []}
    try:
        async with app.router.lifespan_context(app):

            async def seed(tx: Any) -> None:
                await project(MongoCheckinsStore(tx.db, tx), [grid_of(_grid())], [])

            await transact(client, db, "bench", seed)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://checkins") as http:

                async def read(extra: dict[str, str]) -> float:
                    started = time.perf_counter()
                    response = await http.get("/v1/checklist", headers={**headers, **extra})
                    elapsed = (time.perf_counter() - started) * 1000
                    assert response.status_code == 200, response.text
                    return elapsed

                for _ in range(20):  # warm up
                    await read({})
                repeated = ""
                for n in range(1, ROUNDS + 1):
                    # A write of goals was applied (what the consumer records), then read with
                    # its token, new each round.
                    await db[APPLIED].update_one(
                        {"_id": key},
                        {"$max": {f"seq.{field_of(topics.GOAL_CHANGED)}": n}},
                        upsert=True,
                    )
                    token = Token("goals", TENANT, USER, {topics.GOAL_CHANGED: n}).encode()
                    repeated = repeated or token
                    samples["baseline"].append(await read({}))
                    samples["fresh"].append(await read({HEADER: token}))
                    samples["repeated"].append(await read({HEADER: repeated}))
    finally:
        await client.drop_database(database)
        await client.close()
    base = _p50(samples["baseline"])
    fresh = _p50(samples["fresh"]) - base
    cached = _p50(samples["repeated"]) - base
    print(f"checklist read p50 without a token: {base:.3f} ms (same-run baseline)")
    print(f"  with a new token each read:        {base + fresh:.3f} ms (+{fresh:.3f} ms)")
    print(f"  with a token seen before:          {base + cached:.3f} ms (+{cached:.3f} ms)")
    print("target: under 1 ms added (SPEC §12)")
    return {
        "token_read_overhead_p50_ms": round(fresh, 3),
        "token_read_overhead_cached_p50_ms": round(cached, 3),
        "read_p50_ms_without_token": round(base, 3),
        "rounds": ROUNDS,
    }
