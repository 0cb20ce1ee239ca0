"""The checkins service's small error hierarchy; the HTTP edge maps each to a problem document."""

from __future__ import annotations


class CheckinsError(Exception):
    """Base of every error the checkins domain and use cases raise on purpose."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class InvalidInput(CheckinsError):
    """Well-formed input that is still wrong (a range backwards or too long); names the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class NotFound(CheckinsError):
    """The action does not exist for this tenant and user (or its grid was deleted)."""


class RuleBroken(CheckinsError):
    """The request is well-formed but a check-in rule forbids it; `code` says which rule."""

    code = "rule-broken"

    def __init__(self, detail: str, field: str | None = None) -> None:
        super().__init__(detail)
        self.field = field


class DateInFuture(RuleBroken):
    """A check-in (or undo) for a date after the user's today."""

    code = "date-in-future"


class DateTooOld(RuleBroken):
    """A check-in (or undo) for a date before the backfill window."""

    code = "date-too-old"


class NotCheckable(RuleBroken):
    """A reference (mindset note) is never checkable."""

    code = "not-checkable"


class GridInactive(RuleBroken):
    """The action's grid is switched off: its actions cannot be checked."""

    code = "grid-inactive"


class MissionAlreadyDone(RuleBroken):
    """A mission is done once: it already has a check-in on another date."""

    code = "mission-already-done"


class TooManyChanges(CheckinsError):
    """The action already had the most check/undo changes allowed for that date."""

    def __init__(self, detail: str, limit: int) -> None:
        super().__init__(detail)
        self.limit = limit


class ConcurrentChange(CheckinsError):
    """Another writer changed the same check-in between our read and our write."""
