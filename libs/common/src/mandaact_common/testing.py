"""Helpers for tests and benchmarks: Kafka records made in memory, a dead-letter sink that keeps.

They feed `IdempotentConsumer.process()` exactly what a broker would hand it (binary-mode
CloudEvents headers and the JSON value), so the real transaction and dedupe run against the
real server without a round trip through Kafka.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal, TypeVar

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from pymongo import AsyncMongoClient, monitoring

from mandaact_common.auth import mint_token
from mandaact_common.consumer import Record
from mandaact_common.keys import deletion_id
from mandaact_common.lifecycle import InMemoryTombstones
from mandaact_common.limits import InMemoryBuckets
from mandaact_common.settings import DEV_ERASURE_KEY, DEV_JWT_SECRET, ServiceSettings
from mandaact_contracts.envelope import (
    Envelope,
    encode_value,
    new_envelope,
    partition_key,
    to_kafka_headers,
)
from mandaact_contracts.events import (
    EVENT_TYPES,
    EventPayload,
    TenantDeleted,
    UserDeleted,
    spec_for_ce_type,
)

_TOPIC_OF_MODEL = {spec.model: topic for topic, spec in EVENT_TYPES.items()}


@dataclass(frozen=True, slots=True)
class MemoryRecord:
    """A Kafka consumer record as the idempotent consumer reads it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]]


def record_of(
    event: EventPayload | Envelope, *, offset: int = 0, partition: int = 0, source: str = "test"
) -> MemoryRecord:
    """The record that carries `event` on its topic (a payload gets a new envelope first)."""
    if isinstance(event, Envelope):
        envelope = event
        topic = spec_for_ce_type(envelope.type).topic
    else:
        topic = _TOPIC_OF_MODEL[type(event)]
        envelope = new_envelope(topic, event, source)
    return MemoryRecord(
        topic,
        partition,
        offset,
        partition_key(envelope),
        encode_value(envelope),
        to_kafka_headers(envelope),
    )


class RecordingDeadLetters:
    """A dead-letter sink that keeps what it was given."""

    def __init__(self) -> None:
        self.sent: list[tuple[Record, BaseException]] = []

    async def send(self, record: Record, error: BaseException, attempts: int) -> None:
        """Keep the record and its error."""
        self.sent.append((record, error))


class SettableClock:
    """A clock tests set and move by hand; use cases read `now` from it like from `utc_now`."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, by: timedelta) -> datetime:
        """Move the clock forward and return the new instant."""
        self.now += by
        return self.now


def auth_header(tenant: str = "acme", user: str = "alice", **token_args: Any) -> dict[str, str]:
    """An Authorization header with a dev token (extra args go to `mint_token`)."""
    return {"Authorization": f"Bearer {mint_token(DEV_JWT_SECRET, tenant, user, **token_args)}"}


class SigningKey:
    """An identity provider's RS256 or ES256 key pair: signs tokens, publishes its public JWK."""

    def __init__(self, algorithm: Literal["RS256", "ES256"], kid: str | None = None) -> None:
        self.algorithm = algorithm
        self.kid = kid or f"{algorithm.lower()}-{uuid.uuid4().hex[:8]}"
        self._private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey = (
            rsa.generate_private_key(public_exponent=65537, key_size=2048)
            if algorithm == "RS256"
            else ec.generate_private_key(ec.SECP256R1())
        )

    def jwk(self) -> dict[str, Any]:
        """The public key as a JWKS member (`kid`, `use: sig`, `alg`)."""
        public = self._private.public_key()
        jwk: dict[str, Any] = (
            RSAAlgorithm.to_jwk(public, as_dict=True)
            if isinstance(public, rsa.RSAPublicKey)
            else ECAlgorithm.to_jwk(public, as_dict=True)
        )
        return {**jwk, "kid": self.kid, "use": "sig", "alg": self.algorithm}

    def token(
        self,
        tenant: str = "acme",
        user: str = "alice",
        *,
        ttl_seconds: int = 3600,
        now: float | None = None,
        kid: str | None = None,
        **claims: Any,
    ) -> str:
        """A token signed with this key (`kid` header: this key's unless given; `""`: none)."""
        issued = int(now if now is not None else time.time())
        body = {"sub": user, "tid": tenant, "iat": issued, "exp": issued + ttl_seconds, **claims}
        header_kid = self.kid if kid is None else kid
        headers = {"kid": header_kid} if header_kid else {}
        return jwt.encode(body, self._private, algorithm=self.algorithm, headers=headers)


