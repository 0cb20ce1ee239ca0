"""Logging, Prometheus metrics and W3C trace context shared by every service."""

from __future__ import annotations

import logging
import os
import secrets
import sys
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response

_traceparent: ContextVar[str | None] = ContextVar("traceparent", default=None)

HTTP_REQUESTS = Counter(
    "mandaact_http_requests_total", "HTTP requests", ["service", "method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "mandaact_http_request_seconds", "HTTP request latency", ["service", "method", "route"]
)
EVENTS_CONSUMED = Counter(
    "mandaact_events_consumed_total", "Events consumed", ["group", "topic", "outcome"]
)
BATCH_SECONDS = Histogram("mandaact_consumer_batch_seconds", "Consumer batch latency", ["group"])
DEAD_LETTERED = Counter("mandaact_dead_lettered_total", "Messages sent to a DLT", ["group"])
OUTBOX_PUBLISHED = Counter(
    "mandaact_outbox_published_total", "Events relayed from the outbox", ["service", "topic"]
)
OUTBOX_PENDING = Gauge("mandaact_outbox_pending", "Outbox rows waiting for the relay", ["service"])
CONSUMER_PAUSED = Gauge(
    "mandaact_consumer_paused",
    "1 while a consumer group waits for its database or broker to come back",
    ["group"],
)
CONSUMER_RETRIES = Counter(
    "mandaact_consumer_retries_total",
    "Failed tries of a batch that were waited out and tried again, or split",
    ["group", "reason"],
)
OUTBOX_PUBLISH_FAILURES = Counter(
    "mandaact_outbox_publish_failures_total",
    "Failed publishes of an outbox row that counted against the row (the broker answered)",
    ["service"],
)
OUTBOX_PARKED_ROWS = Gauge(
    "mandaact_outbox_parked",
    "Outbox rows parked in outbox_parked after repeated failed publishes",
    ["service"],
)
WORKER_LOOP_AGE = Gauge(
    "mandaact_worker_loop_age_seconds",
    "Seconds since the worker's event loop last stamped its heartbeat",
)


def configure_logging(service: str) -> None:
    """Plain structured-ish logs to stderr, one line each, with the service name."""
    level = os.environ.get("MANDAACT_LOG_LEVEL", "INFO").upper()
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format=f"%(asctime)s %(levelname)s {service} %(name)s: %(message)s",
        force=True,
    )
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    logging.getLogger("pymongo").setLevel(logging.WARNING)


def new_traceparent() -> str:
    """A fresh W3C traceparent (version 00, sampled)."""
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


def valid_traceparent(value: str | None) -> bool:
    """Whether a header value is a well-formed W3C traceparent."""
    if not value:
        return False
    parts = value.split("-")
    return (
        len(parts) == 4
        and [len(p) for p in parts] == [2, 32, 16, 2]
        and all(c in "0123456789abcdef" for c in value.replace("-", ""))
        and parts[1] != "0" * 32
    )


def current_traceparent() -> str:
    """The traceparent of the current request or message, or a new one."""
    return _traceparent.get() or new_traceparent()


def set_traceparent(value: str | None) -> None:
    """Adopt an incoming traceparent (a child span id is made) or start a new trace."""
    if value and valid_traceparent(value):
        _version, trace_id, _parent, flags = value.split("-")
        _traceparent.set(f"00-{trace_id}-{secrets.token_hex(8)}-{flags}")
    else:
        _traceparent.set(new_traceparent())


def metrics_response() -> Response:
    """The Prometheus exposition of this process's metrics."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def http_middleware(
    service: str,
) -> Callable[[Request, Callable[[Request], Awaitable[Response]]], Awaitable[Response]]:
    """Middleware that adopts the traceparent and records request metrics."""

    async def middleware(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        set_traceparent(request.headers.get("traceparent"))
        start = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        HTTP_REQUESTS.labels(service, request.method, path, str(response.status_code)).inc()
        HTTP_LATENCY.labels(service, request.method, path).observe(time.perf_counter() - start)
        response.headers["traceparent"] = current_traceparent()
        return response

    return middleware
