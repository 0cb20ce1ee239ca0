"""MongoDB access through PyMongo's async client: one client per process, made in the lifespan."""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

import pymongo
from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, WriteConcern
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import (
    AutoReconnect,
    ConnectionFailure,
    NetworkTimeout,
    PyMongoError,
    ServerSelectionTimeoutError,
)
from pymongo.read_concern import ReadConcern

Doc = dict[str, Any]
T = TypeVar("T")

IN_CHUNK: Final = 50
"""Values per `$in` query of `find_in`."""


async def find_in(
    collection: AsyncCollection[Doc],
    field: str,
    values: Collection[Any],
    projection: Mapping[str, Any] | None = None,
    *,
    where: Mapping[str, Any] | None = None,
    session: AsyncClientSession | None = None,
) -> list[Doc]:
    """The documents whose `field` is one of `values` (and match `where`), `IN_CHUNK` values to
    a query.

    The MongoDB-compatible server used in development and tests spends time quadratic in the
    length of an `$in` list (1,000 ids: 1.3 s in one query, 0.1 s in chunks of 50); MongoDB
    itself is indifferent to the split, so every large `$in` read goes through here.
    """
    wanted = list(values)
    found: list[Doc] = []
    for first in range(0, len(wanted), IN_CHUNK):
        chunk = wanted[first : first + IN_CHUNK]
        query = {**(where or {}), field: chunk[0] if len(chunk) == 1 else {"$in": chunk}}
        found += await collection.find(query, projection, session=session).to_list()
    return found


Order = Sequence[tuple[str, int]]
"""A sort: (field, 1 ascending | -1 descending), the last field unique among the rows."""


async def keyset_page(
    collection: AsyncCollection[Doc],
    where: Mapping[str, Any],
    order: Order,
    after: Sequence[Any] | None,
    limit: int,
    projection: Mapping[str, Any] | None = None,
    *,
    session: AsyncClientSession | None = None,
) -> list[Doc]:
    """The first `limit` documents matching `where` in `order` that come after the row whose
    values of the order's fields are `after` (from the start when None).

    The usual keyset filter is an `$or` ("first field past the cursor, or equal and the next
    past it, ..."). The server used in development and tests answers any `$or` with a scan of
    the whole collection, every tenant's rows (30,000 rows: 320 ms, against 6 ms by the
    index). So this asks two index range reads instead: the rows strictly past the cursor on
    the first field (sorted, `limit`), and the rows equal to it on the first field (the
    cursor's ties, few: one timestamp, one date of one user), whose order on the other fields
    is decided here. MongoDB would serve both shapes by the index as well.
    """
    first, direction = order[0]
    sort = [(f, ASCENDING if d > 0 else DESCENDING) for f, d in order]
    if after is None:
        cursor = collection.find(dict(where), projection, session=session)
        return await cursor.sort(sort).limit(limit).to_list()
    bound = where.get(first)
    held = dict(bound) if isinstance(bound, Mapping) else {} if bound is None else {"$eq": bound}
    past = {**where, first: {**held, "$gt" if direction > 0 else "$lt": after[0]}}
    beyond = collection.find(past, projection, session=session).sort(sort).limit(limit)
    rows: list[Doc] = await beyond.to_list()
    ties: list[Doc] = []
    # The ties by plain equality, the bound checked here: that server answers a range with an
    # `$eq` in it slowly (440 ms for 3 rows), and the cursor's value is one value.
    if _within(after[0], held):
        tied = {**where, first: after[0]}
        ties = await collection.find(tied, projection, session=session).to_list()
    rest = order[1:]
    later = [d for d in ties if _after(tuple(d.get(f) for f, _ in rest), after[1:], rest)]
    for field, way in reversed(rest):  # a stable sort per field, the last first

        def value_of(doc: Doc, field: str = field) -> Any:
            return _comparable(doc.get(field))

        later.sort(key=value_of, reverse=way < 0)
    return (later + rows)[:limit]


