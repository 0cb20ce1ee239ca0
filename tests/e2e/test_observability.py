"""What operators see (SPEC §10): one trace across HTTP and Kafka, consumer lag in `/metrics`."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client.parser import text_string_to_metric_families

from mandaact_common.mongo import make_client
from mandaact_common.tracing import configure_tracing
from mandaact_common.worker import run_components
from mandaact_contracts import topics
from tests.e2e.helpers import auth, create_grid_and_wait_for_checklist, eventually, grid

pytestmark = pytest.mark.e2e

QUICK_LAG = {"MANDAACT_LAG_REFRESH_S": "0.5"}


def lag_of(text: str, group: str, topic: str | None = None) -> float | None:
    """The group's lag summed over partitions (of `topic`, or of all), None when not exported."""
    samples = [
        s
        for family in text_string_to_metric_families(text)
        if family.name == "mandaact_consumer_lag"
        for s in family.samples
        if s.labels["group"] == group and (topic is None or s.labels["topic"] == topic)
    ]
    return sum(s.value for s in samples) if samples else None


async def scrape(http: httpx.AsyncClient, url: str) -> str:
    try:
        return (await http.get(url, timeout=3)).text
    except httpx.HTTPError:
        return ""


async def check_in_all(
    http: httpx.AsyncClient, base: str, headers: dict[str, str], actions: list[str]
) -> list[httpx.Response]:
    answers = [await http.put(f"{base}/v1/checkins/{a}", headers=headers) for a in actions]
    assert [r.status_code for r in answers] == [201] * len(actions), [r.text for r in answers]
    return answers


async def test_lag_shows_while_the_gamification_worker_is_stopped_and_drains_to_zero(
    stack: Any,
) -> None:
    from mandaact_devstack import free_port

    headers = auth(f"lag-{uuid.uuid4().hex[:6]}", "alice")
    port = free_port()
    api_metrics = f"{stack.url('gamification')}/metrics"
    worker_metrics = f"http://127.0.0.1:{port}/metrics"
    worker_env = {**QUICK_LAG, "MANDAACT_WORKER_METRICS_PORT": str(port)}
    async with httpx.AsyncClient(timeout=10) as http:
        actions = await create_grid_and_wait_for_checklist(http, stack, headers, grid(1, 4))
        # The API process reads its service's lag from the broker: it stays while the worker
        # is away (docs/operations.md, "Consumer lag").
        stack.kill("gamification", "api")
        stack.start("gamification", "api", QUICK_LAG)
        stack.kill("gamification", "worker")
        try:
            await check_in_all(http, stack.url("checkins"), headers, actions)
            # Four check-ins, four records the stopped group has not committed.
            await eventually(
                lambda: scrape(http, api_metrics),
                lambda t: (lag_of(t, "gamification", topics.ACTION_COMPLETED) or 0) >= 4,
                30,
            )
        finally:
            stack.start("gamification", "worker", worker_env)
        # Once the worker has caught up, its own figure and the API's read 0 for the group.
        await eventually(
            lambda: scrape(http, worker_metrics), lambda t: lag_of(t, "gamification") == 0, 90
        )
        await eventually(
            lambda: scrape(http, api_metrics), lambda t: lag_of(t, "gamification") == 0, 30
        )


def spans_named(spans: tuple[ReadableSpan, ...], name: str, kind: SpanKind) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name and s.kind == kind]


async def test_a_check_in_and_its_xp_share_one_trace_across_kafka(stack: Any) -> None:
    """The check-in's HTTP span, its outbox write and gamification's consume span of its event
    have one trace id: the checkins API and the gamification worker run in this process, so
    that one in-memory exporter sees them all."""
    from checkins.bootstrap import build_app
    from checkins.settings import Settings as CheckinsSettings
    from gamification.bootstrap import worker_spec
    from gamification.settings import Settings as GamificationSettings

    exporter = InMemorySpanExporter()
    configure_tracing("e2e", SimpleSpanProcessor(exporter))
    infra = {
        "env": "test",
        "mongodb_url": stack.infra.mongodb_url,
        "kafka_bootstrap_servers": stack.infra.bootstrap_servers,
        "relay_poll_seconds": 0.05,
        "lag_refresh_seconds": 0,
    }
    tenant = f"trace-{uuid.uuid4().hex[:6]}"
    headers = auth(tenant, "alice")
    client = make_client(stack.infra.mongodb_url)
    stop = asyncio.Event()
    gamification = GamificationSettings(**infra, mongodb_database=stack.database("gamification"))
    checkins = CheckinsSettings(**infra, mongodb_database=stack.database("checkins"))
    app = build_app(checkins, client=client)
    async with httpx.AsyncClient(timeout=10) as http:
        action = (await create_grid_and_wait_for_checklist(http, stack, headers, grid(1, 1)))[0]
    stack.kill("gamification", "worker")
    worker = asyncio.create_task(
        run_components(
            worker_spec(), gamification, client, client[gamification.mongodb_database], stop
        )
    )
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://checkins"
            ) as local,
        ):
            (answer,) = await check_in_all(local, "", headers, [action])
            trace_id = answer.headers["traceparent"].split("-")[1]

            async def consumed() -> list[ReadableSpan]:
                return [
                    s
                    for s in spans_named(
                        exporter.get_finished_spans(),
                        f"{topics.ACTION_COMPLETED} process",
                        SpanKind.CONSUMER,
                    )
                    if s.attributes and s.attributes.get("tenant_id") == tenant
                ]

            (consume,) = await eventually(consumed, lambda found: len(found) == 1, 90)
    finally:
        stop.set()
        await asyncio.wait_for(worker, 60)
        await client.close()
        stack.start("gamification", "worker")
    spans = exporter.get_finished_spans()
    (request,) = spans_named(spans, "PUT /v1/checkins/{action_id}", SpanKind.SERVER)
    assert consume.attributes is not None
    assert consume.attributes["messaging.consumer.group.name"] == "gamification"
    assert request.context is not None
    assert consume.context is not None
    assert format(request.context.trace_id, "032x") == trace_id
    assert consume.context.trace_id == request.context.trace_id
    # The check-in's events were written under its request span: that is what they carry on.
    writes = spans_named(spans, "outbox write", SpanKind.INTERNAL)
    assert request.context.span_id in {s.parent.span_id for s in writes if s.parent is not None}
