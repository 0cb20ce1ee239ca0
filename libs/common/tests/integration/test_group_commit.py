"""Group commit (`MongoUnitOfWork.run_grouped`) on the real MongoDB-compatible server."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from mandaact_common.errors import InvalidInput
from mandaact_common.outbox import OUTBOX, Transaction, pending_events
from mandaact_common.unit_of_work import MongoStore, MongoUnitOfWork
from mandaact_contracts import topics
from mandaact_contracts.events import ActionCompleted

pytestmark = pytest.mark.integration


class CounterStore(MongoStore):
    """A tiny store: counters by name, and an event per increment."""

    async def bump(self, name: str) -> int:
        doc = await self._db["counters"].find_one_and_update(
            {"_id": name},
            {"$inc": {"n": 1}, "$set": {"tenant_id": "t"}},
            upsert=True,
            return_document=True,
            session=self._session,
        )
        assert doc is not None
        self.emit(topics.ACTION_COMPLETED, _completed(name, int(doc["n"])))
        return int(doc["n"])


def _completed(name: str, seq: int) -> ActionCompleted:
    return ActionCompleted.model_validate(
        {
            "tenant_id": "t",
            "user_id": name,
            "checkin_id": uuid.uuid4().hex,
            "action_id": "a1",
            "mandalart_id": "m1",
            "sub_goal_position": 1,
            "sub_goal_title": "s",
            "action_title": "a",
            "action_type": "routine",
            "local_date": "2026-12-01",
            "timezone": "Asia/Seoul",
            "occurred_at": "2026-12-01T10:00:00Z",
            "seq": seq,
        }
    )


def _bump(name: str) -> Callable[[CounterStore], Awaitable[int]]:
    async def work(store: CounterStore) -> int:
        return await store.bump(name)

    return work


def _uow(mongo_client: Any, db: Any) -> MongoUnitOfWork[CounterStore]:
    def store(database: Any, tx: Transaction | None) -> CounterStore:
        return CounterStore(database, tx)

    return MongoUnitOfWork(mongo_client, db, "checkins", store)


async def test_concurrent_units_share_transactions_and_each_gets_its_own_result(
    mongo_client: Any, unique_db_name: str
) -> None:
    db = mongo_client[unique_db_name]
    uow = _uow(mongo_client, db)
    names = [f"u{i}" for i in range(40)]
    results = await asyncio.gather(*(uow.run_grouped(_bump(n)) for n in names))
    assert results == [1] * 40
    events = await pending_events(db)
    assert sorted(e["payload"]["user_id"] for e in events) == sorted(names)
    # One outbox row per group (one tenant): far fewer than one per unit.
    assert await db[OUTBOX].count_documents({}) < 10


async def test_a_unit_that_fails_leaves_its_group_and_stores_nothing(
    mongo_client: Any, unique_db_name: str
) -> None:
    db = mongo_client[unique_db_name]
    uow = _uow(mongo_client, db)

    async def bad(store: CounterStore) -> int:
        await store.bump("bad")  # written, then refused: must not be stored
        raise InvalidInput("name", "refused on purpose")

    calls = [uow.run_grouped(_bump(n)) for n in ("a", "b", "c")]
    outcomes = await asyncio.gather(
        calls[0], uow.run_grouped(bad), *calls[1:], return_exceptions=True
    )
    assert outcomes[0] == 1
    assert outcomes[2:] == [1, 1]
    assert isinstance(outcomes[1], InvalidInput)
    assert await db["counters"].find_one({"_id": "bad"}) is None
    users = sorted(e["payload"]["user_id"] for e in await pending_events(db))
    assert users == ["a", "b", "c"]


async def test_units_of_one_group_see_each_others_writes_in_order(
    mongo_client: Any, unique_db_name: str
) -> None:
    db = mongo_client[unique_db_name]
    uow = _uow(mongo_client, db)
    results = await asyncio.gather(*(uow.run_grouped(_bump("same")) for _ in range(10)))
    assert sorted(results) == list(range(1, 11))
    doc = await db["counters"].find_one({"_id": "same"})
    assert doc is not None
    assert doc["n"] == 10
    seqs = [e["payload"]["seq"] for e in await pending_events(db)]
    assert sorted(seqs) == list(range(1, 11))