async def keyset_rows(
    collection: AsyncCollection[Doc],
    where: Mapping[str, Any],
    order: Order,
    page: int,
    projection: Mapping[str, Any] | None = None,
    *,
    session: AsyncClientSession | None = None,
) -> AsyncIterator[Doc]:
    """Every document matching `where` in `order`, read `page` at a time by `keyset_page`: for
    a reader that stops at the first rows it can use (a claim passing over busy ones). The
    projection, if any, must keep the order's fields."""
    if page < 1:
        raise ValueError(f"keyset_rows: a page holds at least one row, not {page}")
    after: tuple[Any, ...] | None = None
    while True:
        rows = await keyset_page(collection, where, order, after, page, projection, session=session)
        for row in rows:
            yield row
        if len(rows) < page:
            return
        after = tuple(rows[-1][f] for f, _ in order)


_BOUNDS: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "$eq": lambda v, b: bool(v == b),
    "$gt": lambda v, b: bool(v > b),
    "$gte": lambda v, b: bool(v >= b),
    "$lt": lambda v, b: bool(v < b),
    "$lte": lambda v, b: bool(v <= b),
}


def _within(value: Any, bound: Mapping[str, Any]) -> bool:
    """Whether a value satisfies a field's comparison operators (`$gt`, `$lte`, ...)."""
    unknown = set(bound) - set(_BOUNDS)
    if unknown:
        raise ValueError(f"keyset_page: cannot check {sorted(unknown)} on the first order field")
    return all(_BOUNDS[op](_comparable(value), _comparable(b)) for op, b in bound.items())


def _comparable(value: Any) -> Any:
    """A value as compared here: a datetime read without `tz_aware` is UTC."""
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _after(values: Sequence[Any], cursor: Sequence[Any], order: Order) -> bool:
    """Whether a row's values of these order fields come after the cursor's."""
    for raw, mark, (_, way) in zip(values, cursor, order, strict=True):
        value, held = _comparable(raw), _comparable(mark)
        if value != held:
            return bool(value > held) if way > 0 else bool(value < held)
    return False


DEFAULT_TIMEOUT_MS: Final = 10_000
"""Deadline of one database call unless a `pymongo.timeout()` block sets another
(`MANDAACT_MONGO_TIMEOUT_MS`)."""


def make_client(url: str, *, timeout_ms: int = DEFAULT_TIMEOUT_MS) -> AsyncMongoClient[Doc]:
    """Create the process's Mongo client (call this in a lifespan, never at import).

    `timeoutMS` gives every operation a deadline (connection, server selection, the server's
    own `maxTimeMS` and the socket reads), so a database that hangs fails the call with a
    timeout instead of holding it forever. A `pymongo.timeout(seconds)` block (a consumer
    batch) replaces it with a deadline shared by every call inside.
    """
    return AsyncMongoClient(
        url,
        timeoutMS=timeout_ms,
        serverSelectionTimeoutMS=min(timeout_ms, 5000),
        tz_aware=True,
        uuidRepresentation="standard",
    )


async def in_transaction(
    client: AsyncMongoClient[Doc], work: Callable[[AsyncClientSession], Awaitable[T]]
) -> T:
    """Run `work` in one multi-document transaction (retried by the driver on transient errors).

    `work` may run more than once: it must only touch the database through the session,
    never publish or call out.
    """
    await _kill_abandoned(client)
    async with client.start_session() as session:
        try:
            result: T = await session.with_transaction(
                work,
                read_concern=ReadConcern("snapshot"),
                write_concern=WriteConcern("majority"),
            )
        except BaseException as exc:
            if is_transient(exc) or isinstance(exc, asyncio.CancelledError):
                _abandon(client, session.session_id)
            raise
        return result


