"""Maps the checkins error hierarchy to RFC 9457 problem documents at the HTTP edge."""

from __future__ import annotations

from fastapi import FastAPI

from checkins.domain.errors import (
    CheckinsError,
    ConcurrentChange,
    InvalidInput,
    NotFound,
    RuleBroken,
    TooManyChanges,
)
from mandaact_common import problems


def to_problem(exc: CheckinsError) -> problems.ProblemError:
    """The problem of one checkins error."""
    if isinstance(exc, InvalidInput):
        return problems.InvalidRequest.of_field(exc.detail, exc.field, exc.message)
    if isinstance(exc, NotFound):
        return problems.NotFound(exc.detail)
    if isinstance(exc, RuleBroken):
        if exc.field:
            errors = [{"field": exc.field, "message": exc.detail}]
            return problems.RuleBroken(exc.detail, slug=exc.code, errors=errors)
        return problems.RuleBroken(exc.detail, slug=exc.code)
    if isinstance(exc, TooManyChanges):
        return problems.TooManyRequests(exc.detail, slug="too-many-changes", limit=exc.limit)
    if isinstance(exc, ConcurrentChange):
        return problems.Conflict(exc.detail)
    return problems.ProblemError(exc.detail)


def install_error_handlers(app: FastAPI) -> None:
    """Register the mapping on the app."""
    problems.install_error_mapping(app, CheckinsError, to_problem)
