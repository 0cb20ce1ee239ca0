"""One JSON object per log line, for every process (APIs with uvicorn's access log, workers).

Each line carries `time`, `level`, `service`, `logger`, `message` and, when known, `trace_id`
(the current span's), `tenant_id` and `event_id` (bound by the code handling a request or an
event, `bind_log_context`), and `error` with the traceback of a logged exception.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from mandaact_common.tracing import current_trace_id

_log_context: ContextVar[tuple[tuple[str, str], ...]] = ContextVar(
    "mandaact_log_context", default=()
)
_QUIET = ("aiokafka", "pymongo")
"""Libraries whose INFO lines are noise at the default level."""


def bind_log_context(**fields: str | None) -> None:
    """Add fields (`tenant_id`, `event_id`) to every line logged from this context on."""
    _log_context.set(_merged(fields))


@contextmanager
def log_context(**fields: str | None) -> Iterator[None]:
    """Fields added to the lines logged inside the block only."""
    token = _log_context.set(_merged(fields))
    try:
        yield
    finally:
        _log_context.reset(token)


def _merged(fields: dict[str, str | None]) -> tuple[tuple[str, str], ...]:
    merged = dict(_log_context.get())
    merged.update({k: v for k, v in fields.items() if v is not None})
    return tuple(merged.items())


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object on one line."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        """The record as a JSON line."""
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        trace_id = current_trace_id()
        if trace_id:
            line["trace_id"] = trace_id
        line.update(_log_context.get())
        args = record.args
        if record.name == "uvicorn.access" and isinstance(args, tuple) and len(args) == 5:
            client, method, path, _version, status = args
            line.update(client=client, method=method, path=path, status=status)
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def configure_logging(service: str) -> None:
    """JSON lines on stderr at `MANDAACT_LOG_LEVEL` (INFO), uvicorn's loggers included."""
    level = os.environ.get("MANDAACT_LOG_LEVEL", "INFO").upper()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "faststream"):
        # Their own handlers would print plain text beside ours.
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
    logging.getLogger("uvicorn.access").setLevel(logging.INFO)
    for name in _QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