ABANDONED_KILL_SECONDS: Final = 2.0
"""Deadline of the `killSessions` call that ends transactions left behind (see below)."""
_ABANDONED_FORGET_SECONDS: Final = 120.0  # the server reaps idle transactions after 60 s
_abandoned: weakref.WeakKeyDictionary[AsyncMongoClient[Doc], dict[bytes, tuple[Doc, float]]] = (
    weakref.WeakKeyDictionary()
)


def _abandon(client: AsyncMongoClient[Doc], session_id: Mapping[str, Any]) -> None:
    """Remember a session whose transaction may still be open on the server.

    A transaction given up on a deadline or a lost connection is not aborted there (the abort
    cannot be sent in time); it keeps its writes' locks until the server reaps it (60 s of
    idleness), and every retry touching the same documents fails on a write conflict until
    then. Killing the session ends it at once.
    """
    pending = _abandoned.setdefault(client, {})
    pending[bytes(session_id["id"])] = (dict(session_id), time.monotonic())


async def _kill_abandoned(client: AsyncMongoClient[Doc]) -> None:
    """Kill the sessions left behind by failed transactions (best effort, never raises)."""
    pending = _abandoned.get(client)
    if not pending:
        return
    now = time.monotonic()
    for key, (_, since) in list(pending.items()):
        if now - since > _ABANDONED_FORGET_SECONDS:
            del pending[key]
    if not pending:
        return
    ids = [session_id for session_id, _ in pending.values()]
    try:
        with pymongo.timeout(ABANDONED_KILL_SECONDS):
            await client.admin.command("killSessions", ids)
    except PyMongoError:
        return  # the server is still away: try again before the next transaction
    for session_id in ids:
        pending.pop(bytes(session_id["id"]), None)


_TRANSIENT_LABELS: Final = (
    "TransientTransactionError",
    "UnknownTransactionCommitResult",
    "RetryableWriteError",
)
_TRANSIENT_CODES: Final = frozenset(
    {
        6,  # HostUnreachable
        7,  # HostNotFound
        50,  # MaxTimeMSExpired
        89,  # NetworkTimeout
        91,  # ShutdownInProgress
        112,  # WriteConflict
        189,  # PrimarySteppedDown
        262,  # ExceededTimeLimit
        9001,  # SocketException
        10107,  # NotWritablePrimary
        11600,  # InterruptedAtShutdown
        11602,  # InterruptedDueToReplStateChange
        13435,  # NotPrimaryNoSecondaryOk
        13436,  # NotPrimaryOrSecondary
    }
)


def is_deadline(exc: BaseException) -> bool:
    """Whether an error is a deadline that ran out (a `timeoutMS`, `pymongo.timeout()` or
    `asyncio.timeout()` one)."""
    if isinstance(exc, PyMongoError):
        return exc.timeout
    return isinstance(exc, TimeoutError)


def is_transient(exc: BaseException) -> bool:
    """Whether an error is worth retrying: network, failover, a deadline, a transient label.

    Such an error says nothing about the message being processed, so a consumer waits it out
    and never dead-letters a message for it.
    """
    if is_deadline(exc):
        return True
    if isinstance(
        exc, (AutoReconnect, ConnectionFailure, NetworkTimeout, ServerSelectionTimeoutError)
    ):
        return True
    if isinstance(exc, PyMongoError):
        code = getattr(exc, "code", None)
        return code in _TRANSIENT_CODES or any(exc.has_error_label(x) for x in _TRANSIENT_LABELS)
    return isinstance(exc, (TimeoutError, ConnectionError, OSError))


async def ping(db: AsyncDatabase[Doc], *, timeout_seconds: float | None = None) -> bool:
    """Whether the database answers (within `timeout_seconds`, else the client's deadline)."""
    try:
        if timeout_seconds is None:
            await db.command("ping")
        else:
            with pymongo.timeout(timeout_seconds):
                await db.command("ping")
    except PyMongoError:
        return False
    return True
