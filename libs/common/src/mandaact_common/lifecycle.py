"""Data lifecycle (SPEC §9): keyed hashes, tombstones, erasure jobs and the export of a user.

A service declares where it keeps documents about users (`Holding`s in its `Lifecycle`); this
module does the rest the same way everywhere (see docs/data-lifecycle.md):

- `user.deleted` / `tenant.deleted`, inside the consumer's transaction, write a tombstone (a
  keyed hash of the ids, nothing else) and an erasure job (the ids, until the job is done).
- From then on the consumer drops every event of that user (or tenant) before the handler sees
  it, and records nothing of it: late events, replays and redriven dead letters change nothing.
- The job runs outside any transaction, after a grace period (longer than a consumer batch may
  last, so a transaction that began before the tombstone has ended), deletes the subject's
  documents holding by holding, 500 at a time (a three-year user is tens of thousands of
  check-ins: one transaction could never hold them), and in a last transaction removes itself,
  stamps the tombstone and emits `user.erased {service}`. A crash resumes it; deleting again is
  harmless.
- `GET /v1/me/export` streams, as JSON, every exported holding's documents of the caller.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Final, Protocol

from bson import ObjectId
from bson.decimal128 import Decimal128
from pymongo import ASCENDING, AsyncMongoClient, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from mandaact_common.clock import Clock, utc_now
from mandaact_common.consistency import APPLIED, SEQUENCES
from mandaact_common.idempotency import IDEMPOTENCY_KEYS
from mandaact_common.keys import (
    OWNER_SEPARATOR,
    PART_SEPARATOR,
    deletion_id,
    owner_key,
    subject_hashes,
)
from mandaact_common.mongo import Doc, find_in
from mandaact_common.outbox import Transaction, transact
from mandaact_common.settings import ServiceSettings
from mandaact_contracts import topics
from mandaact_contracts.events import (
    ErasureScope,
    EventPayload,
    TenantDeleted,
    UserDeleted,
    UserErased,
)

log = logging.getLogger(__name__)

TOMBSTONES: Final = "erased_subjects"
"""One document per erased user or tenant: `_id` is the keyed hash, nothing else identifies it."""
ERASURE_JOBS: Final = "erasure_jobs"
"""Erasures still running: the ids they erase, until they are done (then the row goes)."""
CHUNK: Final = 500
"""Documents deleted per round trip of an erasure."""
LEASE: Final = timedelta(seconds=60)
"""How long a worker holds a job between two chunks; a dead worker's job is taken after."""
PROCESSED: Final = "processed_events"  # mandaact_common.consumer.PROCESSED (no import cycle)

DELETION_TOPICS: Final = frozenset({topics.USER_DELETED, topics.TENANT_DELETED})


# --- holdings ----------------------------------------------------------------------------------

Filter = Callable[[str, str | None], Sequence[Doc]]
"""The filters of one subject's documents in a collection: (tenant, user) for a user, (tenant,
None) for a whole tenant; none: the collection holds nothing of that scope. Each is one index
read; together they find the subject's documents, each once (no `$or`: the server used in
development answers one by scanning the whole collection)."""


@dataclass(frozen=True, slots=True)
class Holding:
    """A collection where a service keeps documents about users, and how to find a subject's."""

    collection: str
    find: Filter
    export: bool = True
    """Whether `GET /v1/me/export` includes its documents (not for pure replay caches)."""

    def filters(self, tenant_id: str, user_id: str | None) -> Sequence[Doc]:
        """The subject's documents here, as disjoint filters (none: none of this scope)."""
        return self.find(tenant_id, user_id)


def by_fields(
    collection: str,
    *,
    tenant: str = "tenant_id",
    user: str | None = "user_id",
    export: bool = True,
) -> Holding:
    """Documents carrying the tenant and the user in fields of their own (indexed, preferably
    with the tenant first). `user=None`: the collection is the tenant's, no user's alone."""

    def find(tenant_id: str, user_id: str | None) -> Sequence[Doc]:
        if user_id is None:
            return [{tenant: tenant_id}]
        if user is None:
            return []
        return [{tenant: tenant_id, user: user_id}]

    return Holding(collection, find, export)


