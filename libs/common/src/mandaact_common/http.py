"""The HTTP service defaults every API calls: lifespan clients, auth, problems, health, metrics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal, TypeVar

import uvicorn
from aiokafka import AIOKafkaClient
from fastapi import APIRouter, Depends, FastAPI, Header, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mandaact_common import consistency
from mandaact_common.auth import Authenticator, Principal
from mandaact_common.consumer import ensure_delivery_indexes
from mandaact_common.domain.owner import Owner
from mandaact_common.kafka import client_security
from mandaact_common.keys import subject_hashes
from mandaact_common.lifecycle import Lifecycle, MongoTombstones, Tombstones, export_chunks
from mandaact_common.limits import (
    MUTATING_METHODS,
    ensure_rate_limit_indexes,
    include_routers,
    install_limits,
)
from mandaact_common.mongo import Doc, make_client, ping
from mandaact_common.observability import (
    configure_logging,
    http_middleware,
    metrics_response,
    tag_tenant,
)
from mandaact_common.openapi import answers, install_openapi
from mandaact_common.outbox import API_KIND, OutboxRelay, make_producer
from mandaact_common.problems import ProblemError, install_problem_handlers
from mandaact_common.settings import ServiceSettings
from mandaact_common.worker import WorkerSpec, asyncapi_document, lag_monitor
from mandaact_contracts.asyncapi import PRODUCERS
from mandaact_contracts.topics import LIFECYCLE_TOPICS

log = logging.getLogger(__name__)


@dataclass
class AppState:
    """What the lifespan makes, reachable from `request.app.state.mandaact`."""

    settings: ServiceSettings
    client: AsyncMongoClient[Doc]
    db: AsyncDatabase[Doc]
    kafka: AIOKafkaClient | None = None


class Health(BaseModel):
    """The process answers."""

    status: Literal["ok"]


class Readiness(BaseModel):
    """Whether the database and the broker answer."""

    status: Literal["ready", "not ready"]
    mongodb: bool
    kafka: bool


_bearer = HTTPBearer(
    auto_error=False,
    description="JWT with `sub`, `tid`, `exp`: HS256, or RS256/ES256 from the JWKS of an IdP",
)


def app_state(request: Request) -> AppState:
    """The process's clients and settings."""
    state: AppState = request.app.state.mandaact
    return state


