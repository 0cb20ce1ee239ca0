"""HTTP limits (SPEC §11): a 64 KiB body cap before parsing, and rate limits on mutations.

The body cap is a pure ASGI middleware: a declared `Content-Length` over the cap is answered 413
at once; a streamed (chunked) body is counted as it arrives and answered 413 as soon as it passes
the cap, whatever the app made of the truncated body.

The rate limits are GCRA buckets kept in MongoDB, so every API replica shares them: one small
document per (tenant, user) and one per tenant in the service's `rate_limits` collection, keyed
by `_id` (a keyed hash of the ids, `keys.deletion_id`: a bucket names nobody), each moved by
a single conditional `findOneAndUpdate` carrying the theoretical arrival time (`tat`); the
requests that wait while this process moves a bucket are spent together by its next move. A bucket
is judged at the later of the caller's clock and the database's (`$$NOW`): a request that waited
in a queue is judged when it reaches the bucket, not as of when it was sent (else, under load,
requests sent later but applied first would have moved `tat` past its tolerance). Both
buckets are updated concurrently (one round trip of latency); a request refused by its user's
bucket gives the tenant's token back. Documents expire (TTL on `expires_at`) once
their bucket is full again.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.params import Depends as DependsParam
from fastapi.routing import APIRoute
from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mandaact_common.auth import Principal
from mandaact_common.keys import subject_hashes
from mandaact_common.mongo import Doc
from mandaact_common.openapi import answers
from mandaact_common.problems import TooManyRequests, problem_response
from mandaact_common.settings import DEV_ERASURE_KEY, ServiceSettings

MAX_BODY_BYTES: Final = 64 * 1024
"""The largest request body any API accepts (64 KiB); larger ones get 413 before parsing."""

MUTATING_METHODS: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})
"""The methods the rate limits count."""

RATE_LIMITS: Final = "rate_limits"
"""The collection of rate-limit buckets in each service's database."""

_HEADERS_STATE: Final = "mandaact_rate_limit_headers"

Seconds = Callable[[], float]
"""The current time in seconds since the epoch (tests pass a stepping one)."""


