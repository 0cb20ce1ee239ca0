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
    "PauseNotAllowed",
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


class PauseNotAllowed(RuleBroken):
    """A pause list that breaks a rule of SPEC §6 (length, overlap, yearly cap, the past)."""

    code = "pause-not-allowed"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}", field, message)


class GridLimitReached(RuleBroken):
    """The user already owns as many live grids as one user may."""

    code = "grid-limit-reached"
