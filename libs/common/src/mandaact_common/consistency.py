"""Read-your-writes across services (SPEC §12): per-user event sequence numbers and tokens.

- **Producer.** Every transaction that emits events numbers them, per user and topic, from a
  counter document of that user (`user_sequences`, one `$inc` per user in the transaction: two
  writers of one user conflict, so numbers follow commit order). The number travels in the
  payload (`source_seq`, additive) and, once the transaction has committed, in the
  `MandaAct-Consistency` token of the request's response: the writing service, the caller and,
  per topic, the number of the caller's last event of this write.
- **Consumer.** The idempotent consumer records, in the transaction of the effect, the highest
  number applied per (user, source, topic) (`applied_sequences`, one `$max` per user and source
  in a batch). A user's events of one topic share a partition, so that number means "every
  earlier event of that topic is applied".
- **Reader.** `wait_for_tokens` (the `consistent` dependency of every route of a service with
  consumers) waits, bounded, until the tokens that concern the caller and the service's consumed
  topics are applied; past the bound it answers 503 with `Retry-After` naming the service behind.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextvars
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from pymongo import ReturnDocument, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from mandaact_common.keys import owner_key
from mandaact_common.mongo import Doc, find_in
from mandaact_common.problems import ProblemError

HEADER: Final = "MandaAct-Consistency"
SEQUENCES: Final = "user_sequences"
"""Producer side: `_id` owner key, `seq.<topic>` the user's last event number per topic."""
APPLIED: Final = "applied_sequences"
"""Consumer side: `_id` `<owner key>|<source>`, `seq.<topic>` the highest number applied."""
TOKEN_PATTERN: Final = r"^[A-Za-z0-9_=-]{1,2048}( *, *[A-Za-z0-9_=-]{1,2048}){0,15}$"
"""What the header may hold: up to 16 comma-separated URL-safe tokens."""


def field_of(topic: str) -> str:
    """A topic as a document field name (no dots)."""
    return topic.replace(".", "_")


# --- tokens -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Token:
    """What one write says to read after: whose, from which service, up to which numbers."""

    source: str
    tenant_id: str
    user_id: str
    seqs: Mapping[str, int]

    def encode(self) -> str:
        """Opaque and URL-safe: base64url of a small JSON document."""
        body = {"v": 1, "s": self.source, "t": self.tenant_id, "u": self.user_id, "q": self.seqs}
        raw = json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Token | None:
        """The token, or None for one this build cannot read (it is then ignored)."""
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            body = json.loads(raw)
            seqs = body["q"]
            if body.get("v") != 1 or not isinstance(seqs, dict):
                return None
            numbers = {str(k): int(v) for k, v in seqs.items() if isinstance(v, int)}
            return cls(str(body["s"]), str(body["t"]), str(body["u"]), numbers)
        except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError):
            return None


def parse_header(values: Iterable[str]) -> list[Token]:
    """Every readable token of the header (values comma-separated, repeated headers joined)."""
    tokens: list[Token] = []
    for value in values:
        for part in value.split(","):
            token = Token.decode(part.strip()) if part.strip() else None
            if token is not None:
                tokens.append(token)
    return tokens


# --- the request's tokens -----------------------------------------------------------------------


@dataclass
class RequestTokens:
    """What one request's committed writes numbered, for its caller's response token."""

    source: str
    caller: tuple[str, str] | None = None
    seqs: dict[tuple[str, str], dict[str, int]] = field(default_factory=dict)

    def add(self, owner: tuple[str, str], seqs: Mapping[str, int]) -> None:
        """Numbers a committed transaction gave this owner's events (highest kept)."""
        held = self.seqs.setdefault(owner, {})
        for topic, seq in seqs.items():
            held[topic] = max(held.get(topic, 0), seq)

    def token(self) -> Token | None:
        """The caller's token (None before the caller is known)."""
        if self.caller is None:
            return None
        return Token(self.source, *self.caller, dict(self.seqs.get(self.caller, {})))


CURRENT: contextvars.ContextVar[RequestTokens | None] = contextvars.ContextVar(
    "mandaact_request_tokens", default=None
)
"""The request being served (set by the HTTP middleware; None outside requests)."""


# --- producer side ------------------------------------------------------------------------------


async def number_events(
    db: AsyncDatabase[Doc], session: AsyncClientSession, counts: Mapping[tuple[str, str], Doc]
) -> dict[tuple[str, str], dict[str, int]]:
    """In the transaction: add each owner's events per topic to their counter (one bulk write
    and one read, whatever the number of users; one `findAndModify` for a single user, the
    usual check-in); the numbers after (the last of each run)."""
    if not counts:
        return {}
    if len(counts) == 1:
        ((owner, per_topic),) = counts.items()
        doc = await db[SEQUENCES].find_one_and_update(
            {"_id": owner_key(*owner)},
            _counting(owner, per_topic),
            projection={"seq": 1},
            upsert=True,
            return_document=ReturnDocument.AFTER,
            session=session,
        )
        if doc is None:  # a server that answers nothing to an upsert: read what it wrote
            doc = await db[SEQUENCES].find_one(
                {"_id": owner_key(*owner)}, {"seq": 1}, session=session
            )
        return {owner: _numbers(doc or {}, per_topic)}
    keys = {owner_key(t, u): (t, u) for t, u in counts}
    await db[SEQUENCES].bulk_write(
        [
            UpdateOne({"_id": key}, _counting(owner, counts[owner]), upsert=True)
            for key, owner in keys.items()
        ],
        ordered=False,
        session=session,
    )
    docs = await find_in(db[SEQUENCES], "_id", list(keys), {"seq": 1}, session=session)
    after: dict[tuple[str, str], dict[str, int]] = {}
    for doc in docs:
        owner = keys[doc["_id"]]
        after[owner] = _numbers(doc, counts[owner])
    return after


