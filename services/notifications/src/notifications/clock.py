"""The service's clock: the real one, or (tests) the instant written in a file."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from mandaact_common.clock import Clock, utc_now


def file_clock(path: str) -> Clock:
    """A clock reading its instant from `path` at every call (the real clock while it is empty).

    The end-to-end tests move the service's time by rewriting the file.
    """
    source = Path(path)

    def now() -> datetime:
        try:
            text = source.read_text().strip()
        except FileNotFoundError:
            text = ""
        if not text:
            return utc_now()
        instant = datetime.fromisoformat(text)
        return instant.replace(tzinfo=UTC) if instant.tzinfo is None else instant.astimezone(UTC)

    return now


def clock_of(clock_file: str | None) -> Clock:
    """The clock the settings ask for."""
    return file_clock(clock_file) if clock_file else utc_now
