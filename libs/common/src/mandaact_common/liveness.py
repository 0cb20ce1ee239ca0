"""A worker's liveness: a heartbeat stamped from its event loop, read by a probe in a thread.

The probe server runs in its own thread, so it answers even when the event loop is stuck; it
reports the loop dead (`GET /livez` → 503) once the heartbeat is older than the allowed age.
A database or broker that is down does not stop the heartbeat (the loop still runs, the
consumers wait with it), so an outage never gets a worker restarted; a handler that blocks the
loop (a synchronous call that hangs, a busy loop) does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import make_wsgi_app

from mandaact_common.observability import WORKER_LOOP_AGE

Environ = dict[str, Any]
StartResponse = Callable[[str, list[tuple[str, str]]], Any]


class Heartbeat:
    """The last time the event loop ran a heartbeat tick (monotonic clock)."""

    def __init__(
        self,
        max_age_seconds: float,
        *,
        interval_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_age_seconds = max_age_seconds
        self.interval_seconds = interval_seconds
        self._clock = clock
        self._last = clock()

    def beat(self) -> None:
        """Stamp now (called from the event loop)."""
        self._last = self._clock()

    def age(self) -> float:
        """Seconds since the last stamp (safe to read from any thread)."""
        return max(0.0, self._clock() - self._last)

    def alive(self) -> bool:
        """Whether the loop stamped recently enough."""
        return self.age() <= self.max_age_seconds

    async def run(self, stop: asyncio.Event) -> None:
        """Stamp every `interval_seconds` until `stop` is set."""
        while not stop.is_set():
            self.beat()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.interval_seconds)


def probe_app(heartbeat: Heartbeat) -> Callable[[Environ, StartResponse], Iterable[bytes]]:
    """WSGI app: `/livez` (200 while the loop beats, else 503) and Prometheus `/metrics`."""
    metrics = make_wsgi_app()

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/livez":
            age = heartbeat.age()
            alive = age <= heartbeat.max_age_seconds
            body = json.dumps(
                {
                    "status": "ok" if alive else "stalled",
                    "loop_age_seconds": round(age, 3),
                    "max_age_seconds": heartbeat.max_age_seconds,
                }
            ).encode()
            status = "200 OK" if alive else "503 Service Unavailable"
            start_response(status, [("Content-Type", "application/json")])
            return [body]
        if path in ("/metrics", "/"):
            WORKER_LOOP_AGE.set(heartbeat.age())
            result: Iterable[bytes] = metrics(environ, start_response)
            return result
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found\n"]

    return app


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Probes every few seconds would flood the log."""


class ProbeServer:
    """The probe endpoints served from a daemon thread."""

    def __init__(self, host: str, port: int, heartbeat: Heartbeat) -> None:
        self._server = make_server(
            host,
            port,
            probe_app(heartbeat),
            server_class=_ThreadingServer,
            handler_class=_QuietHandler,
        )
        self.port = int(self._server.server_port)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="probe-server", daemon=True
        )

    def start(self) -> ProbeServer:
        """Begin serving; returns self."""
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving and release the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