def by_owner_key(collection: str, *, key: str = "_id", export: bool = True) -> Holding:
    """Documents keyed by the owner key (`<tenant>:<user>`) or a sub-key of it
    (`<tenant>:<user>|…`, `keys.sub_key`): the key itself, and the range of keys that start
    with it and the separator, both read by the key's index. (An anchored `$regex` or an `$or`
    says the same, but the server used in development scans the whole collection for either:
    every tenant's ledger for one user's export.)"""

    def find(tenant_id: str, user_id: str | None) -> Sequence[Doc]:
        if user_id is None:
            prefix = owner_key(tenant_id, "x").rsplit(OWNER_SEPARATOR, 1)[0] + OWNER_SEPARATOR
            return [{key: _starting_with(prefix)}]
        owner = owner_key(tenant_id, user_id)
        return [{key: owner}, {key: _starting_with(owner + PART_SEPARATOR)}]

    return Holding(collection, find, export)


def _starting_with(prefix: str) -> Doc:
    """The strings that start with `prefix` (ending in a separator), as an index range: up to
    the prefix with its last character's successor."""
    return {"$gte": prefix, "$lt": prefix[:-1] + chr(ord(prefix[-1]) + 1)}


def _processed(tenant_id: str, user_id: str | None) -> Sequence[Doc]:
    # Processed event ids carry the tenant (never the user): a tenant's go with it.
    return [{"tenant_id": tenant_id}] if user_id is None else []


COMMON_HOLDINGS: Final[tuple[Holding, ...]] = (
    by_fields(IDEMPOTENCY_KEYS, export=False),
    by_owner_key(SEQUENCES, export=False),
    by_owner_key(APPLIED, export=False),
    Holding(PROCESSED, _processed, export=False),
    Holding(ERASURE_JOBS, lambda t, u: [], export=False),  # never erased by a job: it is one
)
"""What every service keeps through `libs/common`: stored responses of idempotent requests,
processed event ids and the read-your-writes counters (`consistency`). Rate-limit buckets are
keyed by keyed hashes and expire: nothing to erase."""


Prepare = Callable[[AsyncMongoClient[Doc], AsyncDatabase[Doc], "Subject"], Awaitable[None]]
"""A step an erasure runs before it deletes anything (e.g. take a user's rows out of counts kept
in shared documents); it may run again when a crashed erasure is resumed, so it must be
idempotent."""


@dataclass(frozen=True, slots=True)
class Lifecycle:
    """Where a service keeps documents about users (its own holdings plus the common ones)."""

    service: str
    holdings: tuple[Holding, ...]
    prepare: Prepare | None = None
    """Run by each erasure first (see `Prepare`)."""

    @property
    def every_holding(self) -> tuple[Holding, ...]:
        """The service's holdings, then the common ones."""
        return (*self.holdings, *COMMON_HOLDINGS)


@dataclass(frozen=True, slots=True)
class Subject:
    """Whose data an erasure is about: one user of a tenant, or (user None) the whole tenant."""

    tenant_id: str
    user_id: str | None

    @property
    def scope(self) -> ErasureScope:
        """`user` or `tenant`."""
        return "tenant" if self.user_id is None else "user"


async def ensure_lifecycle_indexes(db: AsyncDatabase[Doc]) -> None:
    """Jobs are taken by due time; processed ids are found by tenant for a tenant's erasure."""
    await db[ERASURE_JOBS].create_index([("lease_until", ASCENDING)])
    await db[PROCESSED].create_index([("tenant_id", ASCENDING)])


# --- tombstones ------------------------------------------------------------------------------


class Tombstones(Protocol):
    """Where an API looks up whether a caller was erased."""

    async def first_erased(self, deletion_ids: list[str]) -> str | None:
        """The first of these deletion ids that has a tombstone, None if none has."""
        ...


@dataclass
class MongoTombstones:
    """Tombstones in the service's `erased_subjects` collection."""

    db: AsyncDatabase[Doc]

    async def first_erased(self, deletion_ids: list[str]) -> str | None:
        """One indexed read by `_id`."""
        found = await self.db[TOMBSTONES].find_one({"_id": {"$in": deletion_ids}}, {"_id": 1})
        return None if found is None else str(found["_id"])


