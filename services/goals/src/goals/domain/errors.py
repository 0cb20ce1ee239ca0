"""The goals service's small error hierarchy; the HTTP edge maps each to a problem document."""

from __future__ import annotations


class GoalsError(Exception):
    """Base of every error the goals domain and use cases raise on purpose."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class InvalidInput(GoalsError):
    """Well-formed input that breaks a rule of the grid or the settings (names the field)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class NotFound(GoalsError):
    """The grid (or a part of it) does not exist for this tenant and user."""


class VersionMismatch(GoalsError):
    """An If-Match precondition named a version other than the current one."""

    def __init__(self, current: int) -> None:
        super().__init__(f"the current version is {current}; re-read and retry")
        self.current = current


class ConcurrentChange(GoalsError):
    """Another writer changed the document between our read and our write."""
