"""Vacation pauses (SPEC §6): ranges of a user's local dates on which nothing is due.

The settings service (goals) decides which pauses a user may set; every service that reads
`user.changed` asks the same question of them: is this local date paused?
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

__all__ = ["Pause", "is_paused"]


@dataclass(frozen=True, slots=True, order=True)
class Pause:
    """Local dates `start`..`end`, both included, on which nothing is due."""

    start: date
    end: date
    reason: str | None = None

    @property
    def days(self) -> int:
        """How many dates the pause covers."""
        return (self.end - self.start).days + 1

    def covers(self, day: date) -> bool:
        """Whether `day` is one of the paused dates."""
        return self.start <= day <= self.end


def is_paused(day: date, pauses: Iterable[Pause]) -> bool:
    """Whether any of `pauses` covers `day`."""
    return any(pause.covers(day) for pause in pauses)