@dataclass
class InMemoryTombstones:
    """The in-memory twin of `MongoTombstones`, for tests without a database."""

    ids: set[str] = field(default_factory=set)

    async def first_erased(self, deletion_ids: list[str]) -> str | None:
        """The first id held."""
        return next((i for i in deletion_ids if i in self.ids), None)


# --- the erasure -------------------------------------------------------------------------------


async def schedule_erasure(
    tx: Transaction, did: str, subject: Subject, requested_at: datetime, due: datetime
) -> None:
    """In `tx`: the subject's tombstone (from now on its events are dropped, its writes refused)
    and its erasure job, due at `due`. Idempotent: asking twice keeps the first."""
    await tx.db[TOMBSTONES].update_one(
        {"_id": did},
        {"$setOnInsert": {"scope": subject.scope, "at": requested_at}},
        upsert=True,
        session=tx.session,
    )
    await tx.db[ERASURE_JOBS].update_one(
        {"_id": did},
        {
            "$setOnInsert": {
                "tenant_id": subject.tenant_id,
                "user_id": subject.user_id,
                "scope": subject.scope,
                "requested_at": requested_at,
                "lease_until": due,
            }
        },
        upsert=True,
        session=tx.session,
    )


@dataclass
class Eraser:
    """A service's erasure: the tombstone check of consumed events, and the erasure jobs."""

    lifecycle: Lifecycle
    client: AsyncMongoClient[Doc]
    db: AsyncDatabase[Doc]
    key: bytes
    grace: timedelta = timedelta(seconds=40)
    clock: Clock = utc_now
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    _owner: str = field(default_factory=lambda: uuid.uuid4().hex)

    # -- in the consumer's transaction --

    def hashes_of(self, payload: EventPayload) -> tuple[str, str]:
        """The keyed hashes of an event's user and of its tenant."""
        user, tenant = subject_hashes(self.key, payload.tenant_id, payload.user_id)
        return user, tenant

    async def erased_among(self, tx: Transaction, payloads: Iterable[EventPayload]) -> set[str]:
        """The hashes of these events' users and tenants that have a tombstone (one query)."""
        wanted = {h for p in payloads for h in self.hashes_of(p)}
        if not wanted:
            return set()
        found = await find_in(tx.db[TOMBSTONES], "_id", wanted, {"_id": 1}, session=tx.session)
        return {doc["_id"] for doc in found}

    def is_erased(self, payload: EventPayload, erased: set[str]) -> bool:
        """Whether the event's user or tenant is among `erased`."""
        user, tenant = self.hashes_of(payload)
        return user in erased or tenant in erased

    async def begin(self, tx: Transaction, subject: Subject, requested_at: datetime) -> str:
        """Tombstone the subject and schedule its erasure (idempotent); its deletion id."""
        did = deletion_id(self.key, subject.tenant_id, subject.user_id)
        await schedule_erasure(tx, did, subject, requested_at, self.clock() + self.grace)
        return did

    async def accept(self, tx: Transaction, payload: EventPayload) -> None:
        """A consumed `user.deleted` or `tenant.deleted`: tombstone and job (same transaction)."""
        if isinstance(payload, UserDeleted):
            await self.begin(tx, Subject(payload.tenant_id, payload.user_id), payload.requested_at)
        elif isinstance(payload, TenantDeleted):
            await self.begin(tx, Subject(payload.tenant_id, None), payload.requested_at)

    # -- the jobs --

    async def run_due(self) -> int:
        """Run every erasure that is due now; how many finished."""
        finished = 0
        while (job := await self._take()) is not None:
            await self._erase(job)
            finished += 1
        return finished

    async def run(self, stop: asyncio.Event, poll_seconds: float = 30.0) -> None:
        """Run due jobs until `stop`: woken by a job this process's consumer committed, else
        every poll (at most the grace: goals' jobs are committed by its API process)."""
        while not stop.is_set():
            self.wake.clear()
            try:
                await self.run_due()
            except Exception:
                log.exception("erasure pass failed; retrying")
            waiting = asyncio.ensure_future(self.wake.wait())
            stopping = asyncio.ensure_future(stop.wait())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait(
                    {waiting, stopping},
                    timeout=self._until_next(poll_seconds),
                    return_when=asyncio.FIRST_COMPLETED,
                )
            waiting.cancel()
            stopping.cancel()

    def _until_next(self, poll_seconds: float) -> float:
        return max(0.05, min(poll_seconds, self.grace.total_seconds() or poll_seconds))

    async def _take(self) -> Doc | None:
        now = self.clock()
        return await self.db[ERASURE_JOBS].find_one_and_update(
            {"lease_until": {"$lte": now}},
            {"$set": {"lease_until": now + LEASE, "owner": self._owner}},
            sort=[("lease_until", ASCENDING)],
            return_document=ReturnDocument.AFTER,
        )

    async def _delete(self, job: Doc, collection: str, where: Doc) -> int:
        """Delete what `where` finds, `CHUNK` at a time, renewing the job's lease each time."""
        erased = 0
        while True:
            ids = [d["_id"] async for d in self.db[collection].find(where, {"_id": 1}).limit(CHUNK)]
            if not ids:
                return erased
            result = await self.db[collection].delete_many({"_id": {"$in": ids}})
            erased += result.deleted_count
            await self.db[ERASURE_JOBS].update_one(
                {"_id": job["_id"]}, {"$set": {"lease_until": self.clock() + LEASE}}
            )

    async def _erase(self, job: Doc) -> None:
        subject = Subject(job["tenant_id"], job.get("user_id"))
        if self.lifecycle.prepare is not None:
            await self.lifecycle.prepare(self.client, self.db, subject)
        erased = 0
        for holding in self.lifecycle.every_holding:
            for where in holding.filters(subject.tenant_id, subject.user_id):
                erased += await self._delete(job, holding.collection, where)
        erased_at = self.clock()
        service = self.lifecycle.service

        async def finish(tx: Transaction) -> None:
            gone = await tx.db[ERASURE_JOBS].delete_one({"_id": job["_id"]}, session=tx.session)
            if not gone.deleted_count:
                return  # another worker finished it meanwhile
            await tx.db[TOMBSTONES].update_one(
                {"_id": job["_id"]}, {"$set": {"erased_at": erased_at}}, session=tx.session
            )
            tx.emit(
                topics.USER_ERASED,
                UserErased(
                    tenant_id=subject.tenant_id,
                    # A tenant's erasure names nobody: the tenant's own id stands in.
                    user_id=subject.user_id or subject.tenant_id,
                    service=service,
                    scope=subject.scope,
                    deletion_id=job["_id"],
                    erased_at=erased_at,
                ),
            )

        await transact(self.client, self.db, service, finish)
        log.info("%s erased a %s: %d documents", service, subject.scope, erased)


