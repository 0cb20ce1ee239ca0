"""OpenTelemetry traces: HTTP requests, outbox writes, relay publishes and consumed events.

The context travels in the W3C `traceparent` every event envelope carries (CloudEvents
distributed-tracing extension), so a check-in's HTTP span, the outbox write, the relay's publish
and every consumer's span of that event share one trace id. Spans stay in this process unless
`OTEL_EXPORTER_OTLP_ENDPOINT` is set (then they are exported over OTLP/HTTP in batches, off the
request path); without an exporter a span costs a few microseconds and no I/O.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

log = logging.getLogger(__name__)

TRACER_NAME = "mandaact"
_propagator = TraceContextTextMapPropagator()
_lock = threading.Lock()
_provider: TracerProvider | None = None


def configure_tracing(service: str, *processors: SpanProcessor) -> TracerProvider:
    """Install this process's tracer provider once (later calls only add `processors`).

    With `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) set, spans are
    exported over OTLP/HTTP; tests pass an in-memory exporter's processor instead.
    """
    global _provider
    with _lock:
        if _provider is None:
            name = os.environ.get("OTEL_SERVICE_NAME") or service
            _provider = TracerProvider(resource=Resource.create({"service.name": name}))
            endpoint = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get(
                "OTEL_EXPORTER_OTLP_ENDPOINT"
            )
            if endpoint:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
                    OTLPSpanExporter,
                )

                _provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
                log.info("exporting traces over OTLP/HTTP to %s", endpoint)
            trace.set_tracer_provider(_provider)
        for processor in processors:
            _provider.add_span_processor(processor)
        return _provider


_tracer: trace.Tracer | None = None


def tracer() -> trace.Tracer:
    """The tracer every mandaact span is made with.

    Made once: the SDK's `get_tracer` builds and compares two scope objects and resets a warnings
    filter on every call (~12 µs idle, far more under load), and a relay or consumer span is made
    per message. The tracer sees span processors added later (it holds the provider's).
    """
    global _tracer
    if _tracer is None:
        if _provider is None:
            configure_tracing(os.environ.get("OTEL_SERVICE_NAME", "mandaact"))
        _tracer = trace.get_tracer(TRACER_NAME)
    return _tracer


def context_of(traceparent: str | None) -> otel_context.Context | None:
    """The remote parent a `traceparent` names (None when absent or malformed: a new trace)."""
    if not traceparent:
        return None
    ctx = _propagator.extract({"traceparent": traceparent})
    if not trace.get_current_span(ctx).get_span_context().is_valid:
        return None
    return ctx


def traceparent_of(span: Span) -> str | None:
    """The W3C `traceparent` of `span` (None for a span without a valid context)."""
    carrier: dict[str, str] = {}
    _propagator.inject(carrier, context=trace.set_span_in_context(span))
    return carrier.get("traceparent")


def current_trace_id() -> str | None:
    """The 32-hex trace id of the current span, if any (what the JSON logs carry)."""
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None


@contextmanager
def span(
    name: str,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    parent: str | None = None,
    attributes: Mapping[str, str | int | float | bool] | None = None,
) -> Iterator[Span]:
    """A span around a block, current inside it; child of `parent` (a traceparent) when given,
    else of the current span. An exception escaping the block marks the span as failed."""
    ctx = context_of(parent)
    with tracer().start_as_current_span(
        name, context=ctx, kind=kind, attributes=dict(attributes or {})
    ) as current:
        yield current


@dataclass(frozen=True, slots=True)
class Message:
    """What a span of one handled message is made of."""

    name: str
    traceparent: str | None
    attributes: Mapping[str, str | int | float | bool]


@contextmanager
def message_spans(kind: SpanKind, messages: Sequence[Message]) -> Iterator[list[Span]]:
    """One span per message, each a child of the message's own `traceparent`; the first is the
    current span inside the block (what the events emitted meanwhile carry on). They end with
    the block, failed when an exception escapes it."""
    made = [
        tracer().start_span(
            m.name, context=context_of(m.traceparent), kind=kind, attributes=dict(m.attributes)
        )
        for m in messages
    ]
    try:
        if made:
            with trace.use_span(made[0], end_on_exit=False):
                yield made
        else:
            yield made
    except BaseException as exc:
        for failed in made:
            failed.record_exception(exc)
            failed.set_status(Status(StatusCode.ERROR, type(exc).__name__))
        raise
    finally:
        for done in made:
            done.end()
