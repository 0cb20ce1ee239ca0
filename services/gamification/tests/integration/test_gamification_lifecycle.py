"""Gamification's data lifecycle (SPEC §9) on the real MongoDB-compatible server: a user's and a
tenant's erasure through the real consumer and erasure job, and `GET /v1/me/export`."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest

from gamification.bootstrap import build_app, mongo_handler, mongo_unit_of_work
from gamification.domain.streaks import RepairCommand
from gamification.service import GamificationService
from gamification.settings import Settings
from gamification.store.mongo import (
    BUCKETS,
    LIFECYCLE,
    REPAIR_USERS,
    REPAIRS,
    ensure_indexes,
)
from mandaact_common.consumer import IdempotentConsumer
from mandaact_common.domain.owner import Owner
from mandaact_common.lifecycle import Eraser
from mandaact_common.outbox import OUTBOX, OUTBOX_EVENTS, pending_events
from mandaact_common.settings import DEV_ERASURE_KEY
from mandaact_common.testing import (
    MemoryRecord,
    SettableClock,
    auth_header,
    documents_naming,
    erasure_of,
    record_of,
)
from mandaact_contracts import topics
from services.gamification.tests.support import change, goal

pytestmark = pytest.mark.integration

ACME, GLOBEX = "t-acme-gm", "t-globex-gm"
GONE, KEPT, OTHER = "u-gone-gm", "u-kept-gm", "u-other-gm"
TUE, WED = date(2026, 11, 3), date(2026, 11, 4)
NOW = datetime(2026, 11, 4, 12, tzinfo=UTC)


class World:
    """The service's consumer (with its eraser) and use cases over one fresh database."""

    def __init__(self, client: Any, db_name: str) -> None:
        self.client = client
        self.db = client[db_name]
        self.db_name = db_name
        self.clock = SettableClock(NOW)
        self.eraser = Eraser(
            LIFECYCLE, client, self.db, key=DEV_ERASURE_KEY.encode(), grace=timedelta(0)
        )
        self.consumer = IdempotentConsumer(
            group="gamification",
            client=client,
            db=self.db,
            handler=mongo_handler(client, self.db, self.clock),
            dead_letters=None,  # type: ignore[arg-type]
            eraser=self.eraser,
        )
        self.service = GamificationService(mongo_unit_of_work(client, self.db), self.clock)

    async def deliver(self, *records: MemoryRecord) -> None:
        await ensure_indexes(self.db)
        await self.consumer.process(list(records))

    async def erase(self, tenant: str, user: str | None = None) -> None:
        """What the worker does: absorb the deletion, then erase (its first step takes the user
        off the boards)."""
        await self.deliver(record_of(erasure_of(tenant, user)))
        assert await self.eraser.run_due() == 1

    async def relay(self) -> None:
        """What the relay does once the events are published: their rows go."""
        await self.db[OUTBOX].delete_many({})
        await self.db[OUTBOX_EVENTS].delete_many({})

    async def rank(
        self, tenant: str, user: str, period: str = "week"
    ) -> tuple[int | None, list[str]]:
        board = await self.service.leaderboard(Owner(tenant, user), period, 10)  # type: ignore[arg-type]
        mine = board.me.rank if board.me is not None else None
        return mine, [s.user_id for s in board.items]

    async def build(self) -> None:
        """The erased-to-be user ahead of a neighbour on the boards, a repair listing both,
        and a user of another tenant."""
        await self.deliver(
            goal(user=GONE, tenant=ACME),
            change("a1", TUE, 1, user=GONE, tenant=ACME),
            change("a2", TUE, 1, user=GONE, tenant=ACME),
            change("a1", WED, 1, user=GONE, tenant=ACME),
            goal(user=KEPT, tenant=ACME),
            change("a1", WED, 1, user=KEPT, tenant=ACME),
            goal(user=OTHER, tenant=GLOBEX),
            change("a1", WED, 1, user=OTHER, tenant=GLOBEX),
        )
        await self.service.create_repair(
            ACME, RepairCommand(TUE, TUE, "outage", frozenset({GONE, KEPT}))
        )
        await self.service.apply_repairs()
        await self.relay()


async def naming(db: Any, needle: str) -> list[tuple[str, dict[str, Any]]]:
    return await documents_naming(db, needle)