class BodyLimit:
    """Answer 413 problem+json to a body over `max_bytes`, declared or streamed, before parsing."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(scope, receive, send, f"Content-Length is {declared} bytes")
            return
        received = 0
        exceeded = started = False

        async def counting_receive() -> Message:
            nonlocal received, exceeded
            if exceeded:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes and not started:
                    exceeded = True  # the app sees a client that went away; we answer 413
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded:
                return  # the app's answer to a truncated body is replaced by the 413
            started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not exceeded:
                raise
        if exceeded:
            await self._refuse(scope, receive, send, f"the streamed body passed {received} bytes")

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, sent: str) -> None:
        detail = (
            f"the request body may be at most {self.max_bytes} bytes"
            f" ({self.max_bytes // 1024} KiB); {sent}"
        )
        response = problem_response(
            413,
            "Content too large",
            detail,
            "content-too-large",
            scope.get("path"),
            headers={"Connection": "close"},
            limit=self.max_bytes,
        )
        await response(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() else None
    return None


@dataclass(frozen=True)
class Decision:
    """What one bucket said about one request."""

    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int
    retry_after_seconds: int
    window_seconds: int


MICROS: Final = 1_000_000
"""Times are whole microseconds since the epoch: exact sums on every replica and in MongoDB."""


@dataclass(frozen=True)
class Taken:
    """What moving a bucket did: its `tat` after, the time (µs) it was judged at, and whether
    the request passed."""

    tat: int
    now: int
    allowed: bool


@dataclass(frozen=True)
class Bucket:
    """A GCRA bucket: `per_second` sustained, up to `burst` at once."""

    per_second: float
    burst: int

    @property
    def interval(self) -> int:
        """Microseconds one request uses of the bucket (the emission interval)."""
        return max(1, round(MICROS / self.per_second))

    @property
    def tolerance(self) -> int:
        """How far ahead of now (µs) the theoretical arrival time may run: the burst."""
        return self.burst * self.interval

    @property
    def window_seconds(self) -> int:
        """The seconds in which the whole burst comes back."""
        return max(1, math.ceil(self.tolerance / MICROS))

    def take(self, tat: int | None, now: int) -> Taken:
        """A request at `now`, given the bucket's stored `tat`: whether it passes, the new `tat`."""
        base = max(tat if tat is not None else now, now)
        allowed = base - now <= self.tolerance - self.interval
        return Taken(base + self.interval if allowed else base, now, allowed)

    def take_many(self, tat: int | None, now: int, count: int) -> list[Taken]:
        """`count` requests at `now` in order, as `take` one after another would judge them."""
        out: list[Taken] = []
        for _ in range(count):
            out.append(self.take(tat, now))
            tat = out[-1].tat
        return out

    def judge(self, taken: Taken) -> Decision:
        """The decision (and the numbers of the RateLimit-* headers) of a move of the bucket."""
        ahead = taken.tat - taken.now
        # Refused, `tat` was left where it was: the next request passes one interval past
        # the point where `tat` is within the tolerance again.
        retry = taken.tat + self.interval - self.tolerance - taken.now
        return Decision(
            allowed=taken.allowed,
            limit=self.burst,
            remaining=max(0, (self.tolerance - ahead) // self.interval),
            reset_seconds=max(0, math.ceil(ahead / MICROS)),
            retry_after_seconds=0 if taken.allowed else max(1, math.ceil(retry / MICROS)),
            window_seconds=self.window_seconds,
        )

    def update(self, now: int, count: int = 1) -> list[dict[str, Any]]:
        """The one pipeline update that moves the stored bucket as `take_many` does for `count`
        requests, at the later of `now` and the server's clock (`at`): `base` is `tat` before
        them, `passed` how many of them passed (the first ones)."""
        server_now = {"$multiply": [{"$toLong": "$$NOW"}, 1000]}
        # Room for n more requests while base + (n - 1) * interval - at <= tolerance - interval.
        room = {
            "$add": [
                {
                    "$floor": {
                        "$divide": [
                            {
                                "$subtract": [
                                    self.tolerance - self.interval,
                                    {"$subtract": ["$base", "$at"]},
                                ]
                            },
                            self.interval,
                        ]
                    }
                },
                1,
            ]
        }
        # Full again `tolerance` after `at` at the latest; a second more before the TTL removes it.
        expires_ms = {"$divide": [{"$add": ["$at", self.tolerance + MICROS]}, 1000]}
        return [
            {"$set": {"at": {"$max": [now, server_now]}}},
            {"$set": {"base": {"$max": [{"$ifNull": ["$tat", "$at"]}, "$at"]}}},
            {"$set": {"passed": {"$toLong": {"$max": [0, {"$min": [count, room]}]}}}},
            {
                "$set": {
                    "tat": {"$add": ["$base", {"$multiply": ["$passed", self.interval]}]},
                    "expires_at": {"$toDate": {"$toLong": expires_ms}},
                }
            },
        ]

    def taken(self, base: int, at: int, passed: int, count: int) -> list[Taken]:
        """What `update(now, count)` did to each of the `count` requests, in order."""
        return [
            Taken(base + (j + 1) * self.interval, at, True)
            if j < passed
            else Taken(base + passed * self.interval, at, False)
            for j in range(count)
        ]


class BucketStore(Protocol):
    """Where buckets live: each call moves one bucket atomically and says what it did."""

    async def take(self, key: str, bucket: Bucket, now: int, count: int = 1) -> list[Taken]:
        """Spend `count` requests of bucket `key`, those that pass (`Bucket.take_many`, at
        `now` or later), in one atomic move; what it did to each, in order."""
        ...

    async def give_back(self, key: str, bucket: Bucket, now: int) -> None:
        """Return the request just spent on bucket `key`."""
        ...


@dataclass
class MongoBuckets:
    """Buckets in the service's `rate_limits` collection: one small document each, by `_id`."""

    db: AsyncDatabase[Doc]

    async def take(self, key: str, bucket: Bucket, now: int, count: int = 1) -> list[Taken]:
        """One conditional findOneAndUpdate (upserting) that carries the new `tat`."""
        fields = {"tat": True, "at": True, "passed": True, "base": True}
        after = await self.db[RATE_LIMITS].find_one_and_update(
            {"_id": key},
            bucket.update(now, count),
            projection=fields,
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        if after is None:
            # A new bucket that concurrent requests upserted at once: some servers (SecantusDB)
            # answer nothing to the ones that lost the insert race (the update may have applied).
            # Judge from the bucket as it is now; a new bucket has its whole burst, so the
            # requests pass unless a neighbour of the race spent the last tokens.
            after = await self.db[RATE_LIMITS].find_one({"_id": key}, fields)
            if after is None or "base" not in after:
                return bucket.take_many(None, now, count)
        return bucket.taken(int(after["base"]), int(after["at"]), int(after["passed"]), count)

    async def give_back(self, key: str, bucket: Bucket, now: int) -> None:
        """Move `tat` back by one interval (never behind now)."""
        await self.db[RATE_LIMITS].update_one(
            {"_id": key, "tat": {"$gte": now + bucket.interval}},
            {"$inc": {"tat": -bucket.interval}},
        )


@dataclass
class InMemoryBuckets:
    """The in-memory twin of `MongoBuckets`, for tests without a database (one process only)."""

    tats: dict[str, int] = field(default_factory=dict)

    async def take(self, key: str, bucket: Bucket, now: int, count: int = 1) -> list[Taken]:
        """Spend the requests that pass (at `now`: one process has one clock)."""
        taken = bucket.take_many(self.tats.get(key), now, count)
        self.tats[key] = taken[-1].tat
        return taken

    async def give_back(self, key: str, bucket: Bucket, now: int) -> None:
        """Move `tat` back by one interval (never behind now)."""
        if self.tats.get(key, now) >= now + bucket.interval:
            self.tats[key] -= bucket.interval


@dataclass
class _Moves:
    """Requests waiting for the next move of one bucket: the time each was judged at."""

    waiting: list[tuple[int, asyncio.Future[Taken]]]


@dataclass
class RateLimiter:
    """Per-user and per-tenant GCRA buckets; `store` None: the request's service database."""

    user: Bucket
    tenant: Bucket
    enabled: bool = True
    clock: Seconds = field(default=time.time)
    store: BucketStore | None = None
    key: bytes = DEV_ERASURE_KEY.encode()
    """The keyed hash of bucket ids: a bucket names no tenant or user (docs/data-lifecycle.md)."""
    _moving: dict[str, _Moves] = field(default_factory=dict, init=False, repr=False)
    """The buckets this process is moving now, with the requests that wait for the next move."""
    _movers: set[asyncio.Task[None]] = field(default_factory=set, init=False, repr=False)

    @classmethod
    def from_settings(cls, settings: ServiceSettings) -> RateLimiter:
        """The limits `MANDAACT_RATE_LIMIT_*` set."""
        return cls(
            user=Bucket(settings.rate_limit_user_per_s, settings.rate_limit_user_burst),
            tenant=Bucket(settings.rate_limit_tenant_per_s, settings.rate_limit_tenant_burst),
            enabled=settings.rate_limit_enabled,
            key=settings.erasure_secret,
        )

    async def check(self, db: AsyncDatabase[Doc], principal: Principal) -> Decision:
        """Spend one request of the caller's and the tenant's buckets; the binding decision."""
        now = round(self.clock() * MICROS)
        store = self.store or MongoBuckets(db)
        user_key, tenant_key = subject_hashes(self.key, principal.tenant_id, principal.user_id)
        user_taken, tenant_taken = await asyncio.gather(
            self._take(store, user_key, self.user, now),
            self._take(store, tenant_key, self.tenant, now),
        )
        user = self.user.judge(user_taken)
        tenant = self.tenant.judge(tenant_taken)
        if not user.allowed and tenant.allowed:
            # A request its user may not make must not spend the other users' tenant budget.
            await store.give_back(tenant_key, self.tenant, tenant_taken.now)
        if not user.allowed:
            return user
        if not tenant.allowed:
            return tenant
        return user if user.remaining / user.limit <= tenant.remaining / tenant.limit else tenant

    async def _take(self, store: BucketStore, key: str, bucket: Bucket, now: int) -> Taken:
        """Spend one request of bucket `key`. A lone request moves it at once; requests that
        come while this process moves that bucket wait and are spent together by the next move
        (one write for all of them, judged in arrival order): a tenant's bucket, which every
        request of the tenant moves, costs a write per round trip, not per request."""
        answer: asyncio.Future[Taken] = asyncio.get_running_loop().create_future()
        moving = self._moving.get(key)
        if moving is not None:
            moving.waiting.append((now, answer))
            return await answer
        moving = self._moving[key] = _Moves([(now, answer)])
        mover = asyncio.get_running_loop().create_task(self._move(store, key, bucket, moving))
        self._movers.add(mover)  # held until done: the loop keeps only weak references
        mover.add_done_callback(self._movers.discard)
        return await answer

    async def _move(self, store: BucketStore, key: str, bucket: Bucket, moving: _Moves) -> None:
        try:
            while moving.waiting:
                batch, moving.waiting = moving.waiting, []
                try:
                    taken = await store.take(key, bucket, max(n for n, _ in batch), len(batch))
                except Exception as exc:
                    for _, answer in batch:
                        if not answer.done():
                            answer.set_exception(exc)
                    continue
                for (_, answer), one in zip(batch, taken, strict=True):
                    if not answer.done():
                        answer.set_result(one)
        finally:
            if self._moving.get(key) is moving:
                del self._moving[key]
            for _, answer in moving.waiting:  # cancelled while waiting: nothing was spent
                if not answer.done():
                    answer.cancel()

    def headers(self, decision: Decision) -> dict[str, str]:
        """The RateLimit-* headers (draft-ietf-httpapi-ratelimit-headers) of a decision."""
        return {
            "RateLimit-Limit": str(decision.limit),
            "RateLimit-Remaining": str(decision.remaining),
            "RateLimit-Reset": str(decision.reset_seconds),
            "RateLimit-Policy": (
                f"{self.user.burst};w={self.user.window_seconds},"
                f" {self.tenant.burst};w={self.tenant.window_seconds}"
            ),
        }


async def ensure_rate_limit_indexes(db: AsyncDatabase[Doc]) -> None:
    """Buckets expire once they are full again (the TTL monitor removes them)."""
    await db[RATE_LIMITS].create_index("expires_at", expireAfterSeconds=0)


def rate_limit_dependency(
    principal: Callable[..., Any], database: Callable[[Request], AsyncDatabase[Doc]]
) -> Callable[..., Any]:
    """The dependency mutating routes get: 429 problem past a limit, RateLimit-* headers always."""

    @answers(429)
    async def rate_limited(request: Request, caller: Principal = Depends(principal)) -> None:
        limiter: RateLimiter = request.app.state.rate_limiter
        if not limiter.enabled or request.method not in MUTATING_METHODS:
            return
        decision = await limiter.check(database(request), caller)
        headers = limiter.headers(decision)
        if not decision.allowed:
            headers["Retry-After"] = str(decision.retry_after_seconds)
            raise TooManyRequests(
                f"too many changes: at most {decision.limit} at once, then"
                f" {limiter.user.per_second:g} a second per user"
                f" ({limiter.tenant.per_second:g} per tenant); retry after"
                f" {decision.retry_after_seconds} s",
                slug="rate-limited",
                headers=headers,
                limit=decision.limit,
            )
        setattr(request.state, _HEADERS_STATE, headers)

    return rate_limited


class RateLimitHeaders:
    """Add the RateLimit-* headers the limiter decided to the response a route sent."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})  # the dict the route's `request.state` writes into

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra: dict[str, str] = scope.get("state", {}).get(_HEADERS_STATE) or {}
                if extra:
                    headers = list(message.get("headers", []))
                    headers += [(k.lower().encode(), v.encode()) for k, v in extra.items()]
                    message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def include_routers(
    app: FastAPI,
    routers: Iterable[APIRouter],
    mutating: Sequence[DependsParam],
    every: Sequence[DependsParam] = (),
) -> None:
    """Include `routers` in `app` in order, adding `every` to each route and `mutating` to every
    mutating route."""
    for router in routers:
        if not any(_mutates(route) for route in router.routes):
            app.include_router(router, dependencies=list(every) or None)
            continue
        for route in router.routes:
            one = APIRouter()
            one.routes.append(route)
            deps = [*every, *mutating] if _mutates(route) else list(every)
            app.include_router(one, dependencies=deps or None)


def _mutates(route: Any) -> bool:
    return isinstance(route, APIRoute) and bool((route.methods or set()) & MUTATING_METHODS)


def install_limits(
    app: FastAPI,
    settings: ServiceSettings,
    principal: Callable[..., Any],
    database: Callable[[Request], AsyncDatabase[Doc]],
) -> list[DependsParam]:
    """Cap bodies, keep the limiter on the app; the dependencies mutating routes get."""
    app.add_middleware(RateLimitHeaders)
    app.add_middleware(BodyLimit)
    app.state.rate_limiter = RateLimiter.from_settings(settings)
    return [Depends(rate_limit_dependency(principal, database))]