def _counting(owner: tuple[str, str], per_topic: Mapping[str, int]) -> Doc:
    """The update that adds an owner's events per topic to their counter."""
    return {
        "$inc": {f"seq.{field_of(t)}": n for t, n in per_topic.items()},
        "$set": {"tenant_id": owner[0]},
    }


def _numbers(doc: Doc, topics: Iterable[str]) -> dict[str, int]:
    """The counter's number of each topic, as a stored `user_sequences` document holds it."""
    held = doc.get("seq", {})
    return {t: int(held.get(field_of(t), 0)) for t in topics}


# --- consumer side ------------------------------------------------------------------------------


def applied_key(tenant_id: str, user_id: str, source: str) -> str:
    """The `applied_sequences` document of a user's events from one source."""
    return f"{owner_key(tenant_id, user_id)}|{source}"


async def record_applied(
    db: AsyncDatabase[Doc], session: AsyncClientSession, applied: Iterable[tuple[Any, ...]]
) -> None:
    """In the consumer's transaction: the highest number applied per (user, source, topic);
    `applied` holds (tenant, user, source, topic, seq)."""
    highest: dict[str, dict[str, int]] = {}
    tenants: dict[str, str] = {}
    for tenant, user, source, topic, seq in applied:
        key = applied_key(tenant, user, source)
        tenants[key] = tenant
        fields = highest.setdefault(key, {})
        fields[f"seq.{field_of(topic)}"] = max(fields.get(f"seq.{field_of(topic)}", 0), seq)
    if not highest:
        return
    await db[APPLIED].bulk_write(
        [
            UpdateOne({"_id": k}, {"$max": f, "$set": {"tenant_id": tenants[k]}}, upsert=True)
            for k, f in highest.items()
        ],
        ordered=False,
        session=session,
    )


# --- reader side --------------------------------------------------------------------------------


class NotYetConsistent(ProblemError):
    """A token's events were not applied within the wait (503, `Retry-After`)."""

    status = 503
    slug = "not-yet-consistent"
    title = "Not yet consistent"


@dataclass(frozen=True, slots=True)
class Wanted:
    """What one reader must have applied before it answers: per applied document, the least
    number per topic field."""

    fields: Mapping[str, Mapping[str, int]]
    sources: Mapping[str, str]
    """The applied document's source service (for the problem's wording)."""


def wanted_by(
    tokens: Iterable[Token], caller: tuple[str, str], consumes: Mapping[str, frozenset[str]]
) -> Wanted:
    """The caller's tokens from services this reader consumes, reduced to what it consumes.

    `consumes` maps a source service to the topics of it this service reads. Tokens of other
    users, of services it does not read (its own included: its writes are in its store at once)
    and of topics it does not read are ignored.
    """
    fields: dict[str, dict[str, int]] = {}
    sources: dict[str, str] = {}
    for token in tokens:
        if (token.tenant_id, token.user_id) != caller or token.source not in consumes:
            continue
        read = consumes[token.source]
        for topic, seq in token.seqs.items():
            if topic in read and seq > 0:
                key = applied_key(token.tenant_id, token.user_id, token.source)
                held = fields.setdefault(key, {})
                held[field_of(topic)] = max(held.get(field_of(topic), 0), seq)
                sources[key] = token.source
    return Wanted(fields, sources)


@dataclass
class AppliedCache:
    """What this process has seen applied (numbers only grow): a token it already saw satisfied
    costs no database call."""

    seen: dict[str, dict[str, int]] = field(default_factory=dict)

    def missing(self, wanted: Wanted) -> dict[str, dict[str, int]]:
        """The parts of `wanted` not known to be applied."""
        out: dict[str, dict[str, int]] = {}
        for key, need in wanted.fields.items():
            seen = self.seen.get(key, {})
            short = {f: n for f, n in need.items() if seen.get(f, 0) < n}
            if short:
                out[key] = short
        return out

    def learn(self, docs: Iterable[Doc]) -> None:
        """Keep what the database said is applied."""
        for doc in docs:
            held = self.seen.setdefault(str(doc["_id"]), {})
            for f, n in (doc.get("seq") or {}).items():
                held[f] = max(held.get(f, 0), int(n))
        if len(self.seen) > 100_000:  # bounded: forget and read again
            self.seen.clear()


async def wait_for(
    db: AsyncDatabase[Doc],
    wanted: Wanted,
    *,
    service: str,
    wait_ms: int,
    cache: AppliedCache,
) -> None:
    """Return once `wanted` is applied; `NotYetConsistent` after `wait_ms`."""
    missing = cache.missing(wanted)
    if not missing:
        return
    deadline = time.monotonic() + wait_ms / 1000
    pause = 0.005
    while True:
        if len(missing) == 1:  # the usual case: one round trip by `_id`, no cursor
            (only,) = missing
            # No projection: on the development server it costs more than the small document.
            found = await db[APPLIED].find_one({"_id": only})
            docs = [found] if found is not None else []
        else:
            docs = await find_in(db[APPLIED], "_id", list(missing), {"seq": 1})
        cache.learn(docs)
        missing = cache.missing(Wanted(missing, wanted.sources))
        if not missing:
            return
        left = deadline - time.monotonic()
        if left <= 0:
            behind = sorted({wanted.sources[k] for k in missing})
            raise NotYetConsistent(
                f"{service} has not yet applied {' and '.join(behind)}'s events up to the"
                f" given {HEADER} token (waited {wait_ms} ms); retry shortly",
                headers={"Retry-After": "1"},
            )
        await asyncio.sleep(min(pause, left))
        pause = min(pause * 2, 0.05)
