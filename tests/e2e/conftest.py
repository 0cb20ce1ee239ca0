"""The whole stack for end-to-end tests: real infra plus every service's API and worker."""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

SERVICES = ("goals", "checkins", "gamification", "reports", "notifications")
ERASURE_GRACE_S = os.environ.get("MANDAACT_TEST_ERASURE_GRACE_S", "").strip() or "2"
"""Seconds from a deletion request to its erasure in the stack (40 in production): short, so the
tests of SPEC §9 wait little. `MANDAACT_TEST_ERASURE_GRACE_S` changes it for the whole stack,
`Stack.start(svc, kind, {"MANDAACT_ERASURE_GRACE_S": ...})` for one process."""


@dataclass
class Stack:
    """Running service processes on free ports, and how to reach or disturb them."""

    infra: Any
    run_dir: Path
    env: dict[str, str]
    ports: dict[str, int]
    procs: dict[str, Any] = field(default_factory=dict)

    def url(self, service: str) -> str:
        """Base URL of a service's API."""
        return f"http://127.0.0.1:{self.ports[service]}"

    def database(self, service: str) -> str:
        """The name of a service's database in this stack."""
        return f"{self.env['MANDAACT_DB_PREFIX']}_{service}"

    def start(
        self,
        service: str,
        kind: str,
        extra_env: dict[str, str] | None = None,
        *,
        wait: bool = True,
        instance: int = 1,
    ) -> None:
        """Start (or restart) one process of a service (`extra_env` on top of the stack's); an
        API is waited for until ready unless `wait` is False (then call `wait_ready`).
        `instance` > 1: another worker of the service (same consumer groups)."""
        from mandaact_devstack import start_service

        env = {
            **self.env,
            "MANDAACT_MONGODB_DATABASE": self.database(service),
            **(extra_env or {}),
        }
        proc = start_service(
            service,
            kind,  # type: ignore[arg-type]
            env,
            run_dir=self.run_dir,
            http_port=self.ports[service] if kind == "api" else None,
            die_with_parent=True,
            instance=instance,
        )
        self.procs[proc.name] = proc
        if kind == "api" and wait:
            self.wait_ready(service)

    def wait_ready(self, service: str) -> None:
        """Wait until a service's API answers `/readyz` with 200."""
        from mandaact_devstack import wait_http_ready

        proc = self.procs[f"{service}-api"]
        wait_http_ready(f"{self.url(service)}/readyz", timeout=90, proc=proc)

    def kill(self, service: str, kind: str, instance: int = 1) -> None:
        """SIGKILL a process (its whole process group), no chance to clean up."""
        from mandaact_devstack.services import process_name

        proc = self.procs.pop(process_name(service, kind, instance))  # type: ignore[arg-type]
        os.killpg(proc.pid, signal.SIGKILL)
        if proc.popen is not None:
            proc.popen.wait(timeout=10)

    def stop_all(self) -> None:
        """Stop every process this stack started."""
        for proc in self.procs.values():
            proc.stop(timeout=20)
        self.procs.clear()


@pytest.fixture(scope="session")
def stack(infra: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Every service's API and worker against the session's Kafka and MongoDB-compatible server."""
    from mandaact_devstack import free_port
    from mandaact_devstack.services import service_script

    missing = [s for s in SERVICES if service_script(s, "worker") is None]
    assert not missing, f"services not installed: {missing} (run `make install`)"
    run_dir = tmp_path_factory.mktemp("stack")
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": infra.bootstrap_servers,
        "MONGODB_URL": infra.mongodb_url,
        "MANDAACT_ENV": "test",
        "MANDAACT_DB_PREFIX": f"e2e_{uuid.uuid4().hex[:8]}",
        "MANDAACT_API_RELAY": "true",  # as `make up` runs them (the test process turns it off)
        "MANDAACT_BACKFILL_DAYS": "14",  # lets tests check in over last week
        # No MANDAACT_ERASURE_KEY: MANDAACT_ENV=test uses the dev key, in every process alike.
        "MANDAACT_ERASURE_GRACE_S": ERASURE_GRACE_S,
        "OPENAI_API_KEY": "",
    }
    stack = Stack(infra, run_dir, env, {s: free_port() for s in SERVICES})
    try:
        for service in SERVICES:
            stack.start(service, "worker")
            stack.start(service, "api")
        yield stack
    finally:
        stack.stop_all()


@pytest.fixture(scope="session")
def ops(stack: Stack) -> str:
    """The ops API and console (API only, no worker) on the stack, watching its services;
    started on first use. Its base URL."""
    from mandaact_devstack import free_port

    if "ops" not in stack.ports:
        stack.ports["ops"] = free_port()
        watched = ",".join(f"{s}={stack.url(s)}" for s in SERVICES)
        stack.start("ops", "api", {"MANDAACT_OPS_SERVICE_URLS": watched})
    return stack.url("ops")
