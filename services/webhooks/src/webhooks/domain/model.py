"""Endpoints, deliveries and their rules: what matches, when to retry, when to give up. Pure."""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Final, Literal

from mandaact_contracts import topics
from mandaact_contracts.envelope import Envelope, format_time

ANY_EVENT: Final = "*"
SECRET_PREFIX: Final = "whsec_"
SECRET_BYTES: Final = 32
MAX_ENDPOINTS_PER_TENANT: Final = 50
MAX_URL_LENGTH: Final = 2048
MAX_DESCRIPTION_LENGTH: Final = 500

RETRY_SCHEDULE: Final[tuple[timedelta, ...]] = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=10),
)
"""The waits after the 1st, 2nd, … failed try; after the last one the delivery is `failed`."""
MAX_TRIES: Final = len(RETRY_SCHEDULE) + 1
KEPT_ATTEMPTS: Final = 20
"""A delivery keeps its newest attempts only (8 tries, plus manual retries), so it stays small."""
RESPONSE_KEPT_BYTES: Final = 1024
DISABLE_AFTER: Final = timedelta(days=5)
"""An endpoint whose deliveries have all failed for this long is disabled."""
KEEP_FINISHED: Final = timedelta(days=30)
"""A succeeded or failed delivery is kept this long for the log, then expires."""
TEST_EVENT_TYPE: Final = "webhook.test"
TEST_CE_TYPE: Final = "mandaact.webhook.test.v1"

Status = Literal["pending", "succeeded", "failed"]

DELIVERABLE_TOPICS: Final[tuple[str, ...]] = tuple(
    t for t in topics.ALL_TOPICS if t not in topics.LIFECYCLE_TOPICS
)
"""What endpoints receive: every topic but the data-lifecycle ones (SPEC §9). `user.deleted`
and `tenant.deleted` start this service's own erasure (the consumer takes them before any
handler), and a `user.erased` would be stored as a delivery naming the user whose data was
just erased."""


def new_secret() -> str:
    """A fresh signing secret, `whsec_` and the base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A tenant's subscribed URL and what it receives."""

    tenant_id: str
    id: str
    url: str
    event_types: tuple[str, ...]
    secret: str
    description: str | None
    enabled: bool
    created_at: datetime
    updated_at: datetime
    failing_since: datetime | None = None
    """When the first failed try after the last success happened (None: not failing)."""
    disabled_reason: str | None = None

    def wants(self, event_type: str) -> bool:
        """Whether this endpoint subscribes to the event type (a topic name, or a test ping)."""
        return event_type == TEST_EVENT_TYPE or any(
            t in (event_type, ANY_EVENT) for t in self.event_types
        )

    def changed(
        self,
        now: datetime,
        *,
        url: str | None = None,
        event_types: Sequence[str] | None = None,
        enabled: bool | None = None,
        description: str | None = None,
    ) -> Endpoint:
        """The endpoint after an admin's change; enabling it again forgets its failures."""
        result = replace(
            self,
            url=url if url is not None else self.url,
            event_types=tuple(event_types) if event_types is not None else self.event_types,
            description=description if description is not None else self.description,
            updated_at=now,
        )
        if enabled is not None and enabled != self.enabled:
            result = replace(
                result,
                enabled=enabled,
                failing_since=None,
                disabled_reason=None if enabled else "disabled by an admin",
            )
        return result

    def after_success(self, now: datetime) -> Endpoint:
        """An answered delivery ends the failing streak."""
        return replace(self, failing_since=None) if self.failing_since is not None else self

    def after_failure(self, now: datetime) -> Endpoint:
        """A failed try starts (or continues) the streak; 5 days of it disable the endpoint."""
        since = self.failing_since or now
        if self.enabled and now - since >= DISABLE_AFTER:
            return replace(
                self,
                failing_since=since,
                enabled=False,
                disabled_reason=f"every delivery failed since {format_time(since)}",
                updated_at=now,
            )
        return self if self.failing_since == since else replace(self, failing_since=since)


