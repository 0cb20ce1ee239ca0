"""Prometheus metrics, the HTTP middleware (metrics and the request span) and the W3C trace
context shared by every service; logs in `logs`, spans in `tracing`, lag in `lag`."""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response

from mandaact_common import logs
from mandaact_common.tracing import configure_tracing, span, traceparent_of

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
OUTBOX_OLDEST_AGE = Gauge(
    "mandaact_outbox_oldest_age_seconds",
    "Age of the oldest outbox row the relay has yet to publish (0 when none waits)",
    ["service"],
)
RELAY_PUBLISH_SECONDS = Histogram(
    "mandaact_outbox_publish_seconds",
    "Time to publish one relay round (send to acks=all) of outbox rows",
    ["service"],
)
CONSUMER_LAG = Gauge(
    "mandaact_consumer_lag",
    "Records on a partition the consumer group has not committed yet (end - committed offset)",
    ["group", "topic", "partition"],
)
CONSUMER_LAG_REFRESHED = Gauge(
    "mandaact_consumer_lag_refreshed_timestamp_seconds",
    "When this process last read the group's lag from the broker (Unix time)",
    ["group"],
)
WORKER_LOOP_AGE = Gauge(
    "mandaact_worker_loop_age_seconds",
    "Seconds since the worker's event loop last stamped its heartbeat",
)


def configure_logging(service: str) -> None:
    """A process's logs and traces: JSON log lines (`logs`), its tracer provider (`tracing`,
    OTLP export when `OTEL_EXPORTER_OTLP_ENDPOINT` is set)."""
    logs.configure_logging(service)
    configure_tracing(service)


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
    """The traceparent of the current span (request, event), or of a new trace."""
    return traceparent_of(trace.get_current_span()) or new_traceparent()


def tag_tenant(tenant_id: str) -> None:
    """The verified tenant of the request: on its span and on every line it logs."""
    trace.get_current_span().set_attribute("tenant_id", tenant_id)
    logs.bind_log_context(tenant_id=tenant_id)


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
        start = time.perf_counter()
        with span(
            request.method,  # named after its route template once routed
            kind=SpanKind.SERVER,
            parent=request.headers.get("traceparent"),
            attributes={"http.request.method": request.method, "service.name": service},
        ) as current:
            response = await call_next(request)
            route = request.scope.get("route")
            path = getattr(route, "path", "unmatched")
            current.update_name(f"{request.method} {path}")
            current.set_attribute("http.route", path)
            current.set_attribute("http.response.status_code", response.status_code)
            if response.status_code >= 500:
                current.set_status(Status(StatusCode.ERROR))
            response.headers["traceparent"] = traceparent_of(current) or new_traceparent()
        HTTP_REQUESTS.labels(service, request.method, path, str(response.status_code)).inc()
        HTTP_LATENCY.labels(service, request.method, path).observe(time.perf_counter() - start)
        return response

    return middleware
