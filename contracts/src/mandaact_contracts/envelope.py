"""CloudEvents 1.0 envelope and its Kafka binary-mode mapping (headers + JSON value).

Binary mode: the CloudEvents attributes travel as ``ce_*`` Kafka headers, the value is the
JSON payload. The partition key is ``<tenant_id>:<user_id>``.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator

from mandaact_contracts.events import EVENT_TYPES, EventPayload, spec_for_ce_type

SPECVERSION: Final = "1.0"
CONTENT_TYPE: Final = "application/json"

H_SPECVERSION: Final = "ce_specversion"
H_ID: Final = "ce_id"
H_SOURCE: Final = "ce_source"
H_TYPE: Final = "ce_type"
H_TIME: Final = "ce_time"
H_SUBJECT: Final = "ce_subject"
H_TENANTID: Final = "ce_tenantid"
H_CONTENT_TYPE: Final = "content-type"
H_TRACEPARENT: Final = "traceparent"

REQUIRED_HEADERS: Final = (H_SPECVERSION, H_ID, H_SOURCE, H_TYPE, H_TIME, H_TENANTID)

_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")

P = TypeVar("P", bound=EventPayload)

HeaderValue = bytes | bytearray | str | None
Headers = Sequence[tuple[str, HeaderValue]] | Mapping[str, HeaderValue]


class InvalidEvent(ValueError):
    """A Kafka record that is not a valid MandaAct CloudEvent (bad headers, value or payload)."""


class Envelope(BaseModel):
    """One CloudEvent: its attributes and the JSON payload (`data`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(description="UUID, made once at the source and kept across retries.")
    source: str = Field(min_length=1, description="The producing service, e.g. goals.")
    type: str = Field(min_length=1, description="e.g. mandaact.action.completed.v1")
    time: AwareDatetime
    subject: str | None = None
    tenant_id: str = Field(min_length=1)
    traceparent: str | None = None
    data: dict[str, Any]

    @field_validator("id")
    @classmethod
    def _uuid(cls, value: str) -> str:
        try:
            return str(uuid.UUID(value))
        except ValueError:
            raise ValueError(f"ce_id must be a UUID, got {value!r}") from None

    @field_validator("traceparent")
    @classmethod
    def _traceparent(cls, value: str | None) -> str | None:
        if value is not None and not is_valid_traceparent(value):
            raise ValueError(f"malformed W3C traceparent: {value!r}")
        return value


def is_valid_traceparent(value: str) -> bool:
    """Tell whether a string is a well-formed W3C traceparent (version 00 layout)."""
    if not _TRACEPARENT.match(value) or value.startswith("ff"):
        return False
    _version, trace_id, parent_id, _flags = value.split("-")
    return trace_id != "0" * 32 and parent_id != "0" * 16


def new_envelope(
    topic: str,
    payload: BaseModel,
    source: str,
    subject: str | None = None,
    traceparent: str | None = None,
    event_id: str | None = None,
    time: datetime | None = None,
) -> Envelope:
    """Wrap a payload for `topic` in a new CloudEvent (fresh UUID id unless `event_id` given)."""
    try:
        spec = EVENT_TYPES[topic]
    except KeyError:
        raise ValueError(f"unknown topic: {topic!r}") from None
    if not isinstance(payload, spec.model):
        raise TypeError(
            f"topic {topic!r} carries {spec.model.__name__}, got {type(payload).__name__}"
        )
    return Envelope(
        id=event_id if event_id is not None else str(uuid.uuid4()),
        source=source,
        type=spec.ce_type,
        time=(time or datetime.now(UTC)).astimezone(UTC),
        subject=subject,
        tenant_id=payload.tenant_id,
        traceparent=traceparent,
        data=payload.model_dump(mode="json"),
    )


def partition_key(payload: BaseModel | Envelope) -> bytes:
    """Return the Kafka key ``<tenant_id>:<user_id>`` of a payload (or of an envelope's data)."""
    tenant: object
    user: object
    if isinstance(payload, Envelope):
        tenant, user = payload.tenant_id, payload.data.get("user_id")
    else:
        tenant, user = getattr(payload, "tenant_id", None), getattr(payload, "user_id", None)
    if not isinstance(tenant, str) or not tenant or not isinstance(user, str) or not user:
        raise ValueError("a user-scoped event needs non-empty tenant_id and user_id")
    return f"{tenant}:{user}".encode()


def format_time(value: datetime) -> str:
    """Format an instant as RFC 3339 in UTC with a ``Z`` suffix."""
    text = value.astimezone(UTC).isoformat(timespec="microseconds")
    return text.removesuffix("+00:00") + "Z"


def to_kafka_headers(env: Envelope) -> list[tuple[str, bytes]]:
    """Return the binary-mode Kafka headers of an envelope."""
    headers: list[tuple[str, str]] = [
        (H_SPECVERSION, SPECVERSION),
        (H_ID, env.id),
        (H_SOURCE, env.source),
        (H_TYPE, env.type),
        (H_TIME, format_time(env.time)),
    ]
    if env.subject is not None:
        headers.append((H_SUBJECT, env.subject))
    headers.append((H_TENANTID, env.tenant_id))
    headers.append((H_CONTENT_TYPE, CONTENT_TYPE))
    if env.traceparent is not None:
        headers.append((H_TRACEPARENT, env.traceparent))
    return [(name, value.encode()) for name, value in headers]


def encode_value(env: Envelope) -> bytes:
    """Return the Kafka value: the payload as compact UTF-8 JSON."""
    return json.dumps(env.data, separators=(",", ":"), ensure_ascii=False).encode()


def _decode_headers(headers: Headers) -> dict[str, str]:
    items = headers.items() if isinstance(headers, Mapping) else headers
    decoded: dict[str, str] = {}
    for name, raw in items:
        if raw is None:
            continue
        if isinstance(raw, str):
            decoded[name.lower()] = raw
            continue
        try:
            decoded[name.lower()] = bytes(raw).decode()
        except UnicodeDecodeError:
            raise InvalidEvent(f"header {name!r} is not UTF-8") from None
    return decoded


def _parse_time(text: str) -> datetime:
    if _RFC3339.match(text):
        try:
            return datetime.fromisoformat(text.upper().replace(" ", "T"))
        except ValueError:
            pass
    raise InvalidEvent(f"header {H_TIME!r} is not an RFC 3339 timestamp: {text!r}")


def from_kafka(headers: Headers, value: bytes | bytearray | None) -> Envelope:
    """Read a binary-mode Kafka record into an Envelope; InvalidEvent if it is not one."""
    h = _decode_headers(headers)
    missing = [name for name in REQUIRED_HEADERS if not h.get(name)]
    if missing:
        raise InvalidEvent(f"missing CloudEvents header(s): {', '.join(missing)}")
    if h[H_SPECVERSION] != SPECVERSION:
        raise InvalidEvent(f"unsupported {H_SPECVERSION} {h[H_SPECVERSION]!r}, want 1.0")
    content_type = h.get(H_CONTENT_TYPE)
    if content_type is not None and content_type.split(";")[0].strip().lower() != CONTENT_TYPE:
        raise InvalidEvent(f"unsupported content-type {content_type!r}, want {CONTENT_TYPE}")
    if not value:
        raise InvalidEvent("record has no value (empty or tombstone)")
    try:
        data = json.loads(bytes(value))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidEvent(f"value is not UTF-8 JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidEvent(f"value must be a JSON object, got {type(data).__name__}")
    time = _parse_time(h[H_TIME])
    traceparent = h.get(H_TRACEPARENT)
    if traceparent is not None and not is_valid_traceparent(traceparent):
        traceparent = None  # W3C: ignore a malformed traceparent, never reject the event
    try:
        return Envelope(
            id=h[H_ID],
            source=h[H_SOURCE],
            type=h[H_TYPE],
            time=time,
            subject=h.get(H_SUBJECT),
            tenant_id=h[H_TENANTID],
            traceparent=traceparent,
            data=data,
        )
    except ValidationError as exc:
        raise InvalidEvent(f"invalid CloudEvents header: {_describe(exc)}") from None


def _describe(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'value'}: {err['msg']}" for err in exc.errors()
    )


def parse_payload(env: Envelope) -> EventPayload:
    """Validate an envelope's data with the model registered for its type; InvalidEvent if not."""
    try:
        model = spec_for_ce_type(env.type).model
    except KeyError:
        raise InvalidEvent(f"unknown event type {env.type!r}") from None
    try:
        payload = model.model_validate(env.data)
    except ValidationError as exc:
        raise InvalidEvent(f"invalid {env.type} payload: {_describe(exc)}") from None
    if payload.tenant_id != env.tenant_id:
        raise InvalidEvent(
            f"payload tenant_id {payload.tenant_id!r} differs from ce_tenantid {env.tenant_id!r}"
        )
    return payload


def parse_payload_as(env: Envelope, model: type[P]) -> P:
    """Like parse_payload, but also require the event to carry `model` (typed result)."""
    payload = parse_payload(env)
    if not isinstance(payload, model):
        raise InvalidEvent(f"expected a {model.__name__} event, got {env.type!r}")
    return payload