def event_types_fault(event_types: Sequence[str], known: Sequence[str]) -> str | None:
    """Why a subscription list is refused, or None: `["*"]` or known topic names, no repeats."""
    if not event_types:
        return 'must name at least one event type, or be ["*"]'
    if ANY_EVENT in event_types and len(event_types) > 1:
        return '"*" stands alone'
    unknown = [t for t in event_types if t != ANY_EVENT and t not in known]
    if unknown:
        return f"unknown event types {unknown}; known: {list(known)}"
    if len(set(event_types)) != len(event_types):
        return "names an event type twice"
    return None


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try of a delivery: when, what came back, how long it took."""

    at: datetime
    status_code: int | None
    latency_ms: int
    response: str
    """The first 1 KiB of the answer's body (or the error when there was no answer)."""
    error: str | None = None

    @property
    def succeeded(self) -> bool:
        """Any 2xx answer is success."""
        return self.status_code is not None and 200 <= self.status_code < 300


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event on its way to one endpoint, with its newest attempts."""

    tenant_id: str
    id: str
    endpoint_id: str
    event_id: str
    event_type: str
    body: str
    """The CloudEvent in JSON structured mode, exactly the bytes signed and sent."""
    status: Status
    created_at: datetime
    next_attempt_at: datetime
    tries: int = 0
    """Tries made, over the delivery's whole life (manual retries included)."""
    failed_in_row: int = 0
    """Failed tries since it was (re)opened: the position in the retry schedule."""
    attempts: tuple[Attempt, ...] = ()
    claim: str | None = None
    """The token of the worker holding it (its lease ends at `next_attempt_at`)."""
    finished_at: datetime | None = None
    user_id: str | None = None
    """The user the event is about (its payload's `user_id`; None for a test ping): how a
    user's deliveries are found for their export and erasure (SPEC §9)."""

    def claimed(self, token: str, lease_until: datetime) -> Delivery:
        """Held by one worker until `lease_until` (then due again if that worker died)."""
        return replace(self, claim=token, next_attempt_at=lease_until)

    def after(self, attempt: Attempt, retry_scale: float) -> Delivery:
        """The delivery after a try: succeeded, due again per the schedule, or failed."""
        attempts = (*self.attempts, attempt)[-KEPT_ATTEMPTS:]
        base = replace(self, attempts=attempts, tries=self.tries + 1, claim=None)
        if attempt.succeeded:
            return replace(base, status="succeeded", failed_in_row=0, finished_at=attempt.at)
        failed = self.failed_in_row + 1
        if failed >= MAX_TRIES:
            return replace(base, status="failed", failed_in_row=failed, finished_at=attempt.at)
        wait = RETRY_SCHEDULE[failed - 1] * retry_scale
        return replace(base, failed_in_row=failed, next_attempt_at=attempt.at + wait)

    def abandoned(self, now: datetime, reason: str) -> Delivery:
        """Failed without a try: its endpoint was disabled."""
        attempt = Attempt(at=now, status_code=None, latency_ms=0, response="", error=reason)
        attempts = (*self.attempts, attempt)[-KEPT_ATTEMPTS:]
        return replace(self, status="failed", attempts=attempts, claim=None, finished_at=now)

    def reopened(self, now: datetime) -> Delivery:
        """Due now again by an admin's hand: a failed one gets one more try, a pending one
        is tried now and keeps its place in the schedule."""
        failed_in_row = MAX_TRIES - 1 if self.status == "failed" else self.failed_in_row
        return replace(
            self,
            status="pending",
            next_attempt_at=now,
            failed_in_row=failed_in_row,
            claim=None,
            finished_at=None,
        )


def cloudevent_body(envelope: Envelope, event_type: str) -> str:
    """The event as a CloudEvent in JSON structured mode (the delivery's body)."""
    document: dict[str, Any] = {
        "specversion": "1.0",
        "id": envelope.id,
        "source": envelope.source,
        "type": envelope.type,
        "time": format_time(envelope.time),
        "subject": envelope.subject,
        "tenantid": envelope.tenant_id,
        "datacontenttype": "application/json",
        "data": envelope.data,
    }
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False)


def delivery_id(endpoint_id: str, event_id: str) -> str:
    """One delivery per (endpoint, event): a repeated event finds the same delivery."""
    return f"{endpoint_id}.{event_id}"


def subject_of(envelope: Envelope) -> str | None:
    """The user an event is about: its payload's `user_id` (None for a test ping)."""
    user = envelope.data.get("user_id")
    return user if isinstance(user, str) and user else None


def new_delivery(
    endpoint: Endpoint, envelope: Envelope, event_type: str, now: datetime
) -> Delivery:
    """The first, due-now delivery of an event to an endpoint."""
    return Delivery(
        tenant_id=endpoint.tenant_id,
        id=delivery_id(endpoint.id, envelope.id),
        endpoint_id=endpoint.id,
        event_id=envelope.id,
        event_type=event_type,
        body=cloudevent_body(envelope, event_type),
        status="pending",
        created_at=now,
        next_attempt_at=now,
        user_id=subject_of(envelope),
    )


def response_excerpt(content: bytes) -> str:
    """The first 1 KiB of an answer, as text."""
    return content[:RESPONSE_KEPT_BYTES].decode("utf-8", errors="replace")


@dataclass(frozen=True, slots=True)
class PageCursor:
    """Where a page of a list starts after: the sort time and the id of the last item."""

    at: datetime
    id: str
