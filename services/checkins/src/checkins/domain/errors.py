"""The checkins service's errors: kinds of the shared base, each with the rule it names.

The HTTP edge maps every kind once (`mandaact_common.problems.problem_of`).
"""

from __future__ import annotations

from mandaact_common.errors import Conflict, DomainError, InvalidInput, LimitReached, NotFound
from mandaact_common.errors import RuleBroken as RuleBroken

__all__ = [
    "ConcurrentChange",
    "DateInFuture",
    "DateTooOld",
    "DomainError",
    "GridInactive",
    "InvalidInput",
    "MissionAlreadyDone",
    "NotCheckable",
    "NotFound",
    "RuleBroken",
    "TooManyChanges",
]


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


class TooManyChanges(LimitReached):
    """The action already had the most check/undo changes allowed for that date."""

    code = "too-many-changes"


class ConcurrentChange(Conflict):
    """Another writer changed the same check-in between our read and our write."""
