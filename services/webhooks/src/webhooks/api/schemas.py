"""Request and response bodies of the webhooks admin API (pydantic), mapped from the domain."""

from __future__ import annotations

from datetime import datetime
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field

from mandaact_common.paging import decode_cursor, encode_cursor
from webhooks.domain.model import (
    MAX_DESCRIPTION_LENGTH,
    MAX_URL_LENGTH,
    Attempt,
    Delivery,
    Endpoint,
    PageCursor,
)
from webhooks.service import Page

EventTypes = list[str]
TYPES_DESCRIPTION = (
    'Topic names (e.g. `"xp.awarded"`) or `["*"]` for every event; not the data-lifecycle'
    " topics (`user.deleted`, `user.erased`, `tenant.deleted`)."
)


def cursor_text(cursor: PageCursor | None) -> str | None:
    """The opaque `next_cursor` of a page position."""
    return encode_cursor(cursor.at.isoformat(), cursor.id) if cursor is not None else None


def cursor_of(token: str) -> PageCursor:
    """The page position of a `cursor` this API returned (422 otherwise)."""
    at, item_id = decode_cursor(token, (str, str))
    try:
        return PageCursor(datetime.fromisoformat(str(at)), str(item_id))
    except ValueError:
        decode_cursor("!", (str, str))  # raises the one "not a cursor" problem
        raise


class EndpointCreate(BaseModel):
    """A new endpoint."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=MAX_URL_LENGTH, description="An `https` URL.")
    event_types: EventTypes = Field(min_length=1, max_length=32, description=TYPES_DESCRIPTION)
    description: str | None = Field(None, max_length=MAX_DESCRIPTION_LENGTH)


class EndpointUpdate(BaseModel):
    """What to change of an endpoint; fields left out stay as they are."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(None, min_length=1, max_length=MAX_URL_LENGTH)
    event_types: EventTypes | None = Field(
        None, min_length=1, max_length=32, description=TYPES_DESCRIPTION
    )
    enabled: bool | None = Field(None, description="Enabling again forgets past failures.")
    description: str | None = Field(None, max_length=MAX_DESCRIPTION_LENGTH)


class EndpointPublic(BaseModel):
    """An endpoint as admins see it (never its secret)."""

    id: str
    url: str
    event_types: EventTypes
    description: str | None
    enabled: bool
    disabled_reason: str | None = Field(
        description="Why it is disabled (an admin, or 5 days of failures), or null."
    )
    failing_since: datetime | None = Field(
        description="The first failed try since the last success, or null."
    )
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_domain(cls, e: Endpoint) -> Self:
        """The public form of an endpoint."""
        return cls(
            id=e.id,
            url=e.url,
            event_types=list(e.event_types),
            description=e.description,
            enabled=e.enabled,
            disabled_reason=e.disabled_reason,
            failing_since=e.failing_since,
            created_at=e.created_at,
            updated_at=e.updated_at,
        )


class EndpointCreated(EndpointPublic):
    """A new endpoint with its signing secret, shown this once."""

    secret: str = Field(description="`whsec_<base64>`: verify `webhook-signature` with it.")

    @classmethod
    def of(cls, e: Endpoint) -> EndpointCreated:
        """The answer to a registration."""
        return cls(**EndpointPublic.from_domain(e).model_dump(), secret=e.secret)


class EndpointPage(BaseModel):
    """A page of endpoints, oldest first."""

    items: list[EndpointPublic]
    next: str | None = Field(description="`cursor` of the next page, or null on the last.")

    @classmethod
    def from_domain(cls, page: Page[Endpoint]) -> Self:
        """The public form of a page."""
        return cls(
            items=[EndpointPublic.from_domain(e) for e in page.items],
            next=cursor_text(page.next_cursor),
        )


class AttemptPublic(BaseModel):
    """One try of a delivery."""

    at: datetime
    status_code: int | None = Field(description="The HTTP status, or null without an answer.")
    latency_ms: int
    response: str = Field(description="The first 1 KiB of the answer's body.")
    error: str | None = Field(description="Why the try failed, or null on success.")

    @classmethod
    def from_domain(cls, a: Attempt) -> Self:
        """The public form of an attempt."""
        return cls(
            at=a.at,
            status_code=a.status_code,
            latency_ms=a.latency_ms,
            response=a.response,
            error=a.error,
        )


class DeliveryPublic(BaseModel):
    """One event on its way to the endpoint, with its newest attempts."""

    id: str
    endpoint_id: str
    event_id: str = Field(description="The CloudEvent id, sent as `webhook-id` on every try.")
    event_type: str = Field(description="The topic (or `webhook.test` for a test ping).")
    status: Literal["pending", "succeeded", "failed"]
    tries: int
    next_attempt_at: datetime | None = Field(description="When it is tried next (pending only).")
    created_at: datetime
    attempts: list[AttemptPublic] = Field(description="The newest attempts, oldest first.")

    @classmethod
    def from_domain(cls, d: Delivery) -> Self:
        """The public form of a delivery."""
        return cls(
            id=d.id,
            endpoint_id=d.endpoint_id,
            event_id=d.event_id,
            event_type=d.event_type,
            status=d.status,
            tries=d.tries,
            next_attempt_at=d.next_attempt_at if d.status == "pending" else None,
            created_at=d.created_at,
            attempts=[AttemptPublic.from_domain(a) for a in d.attempts],
        )


class DeliveryPage(BaseModel):
    """A page of deliveries, newest first."""

    items: list[DeliveryPublic]
    next: str | None = Field(description="`cursor` of the next page, or null on the last.")

    @classmethod
    def from_domain(cls, page: Page[Delivery]) -> Self:
        """The public form of a page."""
        return cls(
            items=[DeliveryPublic.from_domain(d) for d in page.items],
            next=cursor_text(page.next_cursor),
        )