async def only_erased_events(db: Any, needle: str) -> None:
    """Nothing names `needle` but the outbox rows of the `user.erased` just emitted."""
    left = await naming(db, needle)
    assert {name for name, _ in left} <= {OUTBOX, OUTBOX_EVENTS}, left
    events = await pending_events(db)
    assert [e["topic"] for e in events] == [topics.USER_ERASED]


@pytest.fixture
def world(mongo_client: Any, unique_db_name: str) -> World:
    return World(mongo_client, unique_db_name)


async def test_a_users_erasure_leaves_nothing_of_them_and_the_others_as_they_were(
    world: World,
) -> None:
    await world.build()
    assert await world.rank(ACME, KEPT) == (2, [GONE, KEPT])
    assert await world.rank(ACME, KEPT, "all") == (2, [GONE, KEPT])
    assert await naming(world.db, GONE)
    kept_before = await naming(world.db, KEPT)
    other_before = await naming(world.db, OTHER)

    await world.erase(ACME, GONE)

    await only_erased_events(world.db, GONE)
    [erased] = await pending_events(world.db, topics.USER_ERASED)
    assert erased["payload"]["service"] == "gamification"
    assert erased["payload"]["scope"] == "user"
    assert erased["payload"]["user_id"] == GONE
    assert await naming(world.db, KEPT) == kept_before
    assert await naming(world.db, OTHER) == other_before
    # The bucket counts lost the erased user: the neighbour now ranks first on every board.
    assert await world.rank(ACME, KEPT) == (1, [KEPT])
    assert await world.rank(ACME, KEPT, "month") == (1, [KEPT])
    assert await world.rank(ACME, KEPT, "all") == (1, [KEPT])
    assert all(b["count"] >= 0 for b in await world.db[BUCKETS].find({}).to_list())
    # The repair stays for the neighbour it lists.
    [repair] = await world.service.repairs(ACME)
    assert repair.user_ids == frozenset({KEPT})
    assert await world.db[REPAIRS].count_documents({"applied_after": {"$ne": None}}) == 0

    await world.relay()
    await world.deliver(change("a2", WED, 1, user=GONE, tenant=ACME))  # a late check-in
    assert await naming(world.db, GONE) == []
    assert await naming(world.db, KEPT) == kept_before
    assert await pending_events(world.db) == []


async def test_a_tenants_erasure_leaves_nothing_of_it_and_other_tenants_as_they_were(
    world: World,
) -> None:
    await world.build()
    other_before = await naming(world.db, GLOBEX)

    await world.erase(ACME)

    await only_erased_events(world.db, ACME)
    [erased] = await pending_events(world.db, topics.USER_ERASED)
    assert erased["payload"]["service"] == "gamification"
    assert erased["payload"]["scope"] == "tenant"
    assert await naming(world.db, GONE) == []  # nothing of its users either
    assert await naming(world.db, KEPT) == []
    assert await world.db[REPAIR_USERS].count_documents({}) == 0
    assert await naming(world.db, GLOBEX) == other_before
    assert await world.rank(GLOBEX, OTHER) == (1, [OTHER])

    await world.relay()
    await world.deliver(goal(user=KEPT, tenant=ACME), change("a1", WED, 2, user=KEPT, tenant=ACME))
    assert await naming(world.db, ACME) == []


async def test_export_returns_the_callers_documents_and_no_one_elses(world: World) -> None:
    await world.build()
    settings = Settings(env="test", mongodb_url="unused", mongodb_database=world.db_name)
    app = build_app(settings, client=world.client, clock=world.clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            r = await http.get("/v1/me/export", headers=auth_header(ACME, GONE))
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["service"], body["tenant_id"], body["user_id"]) == ("gamification", ACME, GONE)
    found = body["collections"]
    assert set(found) == {
        "facts",
        "ledger",
        "streak_repair_users",
        "user_state",
        "leaderboards",
    }
    for name in ("facts", "ledger", "streak_repair_users", "user_state", "leaderboards"):
        assert found[name], name
        assert {d["user_id"] for d in found[name]} == {GONE}, name
    assert sum(e["amount"] for e in found["ledger"]) == found["user_state"][0]["xp_total"]
    assert KEPT not in r.text
    assert OTHER not in r.text
