"""Errors the ops use cases raise (mapped to problems at the HTTP edge)."""

from __future__ import annotations

from mandaact_common.errors import NotFound


class UnknownGroup(NotFound):
    """No consumer group of that name (404)."""

    def __init__(self, group: str) -> None:
        super().__init__(f"no consumer group {group!r}; the groups are the services' own")