@answers(401, 503)
async def current_principal(
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The verified caller; 401 problem otherwise (503 while the JWKS cannot be fetched)."""
    authenticator: Authenticator = request.app.state.authenticator
    principal = await authenticator.principal(request.headers.get("authorization"))
    tag_tenant(principal.tenant_id)
    if (asking := consistency.CURRENT.get()) is not None:
        asking.caller = (principal.tenant_id, principal.user_id)
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
State = Annotated[AppState, Depends(app_state)]


def current_owner(principal: CurrentPrincipal) -> Owner:
    """The tenant and user of the verified token (401 problem without one)."""
    return Owner(tenant_id=principal.tenant_id, user_id=principal.user_id)


CurrentOwner = Annotated[Owner, Depends(current_owner)]
"""Whose data a request is about: always the verified token's tenant and user."""


class NotAnAdmin(ProblemError):
    """The token is valid but does not carry the tenant's `admin` role (403)."""

    status = 403
    slug = "forbidden"
    title = "Forbidden"


@answers(403)
def admin_owner(principal: CurrentPrincipal) -> Owner:
    """The tenant and user of a caller with the tenant's `admin` role (403 problem otherwise)."""
    if not principal.is_admin:
        raise NotAnAdmin("this operation is for the tenant's admins (role `admin`)")
    return Owner(tenant_id=principal.tenant_id, user_id=principal.user_id)


AdminOwner = Annotated[Owner, Depends(admin_owner)]
"""An admin caller: the verified token's tenant and user, holding the role `admin`."""


class Erased(ProblemError):
    """The caller, or the caller's tenant, was erased (410): nothing may be stored for them."""

    status = 410
    slug = "erased"
    title = "Erased"


STARTS_ERASURE = "__mandaact_starts_erasure__"
"""The mark of a route that asks for an erasure (`DELETE /v1/me`): asking again is allowed."""

EndpointT = TypeVar("EndpointT", bound=Callable[..., Any])


def starts_erasure(endpoint: EndpointT) -> EndpointT:
    """Mark a route that asks for an erasure: the erased guard lets it through."""
    setattr(endpoint, STARTS_ERASURE, True)
    return endpoint


@answers(410)
async def refuse_erased(request: Request, principal: CurrentPrincipal) -> None:
    """Mutating routes of a service that keeps users' data: an erased user (or tenant) gets a
    410 problem, and nothing is stored for them again (checked before the rate limits, so a
    refused request leaves nothing behind either)."""
    if getattr(request.scope.get("endpoint"), STARTS_ERASURE, False):
        return
    state = app_state(request)
    secret = state.settings.erasure_secret
    hashes = subject_hashes(secret, principal.tenant_id, principal.user_id)
    tombstones: Tombstones = request.app.state.tombstones or MongoTombstones(state.db)
    found = await tombstones.first_erased(hashes)
    if found is None:
        return
    if found == hashes[-1]:  # the tenant's
        raise Erased("this tenant was deleted: nothing is stored for it any more")
    raise Erased("this user was erased (DELETE /v1/me): nothing is stored for them any more")


# --- read-your-writes (SPEC §12) -----------------------------------------------------------------


class ConsistencyTokens:
    """Every request's `RequestTokens`; a mutating response carries its caller's token."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        asking = consistency.RequestTokens(self.service)
        reset = consistency.CURRENT.set(asking)
        mutating = scope.get("method") in MUTATING_METHODS

        async def send_with_token(message: Message) -> None:
            if message["type"] == "http.response.start" and mutating:
                token = asking.token()
                if token is not None:
                    headers = list(message.get("headers", []))
                    headers.append((CONSISTENCY_HEADER, token.encode().encode()))
                    message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_token)
        finally:
            consistency.CURRENT.reset(reset)


CONSISTENCY_HEADER: Final = consistency.HEADER.lower().encode()


@dataclass
class ConsistencyReader:
    """What a service's reads wait for: the topics it consumes, by producing service."""

    service: str
    consumes: Mapping[str, frozenset[str]]
    wait_ms: int
    cache: consistency.AppliedCache = field(default_factory=consistency.AppliedCache)

    @classmethod
    def of(cls, spec: WorkerSpec, settings: ServiceSettings) -> ConsistencyReader | None:
        """None for a service that consumes nothing (its reads are of its own writes)."""
        by_source: dict[str, set[str]] = {}
        for consumer in spec.consumers:
            for topic in consumer.topics:
                if topic in LIFECYCLE_TOPICS or topic not in PRODUCERS:
                    continue
                by_source.setdefault(PRODUCERS[topic], set()).add(topic)
        if not by_source:
            return None
        consumes = {s: frozenset(t) for s, t in by_source.items() if s != spec.service}
        return cls(spec.service, consumes, settings.consistency_wait_ms)


@answers(503)
async def consistent(
    request: Request,
    principal: CurrentPrincipal,
    tokens: Annotated[
        str | None,
        Header(
            alias=consistency.HEADER,
            pattern=consistency.TOKEN_PATTERN,
            description="Tokens of the caller's earlier writes (comma-separated, from their"
            " responses): the answer waits until this service has applied their events"
            " (at most `MANDAACT_CONSISTENCY_WAIT_MS`, then 503).",
        ),
    ] = None,
) -> None:
    """Read-your-writes: wait, bounded, for the events the caller's tokens name (SPEC §12)."""
    if tokens is None:
        return
    reader: ConsistencyReader | None = request.app.state.consistency
    if reader is None:
        return
    caller = (principal.tenant_id, principal.user_id)
    wanted = consistency.wanted_by(consistency.parse_header([tokens]), caller, reader.consumes)
    if not wanted.fields:
        return
    await consistency.wait_for(
        app_state(request).db,
        wanted,
        service=reader.service,
        wait_ms=reader.wait_ms,
        cache=reader.cache,
    )


def lifecycle_router(lifecycle: Lifecycle) -> APIRouter:
    """`GET /v1/me/export`: all the service holds about the caller, as one JSON document."""
    router = APIRouter(tags=["data lifecycle"])

    @router.get(
        "/v1/me/export",
        response_class=StreamingResponse,
        responses={200: {"content": {"application/json": {}}}},
    )
    async def export_me(request: Request, owner: CurrentOwner) -> StreamingResponse:
        """Every document this service keeps about the caller, by collection (SPEC §9)."""
        state = app_state(request)
        now = datetime.now(UTC)
        chunks = export_chunks(state.db, lifecycle, owner.tenant_id, owner.user_id, now)
        filename = f"mandaact-{lifecycle.service}-export.json"
        return StreamingResponse(
            chunks,
            media_type="application/json",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )

    return router


ServiceT = TypeVar("ServiceT")
ServiceFactory = Callable[[AppState], ServiceT]
"""Builds a service's use cases over the process's clients (bootstrap hands one to create_app)."""


_BUILT = "mandaact_built_service"
"""Where an app keeps the service its factory built, with the `AppState` it was built over."""


def use_cases(kind: type[ServiceT]) -> Callable[[Request], ServiceT]:
    """A dependency giving the use cases the app's service factory builds (of type `kind`).

    The factory runs once per app start (per `AppState`), and every request gets that
    service: what its unit of work shares between requests — group commit gathers concurrent
    requests' units only within one `MongoUnitOfWork` — is shared. Use cases read and write the
    database, so a route using them may answer 503.
    """

    @answers(503)
    def dependency(request: Request) -> ServiceT:
        state = app_state(request)
        built: tuple[AppState, object] | None = getattr(request.app.state, _BUILT, None)
        if built is None or built[0] is not state:
            built = (state, request.app.state.service_factory(state))
            setattr(request.app.state, _BUILT, built)
        service = built[1]
        if not isinstance(service, kind):
            raise TypeError(f"the service factory built {type(service)}, not {kind}")
        return service

    return dependency


async def _relay_own_commits(state: AppState, stop: asyncio.Event) -> None:
    """The API's own relay: publishes what this process's requests committed, woken by each
    commit (so an event leaves within milliseconds without the worker watching the outbox);
    it waits for the broker when it is down, as the worker's relay does."""
    settings = state.settings
    backoff = 0.5
    while not stop.is_set():
        producer = make_producer(
            settings.kafka_bootstrap_servers,
            f"{settings.service_name}-api-relay",
            security=client_security(settings),
        )
        try:
            await producer.start()
        except Exception as exc:
            log.warning("API relay: broker not reachable (%r), retrying in %.1fs", exc, backoff)
            await producer.stop()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=backoff)
            backoff = min(backoff * 2, 30.0)
            continue
        relay = OutboxRelay(
            state.db,
            producer,
            settings.service_name,
            kind=API_KIND,
            poll_seconds=settings.relay_poll_seconds,
            max_attempts=settings.relay_max_attempts,
            watch=settings.relay_watch,
        )
        try:
            await relay.run(stop)
        finally:
            await producer.stop()


