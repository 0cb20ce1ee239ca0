"""MongoDB access through PyMongo's async client: one client per process, made in the lifespan."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pymongo import AsyncMongoClient, WriteConcern
from pymongo.asynchronous.client_session import AsyncClientSession
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


def make_client(url: str, *, timeout_ms: int = 5000) -> AsyncMongoClient[Doc]:
    """Create the process's Mongo client (call this in a lifespan, never at import)."""
    return AsyncMongoClient(
        url,
        serverSelectionTimeoutMS=timeout_ms,
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
    async with client.start_session() as session:
        result: T = await session.with_transaction(
            work,
            read_concern=ReadConcern("snapshot"),
            write_concern=WriteConcern("majority"),
        )
        return result


def is_transient(exc: BaseException) -> bool:
    """Whether an error is worth retrying (network, failover, transient transaction labels)."""
    if isinstance(
        exc, (AutoReconnect, ConnectionFailure, NetworkTimeout, ServerSelectionTimeoutError)
    ):
        return True
    if isinstance(exc, PyMongoError):
        return exc.has_error_label("TransientTransactionError") or exc.has_error_label(
            "UnknownTransactionCommitResult"
        )
    return isinstance(exc, (TimeoutError, ConnectionError, OSError))


async def ping(db: AsyncDatabase[Doc]) -> bool:
    """Whether the database answers."""
    try:
        await db.command("ping")
    except PyMongoError:
        return False
    return True
