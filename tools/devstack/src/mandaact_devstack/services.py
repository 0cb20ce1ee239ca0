"""The MandaAct service processes (console scripts `mandaact-<svc>-api|worker`)."""

from __future__ import annotations

import os
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from mandaact_devstack.procs import (
    DevstackError,
    ManagedProcess,
    adopt_pid_file,
    default_run_dir,
    find_executable,
    read_pid_file,
    spawn_detached,
    stop_process_group,
)

Kind = Literal["api", "worker"]
KINDS: tuple[Kind, ...] = ("api", "worker")
WORKER_INSTANCES_ENV = "MANDAACT_WORKER_INSTANCES"
MAX_WORKER_INSTANCES = 9  # metrics ports 9xxx + 100 per instance stay below 10000
SERVICE_PORTS: dict[str, int] = {
    "goals": 8001,
    "checkins": 8002,
    "gamification": 8003,
    "reports": 8004,
    "webhooks": 8005,
    "notifications": 8006,
    "ops": 8007,  # API only (its console and the ops endpoints); no worker
}
API_ONLY: frozenset[str] = frozenset({"ops"})
"""Services that have no worker process by design (docs/ops.md)."""


def kinds_of(name: str) -> tuple[Kind, ...]:
    """The processes a service runs: its API, and its worker unless it has none."""
    return ("api",) if name in API_ONLY else KINDS


def process_name(name: str, kind: Kind, instance: int = 1) -> str:
    """The log/pid file stem of a service process, e.g. "goals-api"; instances of a worker
    past the first get a suffix: "goals-worker-2"."""
    if instance < 1:
        raise DevstackError(f"instances are numbered from 1, not {instance}")
    return f"{name}-{kind}" if instance == 1 else f"{name}-{kind}-{instance}"


def worker_metrics_port(http_port: int, instance: int = 1) -> int:
    """The metrics/probe port of a worker instance: 1000 + its API port, +100 per instance
    past the first (checkins 8002: 9002, 9102, 9202, ...)."""
    return http_port + 1000 + 100 * (instance - 1)


def script_name(name: str, kind: Kind) -> str:
    """The console script of a service process, e.g. "mandaact-goals-api"."""
    return f"mandaact-{name}-{kind}"


def service_script(name: str, kind: Kind) -> Path | None:
    """Path of the console script, None when the service is not installed (yet)."""
    return find_executable(script_name(name, kind))


def pid_path(name: str, kind: Kind, run_dir: Path | None = None, instance: int = 1) -> Path:
    """`.run/pids/<name>-<kind>[-<instance>].pid`."""
    stem = process_name(name, kind, instance)
    return (run_dir or default_run_dir()) / "pids" / f"{stem}.pid"


def log_path(name: str, kind: Kind, run_dir: Path | None = None, instance: int = 1) -> Path:
    """`.run/logs/<name>-<kind>[-<instance>].log`."""
    stem = process_name(name, kind, instance)
    return (run_dir or default_run_dir()) / "logs" / f"{stem}.log"


def running_service(
    name: str, kind: Kind, run_dir: Path | None = None, instance: int = 1
) -> ManagedProcess | None:
    """The live process recorded in the pid file of a service (instance), if any."""
    return adopt_pid_file(
        process_name(name, kind, instance),
        pid_path(name, kind, run_dir, instance),
        log_path(name, kind, run_dir, instance),
        script_name(name, kind),
    )


def start_service(
    name: str,
    kind: Kind,
    env: Mapping[str, str] | None = None,
    *,
    run_dir: Path | None = None,
    http_port: int | None = None,
    die_with_parent: bool = False,
    instance: int = 1,
) -> ManagedProcess:
    """Start `mandaact-<name>-<kind>` detached, with os.environ + env (+ MANDAACT_HTTP_PORT).

    `instance` > 1: another process of the same kind (its own pid and log file); the caller
    gives it its own ports (a worker's MANDAACT_WORKER_METRICS_PORT, see worker_metrics_port).
    """
    script = service_script(name, kind)
    if script is None:
        raise DevstackError(f"{script_name(name, kind)} is not installed")
    full_env = dict(os.environ)
    full_env.update(env or {})
    full_env.setdefault("MANDAACT_ENV", "local")
    full_env.setdefault("PYTHONUNBUFFERED", "1")
    if kind == "api":
        if http_port is not None:
            full_env["MANDAACT_HTTP_PORT"] = str(http_port)
        elif "MANDAACT_HTTP_PORT" not in (env or {}):
            full_env["MANDAACT_HTTP_PORT"] = str(SERVICE_PORTS.get(name, 8000))
    return spawn_detached(
        process_name(name, kind, instance),
        [script],
        log_path=log_path(name, kind, run_dir, instance),
        env=full_env,
        pid_file=pid_path(name, kind, run_dir, instance),
        die_with_parent=die_with_parent,
    )


def stop_service(
    name: str,
    kind: Kind,
    *,
    run_dir: Path | None = None,
    timeout: float = 20.0,
    instance: int = 1,
) -> bool:
    """Stop a service started by start_service (via its pid file); True if one was running."""
    proc = running_service(name, kind, run_dir, instance)
    pid_file = pid_path(name, kind, run_dir, instance)
    if proc is None:
        if read_pid_file(pid_file) is not None:
            pid_file.unlink(missing_ok=True)
        return False
    stop_process_group(proc.pid, timeout=timeout)
    pid_file.unlink(missing_ok=True)
    return True


def worker_instances(value: str | None = None) -> dict[str, int]:
    """Instances of each service's worker from MANDAACT_WORKER_INSTANCES (or `value`).

    "2" runs two of every worker; "checkins=3,gamification=2" picks services (others 1).
    Unset or empty: one each.
    """
    raw = (os.environ.get(WORKER_INSTANCES_ENV, "") if value is None else value).strip()
    counts = dict.fromkeys(SERVICE_PORTS, 1)
    if not raw:
        return counts
    try:
        if "=" not in raw:
            return dict.fromkeys(SERVICE_PORTS, _positive(int(raw)))
        for part in raw.split(","):
            name, _, count = part.partition("=")
            name = name.strip()
            if name not in SERVICE_PORTS:
                raise DevstackError(
                    f"{WORKER_INSTANCES_ENV}: unknown service {name!r}"
                    f" (known: {', '.join(SERVICE_PORTS)})"
                )
            counts[name] = _positive(int(count))
    except ValueError as exc:
        raise DevstackError(
            f"{WORKER_INSTANCES_ENV}={raw!r}: give a count (2) or service=count pairs"
            f" (checkins=3,gamification=2)"
        ) from exc
    return counts


def _positive(count: int) -> int:
    if not 1 <= count <= MAX_WORKER_INSTANCES:
        raise ValueError(f"between 1 and {MAX_WORKER_INSTANCES}, not {count}")
    return count


def http_status(url: str, timeout: float = 2.0) -> int | None:
    """HTTP status of GET url, None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (urllib.error.URLError, OSError, ValueError):
        return None


def wait_http_ready(url: str, *, timeout: float = 90.0, proc: ManagedProcess | None = None) -> None:
    """Wait until GET url answers 200 (blocking); raise with the log tail otherwise."""
    deadline = time.monotonic() + timeout
    last: int | None = None
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive():
            raise DevstackError(f"{proc.name} exited; log tail:\n{proc.log_tail()}")
        last = http_status(url)
        if last == 200:
            return
        time.sleep(0.25)
    tail = f"\nlog tail of {proc.name}:\n{proc.log_tail()}" if proc is not None else ""
    raise DevstackError(f"{url} not ready after {timeout}s (last status {last}){tail}")
