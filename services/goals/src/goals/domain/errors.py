"""The goals service's errors: kinds of the shared base (mapped once at the HTTP edge)."""

from __future__ import annotations

from mandaact_common.errors import Conflict, DomainError, PreconditionFailed, RuleBroken
from mandaact_common.errors import InvalidInput as InvalidInput
from mandaact_common.errors import NotFound as NotFound

__all__ = [
    "ConcurrentChange",
    "DomainError",
    "GridLimitReached",
    "InvalidInput",
    "NotFound",
    "VersionMismatch",
]


class VersionMismatch(PreconditionFailed):
    """An If-Match precondition named a version other than the current one."""

    @property
    def current(self) -> int:
        """The grid's or settings' current version."""
        return self.current_version


class ConcurrentChange(Conflict):
    """Another writer changed the document between our read and our write."""


class GridLimitReached(RuleBroken):
    """The user already owns as many live grids as one user may."""

    code = "grid-limit-reached"