async def _finish(task: asyncio.Task[None], *, seconds: float) -> None:
    """Let a background task end on its own within `seconds`, else cancel it."""
    try:
        await asyncio.wait_for(asyncio.shield(task), timeout=seconds)
    except TimeoutError:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    except Exception as exc:
        log.warning("background task %s failed: %r", task.get_name(), exc)


async def _kafka_reachable(state: AppState) -> bool:
    if state.kafka is None:
        state.kafka = AIOKafkaClient(
            bootstrap_servers=state.settings.kafka_bootstrap_servers,
            **client_security(state.settings),
        )
        try:
            await asyncio.wait_for(state.kafka.bootstrap(), timeout=3)
        except Exception:
            await state.kafka.close()
            state.kafka = None
            return False
        return True
    try:
        await asyncio.wait_for(state.kafka.fetch_all_metadata(), timeout=3)
    except Exception:
        return False
    return True


def operation_id(route: APIRoute) -> str:
    """An operation's id is its route function's name (`create_mandalart`), unique per service:
    what a generated client names its functions after."""
    return route.name


def create_app(
    settings: ServiceSettings,
    *,
    title: str,
    routers: Sequence[APIRouter],
    on_start: Callable[[AppState], Awaitable[None]] | None = None,
    on_stop: Callable[[AppState], Awaitable[None]] | None = None,
    events: WorkerSpec | None = None,
    client: AsyncMongoClient[Doc] | None = None,
    service_factory: Callable[[AppState], object] | None = None,
) -> FastAPI:
    """Build a service's FastAPI app; clients are made in the lifespan (or passed by tests).

    The service's indexes (`events.ensure_indexes`) are made once at start, then `on_start`
    runs; `on_stop` runs at shutdown, before the clients close. Every domain error maps to its
    problem document here, so services install no error handlers of their own, and the OpenAPI
    document states every answer (`mandaact_common.openapi`). The routes get the use cases
    `service_factory` builds through `use_cases(kind)`.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        mongo = client or make_client(settings.mongodb_url, timeout_ms=settings.mongo_timeout_ms)
        db = mongo[settings.mongodb_database]
        state = AppState(settings=settings, client=mongo, db=db)
        app.state.mandaact = state
        await ensure_delivery_indexes(db, processed_ttl_seconds=settings.processed_ttl_seconds)
        await ensure_rate_limit_indexes(db)
        if events is not None and events.ensure_indexes is not None:
            await events.ensure_indexes(db)
        if on_start:
            await on_start(state)
        stop = asyncio.Event()
        relay = (
            asyncio.create_task(_relay_own_commits(state, stop), name="api-outbox-relay")
            if events is not None and events.publishes and settings.api_relay
            else None
        )
        # The API exports its service's consumer lag too: it stays visible while the worker is
        # down (docs/operations.md).
        lag = lag_monitor(events, settings, "api") if events is not None else None
        lagging = asyncio.create_task(lag.run(stop), name="consumer-lag") if lag else None
        try:
            yield
        finally:
            stop.set()
            if relay is not None:
                await _finish(relay, seconds=10.0)
            if lagging is not None:
                lagging.cancel()  # a read of figures only: nothing to finish
                await asyncio.gather(lagging, return_exceptions=True)
            if on_stop:
                await on_stop(state)
            if state.kafka is not None:
                await state.kafka.close()
            if client is None:
                await mongo.close()

    app = FastAPI(
        title=title,
        version="1.0.0",
        lifespan=lifespan,
        generate_unique_id_function=operation_id,
        # FastAPI's own request span, metrics and log records would double ours (the request
        # span of `http_middleware`, Prometheus, JSON logs); its operation spans stay.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.service_factory = service_factory
    app.state.tombstones = None  # None: the request's service database (tests set a twin)
    app.state.authenticator = Authenticator.from_settings(settings)
    limited = install_limits(app, settings, current_principal, lambda r: app_state(r).db)
    lifecycle = events.lifecycle if events is not None else None
    if lifecycle is not None:
        limited = [Depends(refuse_erased), *limited]
    app.state.consistency = ConsistencyReader.of(events, settings) if events else None
    every = [Depends(consistent)] if app.state.consistency is not None else []
    app.middleware("http")(http_middleware(settings.service_name))
    _install_cors(app, settings)
    install_problem_handlers(app)
    install_openapi(app)

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> Health:
        """The process is up (says nothing about the database or the broker)."""
        return Health(status="ok")

    @app.get(
        "/readyz",
        tags=["ops"],
        response_model=Readiness,
        responses={503: {"model": Readiness, "description": "The database or broker is down."}},
    )
    async def readyz(request: Request) -> JSONResponse:
        """Whether the database and the broker answer (200), or which does not (503)."""
        state = app_state(request)
        db_ok = await ping(state.db, timeout_seconds=2)  # inside the probes' 5 s timeout
        kafka_ok = await _kafka_reachable(state)
        ready = db_ok and kafka_ok
        body = Readiness(status="ready" if ready else "not ready", mongodb=db_ok, kafka=kafka_ok)
        return JSONResponse(body.model_dump(), status_code=200 if ready else 503)

    @app.get("/metrics", tags=["ops"], include_in_schema=False)
    async def metrics() -> Response:
        return metrics_response()

    if events is not None:
        spec = events

        @app.get("/asyncapi.json", tags=["ops"])
        async def asyncapi_json() -> dict[str, Any]:
            """The service's AsyncAPI 3.0 document (what its worker consumes and publishes)."""
            return asyncapi_document(spec, settings)

    if lifecycle is not None:
        app.include_router(lifecycle_router(lifecycle), dependencies=every or None)
    include_routers(app, routers, mutating=limited, every=every)
    app.add_middleware(ConsistencyTokens, service=settings.service_name)  # outermost
    return app


