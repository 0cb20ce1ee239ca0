"""AsyncAPI 3.0 description of every MandaAct topic, built from the payload models."""

from __future__ import annotations

from typing import Any, Final

from pydantic.json_schema import models_json_schema

from mandaact_contracts import envelope as ce
from mandaact_contracts import topics
from mandaact_contracts.events import EVENT_TYPES

ASYNCAPI_VERSION: Final = "3.0.0"
KAFKA_BINDING_VERSION: Final = "0.5.0"
DOCUMENT_VERSION: Final = "1.0.0"

PRODUCERS: Final[dict[str, str]] = {
    topics.USER_CHANGED: "goals",
    topics.GOAL_CHANGED: "goals",
    topics.ACTION_COMPLETED: "checkins",
    topics.ACTION_UNCOMPLETED: "checkins",
    topics.XP_AWARDED: "gamification",
    topics.XP_REVOKED: "gamification",
    topics.LEVEL_REACHED: "gamification",
    topics.BADGE_UNLOCKED: "gamification",
    topics.STREAK_CHANGED: "gamification",
    topics.REPORT_GENERATED: "reports",
    topics.NOTIFICATION_REQUESTED: "notifications",
    topics.USER_DELETED: "goals",
    topics.USER_ERASED: "checkins, gamification, reports, webhooks, notifications and goals",
    topics.TENANT_DELETED: "goals",
}

CONSUMERS: Final[dict[str, tuple[str, ...]]] = {
    topics.USER_CHANGED: ("checkins", "gamification", "reports", "webhooks", "notifications"),
    topics.GOAL_CHANGED: ("checkins", "gamification", "reports", "webhooks", "notifications"),
    topics.ACTION_COMPLETED: ("gamification", "reports", "webhooks", "notifications"),
    topics.ACTION_UNCOMPLETED: ("gamification", "reports", "webhooks", "notifications"),
    topics.XP_AWARDED: ("reports", "webhooks"),
    topics.XP_REVOKED: ("reports", "webhooks"),
    topics.LEVEL_REACHED: ("reports", "webhooks", "notifications"),
    topics.BADGE_UNLOCKED: ("reports", "webhooks", "notifications"),
    topics.STREAK_CHANGED: ("reports", "webhooks", "notifications"),
    topics.REPORT_GENERATED: ("webhooks", "notifications"),
    topics.NOTIFICATION_REQUESTED: ("webhooks",),
    topics.USER_DELETED: ("checkins", "gamification", "reports", "webhooks", "notifications"),
    topics.USER_ERASED: ("goals",),
    topics.TENANT_DELETED: ("checkins", "gamification", "reports", "webhooks", "notifications"),
}

_SCHEMA_REF: Final = "#/components/schemas/{model}"


def cloudevent_headers_schema(ce_type: str | None = None) -> dict[str, Any]:
    """JSON Schema of the binary-mode Kafka headers (ce_type pinned when given)."""
    type_schema: dict[str, Any] = {"type": "string", "description": "CloudEvents type."}
    if ce_type is not None:
        type_schema["const"] = ce_type
    return {
        "type": "object",
        "required": [*ce.REQUIRED_HEADERS, ce.H_CONTENT_TYPE],
        "properties": {
            ce.H_SPECVERSION: {"type": "string", "const": ce.SPECVERSION},
            ce.H_ID: {
                "type": "string",
                "format": "uuid",
                "description": "Event id, made once at the source and kept across retries; "
                "consumers deduplicate on it.",
            },
            ce.H_SOURCE: {"type": "string", "description": "The producing service."},
            ce.H_TYPE: type_schema,
            ce.H_TIME: {"type": "string", "format": "date-time", "description": "RFC 3339, UTC."},
            ce.H_SUBJECT: {"type": "string", "description": "Optional subject of the event."},
            ce.H_TENANTID: {"type": "string", "description": "Tenant of the event."},
            ce.H_CONTENT_TYPE: {"type": "string", "const": ce.CONTENT_TYPE},
            ce.H_TRACEPARENT: {
                "type": "string",
                "description": "W3C trace context (optional).",
                "pattern": "^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$",
            },
        },
    }


def asyncapi_document() -> dict[str, Any]:
    """Build the AsyncAPI 3.0 document: one channel per topic plus the dead-letter topics."""
    specs = list(EVENT_TYPES.values())
    _, top = models_json_schema(
        [(spec.model, "validation") for spec in specs], ref_template=_SCHEMA_REF
    )
    schemas: dict[str, Any] = dict(sorted(top.get("$defs", {}).items()))
    key_binding = {
        "kafka": {
            "key": {"type": "string", "description": "<tenant_id>:<user_id>"},
            "bindingVersion": KAFKA_BINDING_VERSION,
        }
    }
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for spec in specs:
        name = spec.model.__name__
        consumers = ", ".join(CONSUMERS[spec.topic]) or "none of the services"
        messages[name] = {
            "name": spec.ce_type,
            "title": name,
            "summary": (spec.model.__doc__ or "").strip(),
            "contentType": ce.CONTENT_TYPE,
            "headers": cloudevent_headers_schema(spec.ce_type),
            "payload": {"$ref": _SCHEMA_REF.format(model=name)},
            "correlationId": {"location": "$message.header#/ce_id"},
            "bindings": key_binding,
        }
        channels[spec.topic] = {
            "address": spec.topic,
            "title": spec.topic,
            "description": f"Produced by {PRODUCERS[spec.topic]}; consumed by {consumers}.",
            "messages": {name: {"$ref": f"#/components/messages/{name}"}},
            "bindings": {
                "kafka": {
                    "topic": spec.topic,
                    "partitions": topics.TOPIC_PARTITIONS[spec.topic],
                    "bindingVersion": KAFKA_BINDING_VERSION,
                }
            },
        }
        operations[f"send.{spec.topic}"] = {
            "action": "send",
            "title": f"{PRODUCERS[spec.topic]} publishes {spec.topic}",
            "channel": {"$ref": f"#/channels/{spec.topic}"},
            "messages": [{"$ref": f"#/channels/{spec.topic}/messages/{name}"}],
        }
    messages["DeadLetter"] = {
        "name": "dead-letter",
        "title": "DeadLetter",
        "summary": "A record a consumer group gave up on: the original key, value and headers, "
        "plus headers describing the error.",
        "headers": {"type": "object"},
        "payload": {},
    }
    channels["dead-letter"] = {
        "address": "{group}" + topics.DEAD_LETTER_SUFFIX,
        "title": "dead-letter topics",
        "description": "One per consumer group, e.g. gamification.dlt.",
        "parameters": {"group": {"description": "Consumer group name, e.g. gamification."}},
        "messages": {"DeadLetter": {"$ref": "#/components/messages/DeadLetter"}},
    }
    operations["send.dead-letter"] = {
        "action": "send",
        "title": "a consumer group dead-letters a record",
        "channel": {"$ref": "#/channels/dead-letter"},
        "messages": [{"$ref": "#/channels/dead-letter/messages/DeadLetter"}],
    }
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "MandaAct events",
            "version": DOCUMENT_VERSION,
            "description": "Events between the MandaAct services: CloudEvents 1.0 in Kafka "
            "binary mode (ce_* headers, JSON value), key <tenant_id>:<user_id>.",
        },
        "defaultContentType": ce.CONTENT_TYPE,
        "channels": channels,
        "operations": operations,
        "components": {"schemas": schemas, "messages": messages},
    }
