"""Ops HTTP routes (thin): the overview, dead letters, the live tail and the console's helpers."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import StreamingResponse

from mandaact_common.auth import mint_token
from mandaact_common.errors import InvalidInput
from mandaact_common.http import State
from mandaact_common.openapi import problems
from mandaact_common.paging import CursorQuery
from mandaact_common.settings import DEV_MODES
from mandaact_contracts import topics
from ops.api.deps import Operator, Ops
from ops.api.schemas import (
    ConsoleConfig,
    DeadLetterPage,
    DevTokenCreate,
    DevTokenPublic,
    HandledPublic,
    LetterSelection,
    OverviewPublic,
    cursor_of,
)
from ops.domain.model import LiveEvent
from ops.settings import Settings

router = APIRouter(prefix="/v1/ops", tags=["ops"])
console_router = APIRouter(tags=["console"])

GROUP_ERRORS = problems(404, described={404: "No consumer group of that name."})
TAILED_TOPICS = (*topics.ALL_TOPICS, *(topics.dead_letter_topic(g) for g in topics.CONSUMER_GROUPS))
DEV_TOKEN_TTL_S = 12 * 3600

Group = Annotated[
    str,
    Path(
        min_length=1,
        max_length=64,
        pattern=r"^[a-z][a-z0-9-]*$",
        description="A consumer group (a service's name, e.g. `gamification`).",
    ),
]


@router.get("/overview")
async def get_overview(_operator: Operator, ops: Ops) -> OverviewPublic:
    """Services' health and outbox, consumer lag per group and partition, letters per group."""
    return OverviewPublic.from_domain(await ops.overview())


@router.get("/dead-letters", responses=GROUP_ERRORS)
async def list_dead_letters(
    _operator: Operator,
    ops: Ops,
    group: Annotated[
        str | None,
        Query(min_length=1, max_length=64, description="One consumer group (default: all)."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200, description="Page size.")] = 50,
    cursor: CursorQuery = None,
) -> DeadLetterPage:
    """Dead letters not yet redriven or discarded, newest first."""
    after = cursor_of(cursor) if cursor is not None else None
    return DeadLetterPage.from_domain(await ops.dead_letters(group, limit, after))


@router.post("/dead-letters/{group}/redrive", responses=GROUP_ERRORS)
async def redrive_dead_letters(
    group: Group, selection: LetterSelection, operator: Operator, ops: Ops
) -> HandledPublic:
    """Re-publish letters to their original topics with their original headers (same `ce_id`,
    so a consumer that already applied one drops it); they are no longer listed."""
    return HandledPublic.from_domain(await ops.redrive(operator, group, selection.to_domain()))


@router.post("/dead-letters/{group}/discard", responses=GROUP_ERRORS)
async def discard_dead_letters(
    group: Group, selection: LetterSelection, operator: Operator, ops: Ops
) -> HandledPublic:
    """Stop listing letters (the audit log keeps who did it and when)."""
    return HandledPublic.from_domain(await ops.discard(operator, group, selection.to_domain()))


def _sse(event: LiveEvent) -> str:
    body = {
        "topic": event.topic,
        "partition": event.partition,
        "offset": event.offset,
        "key": event.key.decode(errors="replace") if event.key is not None else None,
        "headers": {k: v.decode(errors="replace") for k, v in event.headers},
        "value": event.value.decode(errors="replace") if event.value is not None else None,
        "timestamp_ms": event.timestamp_ms,
    }
    ident = f"{event.topic}/{event.partition}/{event.offset}"
    return f"id: {ident}\nevent: {event.topic}\ndata: {json.dumps(body, ensure_ascii=False)}\n\n"


@router.get(
    "/events",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
            "description": "Server-sent events: one `event: <topic>` per record, from now on.",
        },
    },
)
async def tail_events(
    request: Request,
    _operator: Operator,
    ops: Ops,
    topic: Annotated[
        list[str] | None,
        Query(description="Topics to follow (repeat the parameter; default: every topic)."),
    ] = None,
    tenant: Annotated[
        str | None,
        Query(min_length=1, max_length=64, description="Only this tenant's events."),
    ] = None,
) -> StreamingResponse:
    """A live tail of the topics as server-sent events (no consumer group; from now on)."""
    chosen = tuple(dict.fromkeys(topic)) if topic else TAILED_TOPICS
    unknown = [t for t in chosen if t not in TAILED_TOPICS]
    if unknown:
        raise InvalidInput("query.topic", f"unknown topic(s): {', '.join(unknown)}")

    async def stream() -> AsyncIterator[str]:
        yield ": tail open\n\n"
        idle = 0
        async with aclosing(ops.events(chosen, tenant)) as events:  # the consumer stops
            async for batch in events:
                if await request.is_disconnected():
                    break
                for event in batch:
                    yield _sse(event)
                idle = 0 if batch else idle + 1
                if idle and idle % 10 == 0:
                    yield ": keep-alive\n\n"

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@console_router.get("/console/config.json")
async def console_config(state: State) -> ConsoleConfig:
    """Where the console's user view finds the services, and whether it may mint dev tokens."""
    settings = state.settings
    assert isinstance(settings, Settings)
    return ConsoleConfig(services=settings.console_services, dev_tokens=_mints(settings))


def _mints(settings: Settings) -> bool:
    return settings.env in DEV_MODES and settings.jwt_jwks_url is None


dev_router = APIRouter(prefix="/console", tags=["console"])


@dev_router.post("/dev-token", status_code=201)
async def create_dev_token(body: DevTokenCreate, state: State) -> DevTokenPublic:
    """Local and test modes only: a token signed with the development secret."""
    settings = state.settings
    assert settings.jwt_secret is not None
    audiences = [a.strip() for a in (settings.jwt_audience or "").split(",") if a.strip()]
    token = mint_token(
        settings.jwt_secret,
        body.tenant,
        body.user,
        ttl_seconds=DEV_TOKEN_TTL_S,
        roles=list(body.roles) or None,
        audience=audiences[0] if audiences else None,
        issuer=settings.jwt_issuer,
    )
    return DevTokenPublic(
        token=token,
        tenant=body.tenant,
        user=body.user,
        roles=list(body.roles),
        expires_in=DEV_TOKEN_TTL_S,
    )
