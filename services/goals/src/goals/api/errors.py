"""Maps the goals error hierarchy to RFC 9457 problem documents at the HTTP edge."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from goals.domain.errors import (
    ConcurrentChange,
    GoalsError,
    InvalidInput,
    NotFound,
    VersionMismatch,
)
from mandaact_common.problems import problem_response


def to_problem(request: Request, exc: GoalsError) -> JSONResponse:
    """The problem document of one goals error."""
    path = request.url.path
    if isinstance(exc, InvalidInput):
        return problem_response(
            422,
            "Invalid request",
            exc.detail,
            "validation",
            path,
            errors=[{"field": exc.field, "message": exc.message}],
        )
    if isinstance(exc, NotFound):
        return problem_response(404, "Not found", exc.detail, "not-found", path)
    if isinstance(exc, VersionMismatch):
        response = problem_response(
            412,
            "Precondition failed",
            exc.detail,
            "precondition-failed",
            path,
            current_version=exc.current,
        )
        response.headers["ETag"] = f'"{exc.current}"'
        return response
    if isinstance(exc, ConcurrentChange):
        return problem_response(409, "Conflict", exc.detail, "conflict", path)
    return problem_response(400, "Bad request", exc.detail, "bad-request", path)


def install_error_handlers(app: FastAPI) -> None:
    """Register the mapping on the app."""

    async def on_goals_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, GoalsError)
        return to_problem(request, exc)

    app.add_exception_handler(GoalsError, on_goals_error)
