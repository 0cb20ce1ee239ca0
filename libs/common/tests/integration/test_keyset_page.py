"""`keyset_page` against the real server: every row once, in order, ties on the first field
across page ends, in both directions, and no page read scans the collection."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from mandaact_common.mongo import Doc, keyset_page, keyset_rows
from mandaact_common.testing import QueryPlans

pytestmark = pytest.mark.integration

ORDERS = {
    "oldest first": [("at", 1), ("_id", 1)],
    "newest first": [("at", -1), ("_id", -1)],
    "date, then time, then id": [("day", 1), ("at", 1), ("_id", 1)],
}


def _key(doc: Doc, order: list[tuple[str, int]]) -> tuple[Any, ...]:
    return tuple(doc[f] for f, _ in order)


@pytest.mark.parametrize("name", sorted(ORDERS))
async def test_paging_reads_every_row_once_in_order_without_a_scan(
    infra: Any, unique_db_name: str, name: str
) -> None:
    order = ORDERS[name]
    plans = QueryPlans()
    client: AsyncMongoClient[Doc] = AsyncMongoClient(
        infra.mongodb_url, tz_aware=True, event_listeners=[plans]
    )
    try:
        rows = client[unique_db_name]["rows"]
        index = [("tenant_id", 1), ("user_id", 1), *order]
        await rows.create_index(index)
        start = datetime(2026, 11, 2, tzinfo=UTC)
        rng = random.Random(7)
        mine = [
            {
                "_id": f"r{i:03d}",
                "tenant_id": "acme",
                "user_id": "alice",
                # Few distinct values: many rows tie on the first field, across page ends.
                "at": start + timedelta(seconds=rng.randrange(6)),
                "day": f"2026-11-0{rng.randrange(2, 5)}",
            }
            for i in range(40)
        ]
        others = [{**d, "_id": f"o{d['_id']}", "user_id": "bob"} for d in mine]
        await rows.insert_many([*mine, *others])
        where = {"tenant_id": "acme", "user_id": "alice"}
        plans.finds.clear()

        seen: list[Doc] = []
        after: tuple[Any, ...] | None = None
        for _ in range(40):
            page = await keyset_page(rows, where, order, after, 7)
            if not page:
                break
            seen += page
            after = _key(page[-1], order)

        expected = list(mine)
        for field, way in reversed(order):  # stable: the last field first
            expected.sort(key=itemgetter(field), reverse=way < 0)
        assert [d["_id"] for d in seen] == [d["_id"] for d in expected]
        walked = [d["_id"] async for d in keyset_rows(rows, where, order, 7)]
        assert walked == [d["_id"] for d in expected]
        assert await plans.scans(client) == []
    finally:
        await client.close()


async def test_a_range_on_the_first_field_bounds_the_ties_too(
    infra: Any, unique_db_name: str
) -> None:
    client: AsyncMongoClient[Doc] = AsyncMongoClient(infra.mongodb_url, tz_aware=True)
    try:
        rows = client[unique_db_name]["rows"]
        await rows.insert_many(
            [{"_id": f"{day}-{i}", "day": day} for day in ("a", "b", "c") for i in range(3)]
        )
        order = [("day", 1), ("_id", 1)]
        page = await keyset_page(rows, {"day": {"$gte": "b", "$lte": "b"}}, order, ("b", "b-0"), 5)
        assert [d["_id"] for d in page] == ["b-1", "b-2"]
        # A cursor outside the range (the caller changed it between pages) brings no ties.
        outside = await keyset_page(rows, {"day": {"$gte": "b"}}, order, ("a", "a-0"), 10)
        assert [d["_id"] for d in outside] == ["b-0", "b-1", "b-2", "c-0", "c-1", "c-2"]
    finally:
        await client.close()