class JwksServer:
    """A JWKS endpoint on 127.0.0.1, served from a thread: it publishes what `publish` set last,
    counts the fetches, answers after `delay` seconds, and with 503 while `down` is true."""

    def __init__(self) -> None:
        self.jwks: dict[str, Any] = {"keys": []}
        self.down = False
        self.delay = 0.0
        self.fetches = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.fetches += 1
                time.sleep(server.delay)
                payload = b"{}" if server.down else json.dumps(server.jwks).encode()
                self.send_response(503 if server.down else 200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._http.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        """The JWKS URL (`MANDAACT_JWT_JWKS_URL`)."""
        return f"http://127.0.0.1:{self._http.server_address[1]}/.well-known/jwks.json"

    def publish(self, *keys: SigningKey) -> None:
        """Publish these public keys (and only these) from now on."""
        self.jwks = {"keys": [key.jwk() for key in keys]}

    def __enter__(self) -> JwksServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        self._http.shutdown()
        self._http.server_close()
        self._thread.join(timeout=10)


async def documents_naming(db: Any, *needles: str) -> list[tuple[str, dict[str, Any]]]:
    """Every document of every collection of `db` whose text holds one of `needles` anywhere
    (a field, a key, a nested value): what "no document with that user's id" is checked by."""
    found: list[tuple[str, dict[str, Any]]] = []
    for name in sorted(await db.list_collection_names()):
        async for doc in db[name].find({}):
            text = json.dumps(doc, default=str, ensure_ascii=False)
            if any(needle in text for needle in needles):
                found.append((name, doc))
    return found


def erasure_of(
    tenant_id: str, user_id: str | None = None, *, at: datetime | None = None
) -> EventPayload:
    """The `user.deleted` (or, without a user, `tenant.deleted`) event goals would publish."""
    key = DEV_ERASURE_KEY.encode()
    when = at or datetime.now(UTC)
    if user_id is None:
        return TenantDeleted(
            tenant_id=tenant_id,
            user_id="admin",
            deletion_id=deletion_id(key, tenant_id),
            requested_at=when,
        )
    return UserDeleted(
        tenant_id=tenant_id,
        user_id=user_id,
        deletion_id=deletion_id(key, tenant_id, user_id),
        requested_at=when,
    )


def offline(app: Any) -> None:
    """Let an app built for unit tests (fake use cases, no database) take mutating requests:
    in-memory rate-limit buckets and tombstones instead of the service database's."""
    app.state.rate_limiter.store = InMemoryBuckets()
    app.state.tombstones = InMemoryTombstones()


async def drain_outbox(db: Any) -> None:
    """What the outbox relay does once Kafka acknowledged the rows: delete them (an app in a
    test process does not relay, see the root conftest)."""
    await db["outbox_events"].delete_many({})
    await db["outbox"].delete_many({})


SettingsT = TypeVar("SettingsT", bound=ServiceSettings)


def settings_for_tests(kind: type[SettingsT], infra: Any, database: str, **extra: Any) -> SettingsT:
    """A service's settings against the test server, in a database of the test's own, with
    erasures starting at once (no grace period)."""
    return kind(
        env="test",
        mongodb_url=infra.mongodb_url,
        mongodb_database=database,
        erasure_grace_seconds=0,
        **extra,
    )


class QueryPlans(monitoring.CommandListener):
    """The reads a client sends (finds, and what its updates, deletes and findAndModifys
    match), to explain afterwards: which of them the server
    answered by scanning a whole collection (every tenant's rows) instead of an index.

    Register it on a client of its own (`event_listeners=[plans]`), run the calls, then
    `await plans.scans(client)`.
    """

    def __init__(self) -> None:
        self.finds: list[dict[str, Any]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        command, name = event.command, event.command_name
        # What an update, delete or findAndModify matches is planned as a find of its filter.
        if name == "find":
            shapes = [{k: v for k, v in command.items() if k in {"filter", "sort", "limit"}}]
        elif name == "findAndModify":
            shapes = [{"filter": command.get("query", {}), "sort": command.get("sort")}]
        elif name in {"update", "delete"}:
            shapes = [{"filter": op.get("q", {})} for op in command.get(f"{name}s", [])]
        else:
            return
        for shape in shapes:
            find = {"find": command[name], **{k: v for k, v in shape.items() if v is not None}}
            self.finds.append({"db": event.database_name, "command": find})

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass

    async def scans(self, client: Any) -> list[dict[str, Any]]:
        """The recorded reads the server plans as a collection scan, with the number of
        documents each examined."""
        out: list[dict[str, Any]] = []
        for find in self.finds:
            key = find["command"].get("filter", {}).get("_id")
            if key is not None and not isinstance(key, dict):
                # One document by its id: the server used here explains `{_id, tenant_id}` as
                # a scan, but runs it by id (1 ms among 30,000 documents; a scan takes 400).
                continue
            explained = await client[find["db"]].command(
                {"explain": find["command"], "verbosity": "executionStats"}
            )
            stats = explained.get("executionStats", {})
            chosen = [explained.get("queryPlanner", {}).get("winningPlan"), stats]
            if "COLLSCAN" in json.dumps(chosen, default=str):
                out.append({**find, "examined": stats.get("totalDocsExamined")})
        return out


@contextlib.asynccontextmanager
async def watched_client(url: str) -> AsyncIterator[tuple[Any, QueryPlans]]:
    """A client of its own on `url` whose reads `QueryPlans` records, and the plans."""
    plans = QueryPlans()
    client: Any = AsyncMongoClient(url, tz_aware=True, event_listeners=[plans])
    try:
        yield client, plans
    finally:
        await client.close()
