"""The HTTP service defaults every API calls: lifespan clients, auth, problems, health, metrics."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import uvicorn
from aiokafka import AIOKafkaClient
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from starlette.responses import Response

from mandaact_common.auth import Principal, principal_from_authorization
from mandaact_common.domain.owner import Owner
from mandaact_common.mongo import Doc, make_client, ping
from mandaact_common.observability import configure_logging, http_middleware, metrics_response
from mandaact_common.outbox import ensure_outbox_indexes
from mandaact_common.problems import install_problem_handlers
from mandaact_common.settings import ServiceSettings
from mandaact_common.worker import WorkerSpec, asyncapi_document

log = logging.getLogger(__name__)


@dataclass
class AppState:
    """What the lifespan makes, reachable from `request.app.state.mandaact`."""

    settings: ServiceSettings
    client: AsyncMongoClient[Doc]
    db: AsyncDatabase[Doc]
    kafka: AIOKafkaClient | None = None


_bearer = HTTPBearer(auto_error=False, description="HS256 JWT with `sub`, `tid`, `exp`")


def app_state(request: Request) -> AppState:
    """The process's clients and settings."""
    state: AppState = request.app.state.mandaact
    return state


def current_principal(
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The verified caller; 401 problem otherwise."""
    state = app_state(request)
    return principal_from_authorization(
        request.headers.get("authorization"), state.settings.jwt_secret
    )


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
State = Annotated[AppState, Depends(app_state)]


def current_owner(principal: CurrentPrincipal) -> Owner:
    """The tenant and user of the verified token (401 problem without one)."""
    return Owner(tenant_id=principal.tenant_id, user_id=principal.user_id)


CurrentOwner = Annotated[Owner, Depends(current_owner)]
"""Whose data a request is about: always the verified token's tenant and user."""

ServiceT = TypeVar("ServiceT")
ServiceFactory = Callable[[AppState], ServiceT]
"""Builds a service's use cases over the process's clients (bootstrap hands one to create_app)."""


def use_cases(kind: type[ServiceT]) -> Callable[[Request], ServiceT]:
    """A dependency giving the use cases the app's service factory builds (of type `kind`)."""

    def dependency(request: Request) -> ServiceT:
        service = request.app.state.service_factory(app_state(request))
        if not isinstance(service, kind):
            raise TypeError(f"the service factory built {type(service)}, not {kind}")
        return service

    return dependency


async def _kafka_reachable(state: AppState) -> bool:
    if state.kafka is None:
        state.kafka = AIOKafkaClient(bootstrap_servers=state.settings.kafka_bootstrap_servers)
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
    problem document here, so services install no error handlers of their own. The routes get
    the use cases `service_factory` builds through `use_cases(kind)`.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        mongo = client or make_client(settings.mongodb_url)
        db = mongo[settings.mongodb_database]
        state = AppState(settings=settings, client=mongo, db=db)
        app.state.mandaact = state
        await ensure_outbox_indexes(db)
        if events is not None and events.ensure_indexes is not None:
            await events.ensure_indexes(db)
        if on_start:
            await on_start(state)
        try:
            yield
        finally:
            if on_stop:
                await on_stop(state)
            if state.kafka is not None:
                await state.kafka.close()
            if client is None:
                await mongo.close()

    app = FastAPI(title=title, version="1.0.0", lifespan=lifespan)
    app.state.service_factory = service_factory
    app.middleware("http")(http_middleware(settings.service_name))
    install_problem_handlers(app)

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"], responses={503: {"description": "not ready"}})
    async def readyz(request: Request) -> JSONResponse:
        state = app_state(request)
        db_ok = await ping(state.db)
        kafka_ok = await _kafka_reachable(state)
        ready = db_ok and kafka_ok
        body = {"status": "ready" if ready else "not ready", "mongodb": db_ok, "kafka": kafka_ok}
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get("/metrics", tags=["ops"], include_in_schema=False)
    async def metrics() -> Response:
        return metrics_response()

    if events is not None:
        spec = events

        @app.get("/asyncapi.json", tags=["ops"])
        async def asyncapi_json() -> dict[str, Any]:
            """The service's AsyncAPI 3.0 document (what its worker consumes and publishes)."""
            return asyncapi_document(spec, settings)

    for router in routers:
        app.include_router(router)
    return app


def serve(app: FastAPI, settings: ServiceSettings) -> None:
    """Run the API under uvicorn (console-script entry point)."""
    configure_logging(f"{settings.service_name}-api")
    uvicorn.run(app, host=settings.http_host, port=settings.http_port, log_level="warning")
