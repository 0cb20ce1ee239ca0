"""A generic unit of work over PyMongo async sessions (with the outbox) and its in-memory twin.

A service defines its store port (a Protocol of reads and writes scoped to an owner) and two
adapters of it: one over MongoDB that goes through the unit's session, one over plain tables.
The unit of work runs a use case's `work(store)` either atomically — its writes and the events
it emits commit together, in one transaction, or not at all — or read-only. Bootstrap picks the
adapter; the use cases never know which one they got.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, PyMongoError

from mandaact_common import consistency
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

    async def run_grouped(self, work: Callable[[StoreT_co], Awaitable[T]]) -> T:
        """Like `run`; concurrent callers may share one transaction (group commit)."""
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


class _Failed(Exception):
    """One unit of a group raised: the group's transaction is abandoned without it."""

    def __init__(self, index: int, error: BaseException) -> None:
        super().__init__(repr(error))
        self.index = index
        self.error = error


@dataclass
class _Waiting:
    work: Callable[[Any], Awaitable[Any]]
    answer: asyncio.Future[Any]
    asker: consistency.RequestTokens | None = field(default_factory=consistency.CURRENT.get)
    """The request the unit serves: its events' numbers go to that request's response."""


GROUP_MAX_UNITS = 64
"""The most units one group commit runs in its transaction."""
GROUP_IN_FLIGHT = 2
"""How many group transactions a process runs at once."""


class MongoUnitOfWork(Generic[StoreT]):
    """The UnitOfWork port on MongoDB: one multi-document transaction per unit.

    With `attempts` above 1, a unit that lost a race — a duplicate `_id` or a `Conflict` raised
    by a conditional write — is run again on the winner's result; past the last attempt a
    duplicate key is reported as a `Conflict`.

    `run_grouped` is group commit: units that arrive while a group's transaction is running
    wait and then run one after another in the next group's single transaction (their events in
    one outbox flush), so under load a commit, the outbox writes and the relay's round are shared
    by many units, while a lone unit starts at once. A unit that raises leaves the group: the
    transaction is abandoned and the others run again without it, so what it did is never stored.
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
        self._waiting: deque[_Waiting] = deque()
        self._leaders = 0
        self._leading: set[asyncio.Task[None]] = set()

    def store_in(self, tx: Transaction) -> StoreT:
        """The store inside a transaction someone else opened (the idempotent consumer's)."""
        return self._store(tx.db, tx)

    async def run_grouped(self, work: Callable[[StoreT], Awaitable[T]]) -> T:
        """Run `work` in a group commit with the units of concurrent callers (see the class)."""
        answer: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Waiting(work, answer))
        if self._leaders < GROUP_IN_FLIGHT:
            self._leaders += 1
            leader = asyncio.get_running_loop().create_task(self._lead())
            self._leading.add(leader)  # held until done: the loop keeps only weak references
            leader.add_done_callback(self._leading.discard)
        return await answer

    async def _lead(self) -> None:
        try:
            while self._waiting:
                group = [
                    self._waiting.popleft() for _ in range(min(GROUP_MAX_UNITS, len(self._waiting)))
                ]
                await self._commit_group([w for w in group if not w.answer.done()])
        finally:
            self._leaders -= 1

    async def _commit_group(self, group: list[_Waiting]) -> None:
        while group:
            if len(group) == 1:  # alone: exactly `run`, with its retries on lost races
                await _settle(group[0].answer, self.run(group[0].work))
                return

            async def unit(tx: Transaction, units: list[_Waiting] = group) -> list[Any]:
                store = self._store(tx.db, tx)
                results: list[Any] = []
                for i, waiting in enumerate(units):
                    # Run in the leader's task, the unit's events still name its own request.
                    reset = consistency.CURRENT.set(waiting.asker)
                    try:
                        results.append(await waiting.work(store))
                    except PyMongoError:
                        raise  # the database's: the driver retries the whole transaction
                    except Exception as exc:
                        raise _Failed(i, exc) from exc
                    finally:
                        consistency.CURRENT.reset(reset)
                return results

            try:
                results = await transact(self._client, self._db, self._source, unit)
            except _Failed as failed:
                if isinstance(failed.error, DuplicateKeyError | Conflict):
                    # A lost race: each unit on its own, with `run`'s retries.
                    for waiting in group:
                        await _settle(waiting.answer, self.run(waiting.work))
                    return
                _answer(group[failed.index].answer, error=failed.error)
                group = group[: failed.index] + group[failed.index + 1 :]
                continue
            except BaseException as exc:
                for waiting in group:
                    _answer(waiting.answer, error=exc)
                if not isinstance(exc, Exception):
                    raise
                return
            for waiting, result in zip(group, results, strict=True):
                _answer(waiting.answer, result=result)
            return

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

    async def run_grouped(self, work: Callable[[StoreT], Awaitable[T]]) -> T:
        """`run`: in memory there is no commit to share."""
        return await self.run(work)

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


def _answer(
    answer: asyncio.Future[Any], *, result: Any = None, error: BaseException | None = None
) -> None:
    if answer.done():  # its caller went away (a cancelled request)
        return
    if error is not None:
        answer.set_exception(error)
    else:
        answer.set_result(result)


async def _settle(answer: asyncio.Future[Any], outcome: Awaitable[Any]) -> None:
    try:
        result = await outcome
    except Exception as exc:
        _answer(answer, error=exc)
    else:
        _answer(answer, result=result)


def _key_of(request: IdempotentRequest) -> tuple[str, str, str, str]:
    return (request.tenant_id, request.user_id, request.operation, request.key)
