"""Idempotency keys for mutating requests: a repeated key replays the first response.

A key is stored per tenant, user and operation with a hash of the request body and the
response, in the same transaction as the effect (see `run_idempotent`), under a unique index.
So the same key with the same body gives the same status and body and only one effect; the same
key with another body is refused with a 422 problem. Keys expire after `DEFAULT_RETENTION`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Final

from fastapi import Header
from pymongo import ASCENDING, AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from mandaact_common.domain.owner import Owner
from mandaact_common.errors import RuleBroken
from mandaact_common.mongo import Doc
from mandaact_common.outbox import Transaction, transact

IDEMPOTENCY_KEYS: Final = "idempotency_keys"
HEADER: Final = "Idempotency-Key"
KEY_PATTERN: Final = r"^[\x21-\x7e]{1,255}$"
"""1–255 visible ASCII characters (a UUID is the usual choice)."""
DEFAULT_RETENTION: Final = timedelta(hours=24)

IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias=HEADER,
        pattern=KEY_PATTERN,
        description="Repeat a request safely: the same key and body replay the first response.",
    ),
]
"""The optional `Idempotency-Key` request header, validated (a bad one is a 422 naming it)."""


class IdempotencyKeyReused(RuleBroken):
    """The key was already used for a request with a different body."""

    code, title = "idempotency-key-reused", "Idempotency key reused"

    @classmethod
    def for_key(cls, key: str) -> IdempotencyKeyReused:
        """The error of one reused key, naming the header at fault."""
        return cls(
            f"the {HEADER} {key!r} was already used with a different request body",
            field=f"header.{HEADER}",
            message="already used with another body",
        )


@dataclass(frozen=True, slots=True)
class IdempotentRequest:
    """Who sent which operation under which key, and a fingerprint of its body."""

    tenant_id: str
    user_id: str
    operation: str
    key: str
    fingerprint: str

    @classmethod
    def of(cls, owner: Owner, operation: str, key: str, body: bytes) -> IdempotentRequest:
        """The request of an owner's operation under a key, fingerprinted by its body."""
        return cls(owner.tenant_id, owner.user_id, operation, key, body_fingerprint(body))


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """A response as it is replayed: status, JSON body and the headers worth repeating."""

    status_code: int
    body: Any
    headers: Mapping[str, str] = field(default_factory=dict)


def body_fingerprint(body: bytes) -> str:
    """SHA-256 of the body's canonical JSON (key order and spacing ignored), else of its bytes."""
    try:
        canonical = json.dumps(
            json.loads(body), sort_keys=True, separators=(",", ":"), ensure_ascii=True
        ).encode()
    except (ValueError, UnicodeDecodeError):
        canonical = body
    return hashlib.sha256(canonical).hexdigest()


async def ensure_idempotency_indexes(db: AsyncDatabase[Doc]) -> None:
    """The unique index a key is stored under, and expiry of old keys."""
    await db[IDEMPOTENCY_KEYS].create_index(
        [
            ("tenant_id", ASCENDING),
            ("user_id", ASCENDING),
            ("operation", ASCENDING),
            ("key", ASCENDING),
        ],
        unique=True,
        name="idempotency_key_unique",
    )
    await db[IDEMPOTENCY_KEYS].create_index("expires_at", expireAfterSeconds=0)


def _filter(request: IdempotentRequest) -> Doc:
    return {
        "tenant_id": request.tenant_id,
        "user_id": request.user_id,
        "operation": request.operation,
        "key": request.key,
    }


async def recall(
    tx: Transaction, request: IdempotentRequest, *, now: datetime | None = None
) -> StoredResponse | None:
    """The response stored for this key, None if there is none; raises on another body."""
    now = now or datetime.now(UTC)
    doc = await tx.db[IDEMPOTENCY_KEYS].find_one(_filter(request), session=tx.session)
    if doc is None:
        return None
    expires_at: datetime = doc["expires_at"]
    if expires_at.tzinfo is None:  # a client without tz_aware=True reads naive UTC
        expires_at = expires_at.replace(tzinfo=UTC)
    if expires_at <= now:
        # The TTL monitor runs only now and then; an expired key must not block a new request.
        await tx.db[IDEMPOTENCY_KEYS].delete_one({"_id": doc["_id"]}, session=tx.session)
        return None
    if doc["fingerprint"] != request.fingerprint:
        raise IdempotencyKeyReused.for_key(request.key)
    return StoredResponse(
        status_code=int(doc["status_code"]),
        body=json.loads(doc["body"]),
        headers=dict(doc.get("headers") or {}),
    )


async def remember(
    tx: Transaction,
    request: IdempotentRequest,
    response: StoredResponse,
    *,
    now: datetime | None = None,
    retention: timedelta = DEFAULT_RETENTION,
) -> None:
    """Store the response for this key in the transaction (DuplicateKeyError if it raced)."""
    now = now or datetime.now(UTC)
    await tx.db[IDEMPOTENCY_KEYS].insert_one(
        {
            **_filter(request),
            "fingerprint": request.fingerprint,
            "status_code": response.status_code,
            # Kept as JSON text: any body round-trips, whatever its keys look like in BSON.
            "body": json.dumps(response.body, separators=(",", ":")),
            "headers": dict(response.headers),
            "created_at": now,
            "expires_at": now + retention,
        },
        session=tx.session,
    )


async def run_idempotent(
    client: AsyncMongoClient[Doc],
    db: AsyncDatabase[Doc],
    source: str,
    request: IdempotentRequest,
    work: Callable[[Transaction], Awaitable[StoredResponse]],
    *,
    retention: timedelta = DEFAULT_RETENTION,
) -> StoredResponse:
    """Run `work` once per key: replay the stored response, or run it and store its response.

    The key is written in the same transaction as the effect and its events. Two requests
    racing with one key: the loser's insert hits the unique index, and its retry replays
    the winner's response.
    """

    async def once(tx: Transaction) -> StoredResponse:
        stored = await recall(tx, request)
        if stored is not None:
            return stored
        response = await work(tx)
        await remember(tx, request, response, retention=retention)
        return response

    try:
        return await transact(client, db, source, once)
    except DuplicateKeyError:
        return await transact(client, db, source, once)