LOOPBACK_ORIGINS = r"^https?://(127\.0\.0\.1|localhost)(:[0-9]{1,5})?$"
"""The origins a local or test stack allows by default: the console on any loopback port."""


def _install_cors(app: FastAPI, settings: ServiceSettings) -> None:
    """Let the ops console's origin call this API from a browser (bearer tokens, no cookies)."""
    origins = [o.strip() for o in (settings.cors_origins or "").split(",") if o.strip()]
    loopback = settings.cors_origins is None and settings.env in ("local", "test")
    if not origins and not loopback:
        return
    app.add_middleware(
        CORSMiddleware,
        allow_origins=origins,
        allow_origin_regex=LOOPBACK_ORIGINS if loopback else None,
        allow_methods=["GET", "PUT", "POST", "PATCH", "DELETE"],
        allow_headers=[
            "Authorization",
            "Content-Type",
            "Idempotency-Key",
            "If-Match",
            consistency.HEADER,
        ],
        expose_headers=["ETag", "Retry-After", "Location", consistency.HEADER],
        max_age=600,
    )


def serve(app: FastAPI, settings: ServiceSettings) -> None:
    """Run the API under uvicorn (console-script entry point)."""
    configure_logging(f"{settings.service_name}-api")
    # log_config=None: uvicorn keeps the JSON handler `configure_logging` installed, and its
    # access log goes through it (one JSON line per request).
    uvicorn.run(
        app,
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        log_level="info",
        access_log=True,
    )
