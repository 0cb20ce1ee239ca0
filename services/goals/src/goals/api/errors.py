"""Maps the goals error hierarchy to RFC 9457 problem documents at the HTTP edge."""

from __future__ import annotations

from fastapi import FastAPI

from goals.domain.errors import (
    ConcurrentChange,
    GoalsError,
    InvalidInput,
    NotFound,
    VersionMismatch,
)
from mandaact_common import problems


def to_problem(exc: GoalsError) -> problems.ProblemError:
    """The problem of one goals error."""
    if isinstance(exc, InvalidInput):
        return problems.InvalidRequest.of_field(exc.detail, exc.field, exc.message)
    if isinstance(exc, NotFound):
        return problems.NotFound(exc.detail)
    if isinstance(exc, VersionMismatch):
        return problems.PreconditionFailed(
            exc.detail, headers={"ETag": f'"{exc.current}"'}, current_version=exc.current
        )
    if isinstance(exc, ConcurrentChange):
        return problems.Conflict(exc.detail)
    return problems.ProblemError(exc.detail)


def install_error_handlers(app: FastAPI) -> None:
    """Register the mapping on the app."""
    problems.install_error_mapping(app, GoalsError, to_problem)
