"""Maps the checkins error hierarchy to RFC 9457 problem documents at the HTTP edge."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from checkins.domain.errors import (
    CheckinsError,
    ConcurrentChange,
    InvalidInput,
    NotFound,
    RuleBroken,
    TooManyChanges,
)
from mandaact_common.problems import problem_response


def to_problem(request: Request, exc: CheckinsError) -> JSONResponse:
    """The problem document of one checkins error."""
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
    if isinstance(exc, RuleBroken):
        extra = {"errors": [{"field": exc.field, "message": exc.detail}]} if exc.field else {}
        return problem_response(422, "Unprocessable content", exc.detail, exc.code, path, **extra)
    if isinstance(exc, TooManyChanges):
        return problem_response(
            429, "Too many changes", exc.detail, "too-many-changes", path, limit=exc.limit
        )
    if isinstance(exc, ConcurrentChange):
        return problem_response(409, "Conflict", exc.detail, "conflict", path)
    return problem_response(400, "Bad request", exc.detail, "bad-request", path)


def install_error_handlers(app: FastAPI) -> None:
    """Register the mapping on the app."""

    async def on_checkins_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, CheckinsError)
        return to_problem(request, exc)

    app.add_exception_handler(CheckinsError, on_checkins_error)