def eraser_from_settings(
    lifecycle: Lifecycle,
    client: AsyncMongoClient[Doc],
    db: AsyncDatabase[Doc],
    settings: ServiceSettings,
    clock: Clock = utc_now,
) -> Eraser:
    """The service's `Eraser` with the key and grace of its settings."""
    return Eraser(
        lifecycle,
        client,
        db,
        key=settings.erasure_secret,
        grace=timedelta(seconds=settings.erasure_grace_seconds),
        clock=clock,
    )


# --- export ----------------------------------------------------------------------------------


def plain(value: Any) -> Any:
    """A stored value as plain JSON: instants and dates in ISO 8601, ids and decimals as text,
    bytes in base64."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return aware.isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, ObjectId | Decimal128 | Decimal):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return value


async def export_chunks(
    db: AsyncDatabase[Doc], lifecycle: Lifecycle, tenant_id: str, user_id: str, now: datetime
) -> AsyncIterator[bytes]:
    """The caller's documents of every exported holding, as one JSON object written as it is
    read (a three-year history never sits in memory whole)."""
    head = {
        "service": lifecycle.service,
        "tenant_id": tenant_id,
        "user_id": user_id,
        "exported_at": plain(now),
    }
    yield json.dumps(head)[:-1].encode() + b', "collections": {'
    first_holding = True
    for holding in lifecycle.every_holding:
        filters = holding.filters(tenant_id, user_id)
        if not holding.export or not filters:
            continue
        yield (b"" if first_holding else b", ") + json.dumps(holding.collection).encode() + b": ["
        first_holding = False
        first = True
        for where in filters:
            async for doc in db[holding.collection].find(where).sort("_id", ASCENDING):
                yield (b"" if first else b", ") + json.dumps(plain(doc)).encode()
                first = False
        yield b"]"
    yield b"}}"
