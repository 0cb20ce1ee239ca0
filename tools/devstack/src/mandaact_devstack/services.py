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
SERVICE_PORTS: dict[str, int] = {
    "goals": 8001,
    "checkins": 8002,
    "gamification": 8003,
    "reports": 8004,
    "webhooks": 8005,
    "notifications": 8006,
}


def process_name(name: str, kind: Kind) -> str:
    """The log/pid file stem of a service process, e.g. "goals-api"."""
    return f"{name}-{kind}"


def script_name(name: str, kind: Kind) -> str:
    """The console script of a service process, e.g. "mandaact-goals-api"."""
    return f"mandaact-{name}-{kind}"


def service_script(name: str, kind: Kind) -> Path | None:
    """Path of the console script, None when the service is not installed (yet)."""
    return find_executable(script_name(name, kind))


def pid_path(name: str, kind: Kind, run_dir: Path | None = None) -> Path:
    """`.run/pids/<name>-<kind>.pid`."""
    return (run_dir or default_run_dir()) / "pids" / f"{process_name(name, kind)}.pid"


def log_path(name: str, kind: Kind, run_dir: Path | None = None) -> Path:
    """`.run/logs/<name>-<kind>.log`."""
    return (run_dir or default_run_dir()) / "logs" / f"{process_name(name, kind)}.log"


def running_service(name: str, kind: Kind, run_dir: Path | None = None) -> ManagedProcess | None:
    """The live process recorded in the pid file of a service, if any."""
    return adopt_pid_file(
        process_name(name, kind),
        pid_path(name, kind, run_dir),
        log_path(name, kind, run_dir),
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
) -> ManagedProcess:
    """Start `mandaact-<name>-<kind>` detached, with os.environ + env (+ MANDAACT_HTTP_PORT)."""
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
        process_name(name, kind),
        [script],
        log_path=log_path(name, kind, run_dir),
        env=full_env,
        pid_file=pid_path(name, kind, run_dir),
        die_with_parent=die_with_parent,
    )


def stop_service(
    name: str, kind: Kind, *, run_dir: Path | None = None, timeout: float = 20.0
) -> bool:
    """Stop a service started by start_service (via its pid file); True if one was running."""
    proc = running_service(name, kind, run_dir)
    pid_file = pid_path(name, kind, run_dir)
    if proc is None:
        if read_pid_file(pid_file) is not None:
            pid_file.unlink(missing_ok=True)
        return False
    stop_process_group(proc.pid, timeout=timeout)
    pid_file.unlink(missing_ok=True)
    return True


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
