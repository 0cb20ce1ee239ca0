"""A generic unit of work over PyMongo async sessions (with the outbox) and its in-memory twin.

A service defines its store port (a Protocol of reads and writes scoped to an owner) and two
adapters of it: one over MongoDB that goes through the unit's session, one over plain tables.
The unit of work runs a use case's `work(store)` either atomically — its writes and the events
it emits commit together, in one transaction, or not at all — or read-only. Bootstrap picks the
adapter; the use cases never know which one they got.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from mandaact_common.errors import Conflict
from mandaact_common.idempotency import (
    IdempotencyKeyReused,
    IdempotentRequest,
    StoredResponse,
    recall,
    remember,
    run_idempotent,
)
from mandaact_common.mongo import Doc
from mandaact_common.outbox import Transaction, transact
from mandaact_contracts.events import EventPayload

T = TypeVar("T")
StoreT = TypeVar("StoreT")
StoreT_co = TypeVar("StoreT_co", covariant=True)
TablesT = TypeVar("TablesT", bound="MemoryTables")

Emitted = tuple[str, EventPayload, str | None]
"""An event recorded by a store: topic, payload, subject."""


class UnitOfWork(Protocol[StoreT_co]):
    """Runs work against a store: atomically (changes and events) or read-only."""

    async def run(self, work: Callable[[StoreT_co], Awaitable[T]]) -> T:
        """Run `work` in one transaction; nothing is stored if it raises."""
        ...

    async def read(self, work: Callable[[StoreT_co], Awaitable[T]]) -> T:
        """Run read-only `work` (no transaction)."""
        ...

    async def run_once(
        self, request: IdempotentRequest, work: Callable[[StoreT_co], Awaitable[StoredResponse]]
    ) -> StoredResponse:
        """Like `run`, but a repeated idempotency key replays the first response."""
        ...


# --- MongoDB -----------------------------------------------------------------------------------


class MongoStore:
    """Base of a service's Mongo store: its database, the unit's session, and `emit`."""

    def __init__(self, db: AsyncDatabase[Doc], tx: Transaction | None) -> None:
        self._db = db
        self._tx = tx
        self._session: AsyncClientSession | None = tx.session if tx else None

    def emit(self, topic: str, payload: EventPayload, subject: str | None = None) -> None:
        """Record an event in the transaction's outbox rows."""
        if self._tx is None:
            raise RuntimeError("events can only be emitted inside a transaction")
        self._tx.emit(topic, payload, subject=subject)


StoreFactory = Callable[[AsyncDatabase[Doc], Transaction | None], StoreT]
"""Builds a store over the database, inside a transaction or (None) read-only."""


class MongoUnitOfWork(Generic[StoreT]):
    """The UnitOfWork port on MongoDB: one multi-document transaction per unit.

    With `attempts` above 1, a unit that lost a race — a duplicate `_id` or a `Conflict` raised
    by a conditional write — is run again on the winner's result; past the last attempt a
    duplicate key is reported as a `Conflict`.
    """

    def __init__(
        self,
        client: AsyncMongoClient[Doc],
        db: AsyncDatabase[Doc],
        source: str,
        store: StoreFactory[StoreT],
        *,
        attempts: int = 1,
    ) -> None:
        self._client = client
        self._db = db
        self._source = source
        self._store = store
        self._attempts = max(1, attempts)

    def store_in(self, tx: Transaction) -> StoreT:
        """The store inside a transaction someone else opened (the idempotent consumer's)."""
        return self._store(tx.db, tx)

    async def run(self, work: Callable[[StoreT], Awaitable[T]]) -> T:
        """Run `work`; its changes and outbox rows commit together."""

        async def unit(tx: Transaction) -> T:
            return await work(self._store(tx.db, tx))

        for _ in range(self._attempts - 1):
            try:
                return await transact(self._client, self._db, self._source, unit)
            except (DuplicateKeyError, Conflict):
                continue
        try:
            return await transact(self._client, self._db, self._source, unit)
        except DuplicateKeyError:
            if self._attempts == 1:
                raise
            raise Conflict("the data was changed by another request; retry") from None

    async def read(self, work: Callable[[StoreT], Awaitable[T]]) -> T:
        """Run read-only `work` without a transaction."""
        return await work(self._store(self._db, None))

    async def run_once(
        self, request: IdempotentRequest, work: Callable[[StoreT], Awaitable[StoredResponse]]
    ) -> StoredResponse:
        """Run `work` once per idempotency key, storing the key with its effect."""

        async def unit(tx: Transaction) -> StoredResponse:
            return await work(self._store(tx.db, tx))

        return await run_idempotent(self._client, self._db, self._source, request, unit)

    async def recall(self, request: IdempotentRequest) -> StoredResponse | None:
        """The response stored for a key, or None (for an effect kept out of transactions)."""

        async def unit(tx: Transaction) -> StoredResponse | None:
            return await recall(tx, request)

        return await transact(self._client, self._db, self._source, unit)

    async def remember(self, request: IdempotentRequest, response: StoredResponse) -> None:
        """Store the response of such an effect for its key; a concurrent first one is kept."""

        async def unit(tx: Transaction) -> None:
            await remember(tx, request, response)

        with contextlib.suppress(DuplicateKeyError):
            await transact(self._client, self._db, self._source, unit)


