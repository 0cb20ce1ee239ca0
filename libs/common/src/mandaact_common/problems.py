"""RFC 9457 problem details: one error hierarchy, mapped to application/problem+json at the edge."""

from __future__ import annotations

import logging
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from pymongo.errors import ConnectionFailure
from starlette.applications import Starlette
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import Scope

from mandaact_common import errors

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "https://mandaact.dev/problems/"


class ProblemError(Exception):
    """A failure that the HTTP edge turns into a problem document."""

    status = 400
    slug = "bad-request"
    title = "Bad request"

    def __init__(
        self,
        detail: str,
        *,
        slug: str | None = None,
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if slug is not None:
            self.slug = slug
        self.headers = headers or {}
        self.extensions = extensions

    def response(self, instance: str | None = None) -> JSONResponse:
        """This problem as an application/problem+json response."""
        response = problem_response(
            self.status, self.title, self.detail, self.slug, instance, **self.extensions
        )
        response.headers.update(self.headers)
        return response


class InvalidRequest(ProblemError):
    """Input that fails validation; `errors` names the fields."""

    status, slug, title = 422, "validation", "Invalid request"

    @classmethod
    def of_field(cls, detail: str, field: str, message: str) -> InvalidRequest:
        """The problem of one field at fault."""
        return cls(detail, errors=[{"field": field, "message": message}])


class Unauthorized(ProblemError):
    """No valid credentials."""

    status, slug, title = 401, "unauthorized", "Unauthorized"


class NotFound(ProblemError):
    """The resource does not exist for this tenant and user."""

    status, slug, title = 404, "not-found", "Not found"


class Conflict(ProblemError):
    """The request conflicts with the current state."""

    status, slug, title = 409, "conflict", "Conflict"


class PreconditionFailed(ProblemError):
    """An If-Match precondition did not hold."""

    status, slug, title = 412, "precondition-failed", "Precondition failed"


class RuleBroken(ProblemError):
    """The input is well-formed but breaks a domain rule."""

    status, slug, title = 422, "rule-broken", "Unprocessable content"


class TooManyRequests(ProblemError):
    """A server-enforced limit was reached."""

    status, slug, title = 429, "too-many-requests", "Too many requests"


def problem_response(
    status: int,
    title: str,
    detail: str,
    slug: str,
    instance: str | None = None,
    *,
    headers: dict[str, str] | None = None,
    **ext: Any,
) -> JSONResponse:
    """Build an application/problem+json response."""
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + slug,
        "title": title,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    body.update(ext)
    all_headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
    all_headers.update(headers or {})
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=all_headers)


def _field_name(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body",)]
    return ".".join(parts) or "body"


def _error_field(error: Any) -> str:
    # A JSON syntax error's loc is ("body", <char offset>): the field at fault is the body.
    if error.get("type") == "json_invalid":
        return "body"
    return _field_name(error.get("loc", ()))


def problem_of(exc: errors.DomainError) -> ProblemError:
    """The problem document of a domain error: the one mapping every service uses."""
    if isinstance(exc, errors.InvalidInput):
        return InvalidRequest.of_field(exc.detail, exc.field, exc.message)
    if isinstance(exc, errors.NotFound):
        return NotFound(exc.detail)
    if isinstance(exc, errors.RuleBroken):
        problem = RuleBroken(exc.detail, slug=exc.code)
        problem.title = exc.title
        problem.extensions.update(exc.facts)
        if exc.field:
            problem.extensions["errors"] = [{"field": exc.field, "message": exc.message}]
        return problem
    if isinstance(exc, errors.PreconditionFailed):
        version = exc.current_version
        return PreconditionFailed(
            exc.detail, headers={"ETag": f'"{version}"'}, current_version=version
        )
    if isinstance(exc, errors.Conflict):
        return Conflict(exc.detail)
    if isinstance(exc, errors.LimitReached):
        return TooManyRequests(exc.detail, slug=exc.code, limit=exc.limit)
    return ProblemError(exc.detail)


BODY_UNREADABLE: Final = "There was an error parsing the body"
"""FastAPI's 400 detail for a body it cannot decode (e.g. not UTF-8); answered as a 422 here."""

UNAVAILABLE_RETRY_AFTER_S: Final = 5
"""What a 503 asks the caller to wait while the database is unreachable."""


def allowed_methods(app: Starlette, scope: Scope) -> list[str]:
    """Every method some route of `app` serves at the request's path (for a 405's `Allow`)."""
    methods: set[str] = set()
    for route in iter_route_contexts(app.routes):
        match, _child = route.matches(scope)
        if match is not Match.NONE:
            methods |= route.methods or set()
    return sorted(methods)


def install_problem_handlers(app: FastAPI) -> None:
    """Map domain errors, validation, HTTP errors and an unreachable database to problem+json."""

    async def on_domain_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, errors.DomainError)
        return problem_of(exc).response(request.url.path)

    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ProblemError)
        return exc.response(request.url.path)

    def invalid(request: Request, field_errors: list[dict[str, str]]) -> JSONResponse:
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in field_errors)
        return problem_response(
            422,
            "Invalid request",
            detail or "invalid request",
            "validation",
            request.url.path,
            errors=field_errors,
        )

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return invalid(
            request,
            [{"field": _error_field(e), "message": e.get("msg", "invalid")} for e in exc.errors()],
        )

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 400 and exc.detail == BODY_UNREADABLE:
            return invalid(request, [{"field": "body", "message": "is not JSON text in UTF-8"}])
        detail = exc.detail if isinstance(exc.detail, str) else "request failed"
        slug = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error")
        response = problem_response(exc.status_code, detail, detail, slug, request.url.path)
        response.headers.update(exc.headers or {})
        if exc.status_code == 405:
            # Starlette names only the first route matching the path; another may serve the
            # same path with other methods (GET and PUT /v1/me are two routes).
            response.headers["Allow"] = ", ".join(allowed_methods(request.app, request.scope))
        return response

    async def on_unavailable(request: Request, exc: Exception) -> JSONResponse:
        log.warning("database unreachable on %s %s: %s", request.method, request.url.path, exc)
        return problem_response(
            503,
            "Service unavailable",
            "the database is unreachable; retry later",
            "unavailable",
            request.url.path,
            headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER_S)},
        )

    app.add_exception_handler(errors.DomainError, on_domain_error)
    app.add_exception_handler(ProblemError, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    # ConnectionFailure covers AutoReconnect, NetworkTimeout and ServerSelectionTimeoutError.
    app.add_exception_handler(ConnectionFailure, on_unavailable)
