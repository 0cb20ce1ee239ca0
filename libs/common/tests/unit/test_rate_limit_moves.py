"""The rate limiter spends the requests that wait for a bucket together, judged in order."""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from mandaact_common.auth import Principal
from mandaact_common.limits import Bucket, InMemoryBuckets, RateLimiter, Taken


class SlowBuckets(InMemoryBuckets):
    """In-memory buckets whose every move takes a round trip; counts the moves per key."""

    def __init__(self) -> None:
        super().__init__()
        self.moves: dict[str, int] = {}

    async def take(self, key: str, bucket: Bucket, now: int, count: int = 1) -> list[Taken]:
        self.moves[key] = self.moves.get(key, 0) + 1
        await asyncio.sleep(0.01)
        return await super().take(key, bucket, now, count)


def principal(user: str) -> Principal:
    return Principal(tenant_id="acme", user_id=user)


async def test_requests_that_arrive_together_move_the_tenant_bucket_once_per_round() -> None:
    store = SlowBuckets()
    limiter = RateLimiter(
        user=Bucket(20, 40), tenant=Bucket(1, 10), clock=lambda: 1_800_000_000.0, store=store
    )
    db: Any = None  # the store is given: no database
    decisions = await asyncio.gather(*(limiter.check(db, principal(f"u{k}")) for k in range(30)))
    assert [d.allowed for d in decisions].count(True) == 10
    assert sorted(d.remaining for d in decisions if d.allowed) == list(range(10))
    tenant_moves = max(store.moves.values())
    assert tenant_moves <= 3, store.moves  # 30 requests, one move for all that waited
    assert sum(store.moves.values()) - tenant_moves == 30  # each user's bucket once


@given(
    tat=st.one_of(st.none(), st.integers(0, 5_000_000)),
    count=st.integers(1, 12),
    per_second=st.sampled_from([1.0, 5.0, 20.0]),
    burst=st.integers(1, 10),
)
def test_spending_many_at_once_is_spending_them_one_after_another(
    tat: int | None, count: int, per_second: float, burst: int
) -> None:
    bucket = Bucket(per_second, burst)
    now = 1_000_000
    many = bucket.take_many(tat, now, count)
    base = max(tat if tat is not None else now, now)
    passed = sum(t.allowed for t in many)
    assert bucket.taken(base, now, passed, count) == many
    assert all(t.allowed for t in many[:passed])
    assert not any(t.allowed for t in many[passed:])