# --- in memory ---------------------------------------------------------------------------------


@dataclass
class MemoryTables:
    """Base of a service's in-memory tables: what it stores, and the events it emitted."""

    events: list[Emitted] = field(default_factory=list)


class InMemoryStore(Generic[TablesT]):
    """Base of a service's in-memory store: its tables, and `emit` into them."""

    def __init__(self, tables: TablesT) -> None:
        self.tables = tables

    def emit(self, topic: str, payload: EventPayload, subject: str | None = None) -> None:
        """Record an event with this unit of work's changes."""
        self.tables.events.append((topic, payload, subject))


class InMemoryUnitOfWork(Generic[TablesT, StoreT]):
    """The UnitOfWork port in memory: a unit works on a copy that replaces the state on success."""

    def __init__(self, tables: TablesT, store: Callable[[TablesT], StoreT]) -> None:
        self.tables = tables
        self._store = store
        self.keys: dict[tuple[str, str, str, str], tuple[str, StoredResponse]] = {}

    @property
    def events(self) -> list[Emitted]:
        """Every event the committed units emitted, in order."""
        return self.tables.events

    def store_in(self, _tx: object = None) -> StoreT:
        """A store over the current tables (what a consumer's transaction sees)."""
        return self._store(self.tables)

    async def run(self, work: Callable[[StoreT], Awaitable[T]]) -> T:
        """Run `work` on a copy; keep the copy only if it returns."""
        scratch = copy.deepcopy(self.tables)
        result = await work(self._store(scratch))
        self.tables = scratch
        return result

    async def read(self, work: Callable[[StoreT], Awaitable[T]]) -> T:
        """Run read-only `work` on the current state."""
        return await work(self._store(self.tables))

    async def run_once(
        self, request: IdempotentRequest, work: Callable[[StoreT], Awaitable[StoredResponse]]
    ) -> StoredResponse:
        """Replay the stored response of a known key, else run `work` and remember it."""
        stored = await self.recall(request)
        if stored is not None:
            return stored
        response = await self.run(work)
        await self.remember(request, response)
        return response

    async def recall(self, request: IdempotentRequest) -> StoredResponse | None:
        """The response kept for a key, or None; raises when the key came with another body."""
        kept = self.keys.get(_key_of(request))
        if kept is None:
            return None
        fingerprint, response = kept
        if fingerprint != request.fingerprint:
            raise IdempotencyKeyReused.for_key(request.key)
        return response

    async def remember(self, request: IdempotentRequest, response: StoredResponse) -> None:
        """Keep the response for its key, unless one is already kept."""
        self.keys.setdefault(_key_of(request), (request.fingerprint, response))


def _key_of(request: IdempotentRequest) -> tuple[str, str, str, str]:
    return (request.tenant_id, request.user_id, request.operation, request.key)
