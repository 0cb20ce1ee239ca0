"""Clock and id providers: the use cases take them, tests pass fixed or stepping ones."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]
"""The current instant (timezone-aware, UTC)."""
NewId = Callable[[], str]
"""A new unique id."""


def utc_now() -> datetime:
    """The current instant, truncated to milliseconds (what MongoDB keeps of a datetime)."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def new_uuid() -> str:
    """A random UUID in its canonical text form."""
    return str(uuid.uuid4())
