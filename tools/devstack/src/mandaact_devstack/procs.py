"""Detached child processes (own session and process group), pid files, ports, paths."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

_PR_SET_PDEATHSIG = 1


class DevstackError(RuntimeError):
    """A piece of the local stack could not be prepared, started or stopped."""


# --------------------------------------------------------------------------- paths


def repo_root() -> Path:
    """The monorepo root: $MANDAACT_REPO_ROOT, else the ancestor holding deploy/kafka/pom.xml."""
    env = os.environ.get("MANDAACT_REPO_ROOT")
    if env:
        return Path(env).resolve()
    for start in (Path(__file__).resolve(), Path.cwd().resolve()):
        for candidate in (start, *start.parents):
            if (candidate / "deploy" / "kafka" / "pom.xml").is_file():
                return candidate
    return Path.cwd().resolve()


def default_run_dir() -> Path:
    """Where runtime state lives (`<repo>/.run`, git-ignored)."""
    return repo_root() / ".run"


def venv_bin() -> Path:
    """The bin directory of the running interpreter's virtualenv (console scripts live here)."""
    return Path(sys.executable).parent


def find_executable(name: str) -> Path | None:
    """A console script from the virtualenv's bin directory, else from PATH."""
    candidate = venv_bin() / name
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return candidate
    found = shutil.which(name)
    return Path(found) if found else None


# --------------------------------------------------------------------------- ports

_handed_out: set[int] = set()
_handed_out_lock = threading.Lock()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now (never the same one twice in this process)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
        with _handed_out_lock:
            if port not in _handed_out:
                _handed_out.add(port)
                return port
    raise DevstackError("could not find a free TCP port")


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_port_closed(host: str, port: int, timeout: float = 10.0) -> bool:
    """Wait until nothing accepts connections on host:port; True when it is closed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not port_open(host, port, timeout=0.2):
            return True
        time.sleep(0.1)
    return not port_open(host, port, timeout=0.2)


def split_host_port(address: str, default_port: int) -> tuple[str, int]:
    """Split "host:port" (first entry of a comma-separated list) into its parts."""
    first = address.split(",")[0].strip()
    if "://" in first:
        first = first.split("://", 1)[1]
    host, sep, port = first.rpartition(":")
    if not sep:
        return first, default_port
    return host.strip("[]"), int(port)


# --------------------------------------------------------------------------- processes


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, process group) of a pid from /proc, None when it does not exist."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = raw[raw.rfind(")") + 2 :].split()
    return fields[0], int(fields[2])


def pid_alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie."""
    if pid <= 0:
        return False
    if Path("/proc").is_dir():
        stat = _proc_stat(pid)
        return stat is not None and stat[0] not in ("Z", "X")
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes whose process group is pgid."""
    if not Path("/proc").is_dir():
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return []
        return [pgid]
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        stat = _proc_stat(int(entry.name))
        if stat is not None and stat[1] == pgid and stat[0] not in ("Z", "X"):
            members.append(int(entry.name))
    return members


def process_cmdline(pid: int) -> str:
    """The command line of a process ("" when unknown)."""
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


def _set_pdeathsig() -> None:  # pragma: no cover - runs in the child between fork and exec
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def stop_process_group(
    pgid: int, timeout: float = 20.0, popen: subprocess.Popen[bytes] | None = None
) -> None:
    """SIGTERM a process group, wait, SIGKILL what is left; raise if anything survives."""

    def reap() -> None:
        if popen is not None:
            popen.poll()

    reap()
    if not group_members(pgid) and not pid_alive(pgid):
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reap()
        if not group_members(pgid):
            break
        time.sleep(0.1)
    else:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            reap()
            if not group_members(pgid):
                break
            time.sleep(0.1)
    if popen is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            popen.wait(timeout=5)
    left = group_members(pgid)
    if left:
        raise DevstackError(f"processes {left} of group {pgid} survived SIGKILL")


def write_pid_file(path: Path, pid: int) -> None:
    """Record a pid (one line) in a pid file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{pid}\n")


def read_pid_file(path: Path) -> int | None:
    """The pid recorded in a pid file, None when missing or unreadable."""
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


@dataclass
class ManagedProcess:
    """A child started by devstack in its own session/process group (pid == pgid)."""

    name: str
    pid: int
    log_path: Path
    pid_file: Path | None = None
    popen: subprocess.Popen[bytes] | None = field(default=None, repr=False, compare=False)

    def alive(self) -> bool:
        """Whether the process still runs."""
        if self.popen is not None:
            return self.popen.poll() is None
        return pid_alive(self.pid)

    def stop(self, timeout: float = 20.0) -> None:
        """Stop the whole process group (SIGTERM, then SIGKILL) and remove the pid file."""
        stop_process_group(self.pid, timeout=timeout, popen=self.popen)
        if self.pid_file is not None and read_pid_file(self.pid_file) == self.pid:
            self.pid_file.unlink(missing_ok=True)

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the process's log."""
        return tail_file(self.log_path, lines)


def tail_file(path: Path, lines: int = 40) -> str:
    """The last lines of a text file ("" when missing)."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            data = fh.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


def spawn_detached(
    name: str,
    argv: Sequence[str | os.PathLike[str]],
    *,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    pid_file: Path | None = None,
    die_with_parent: bool = False,
) -> ManagedProcess:
    """Start argv in a new session (own process group), output appended to log_path."""
    # die_with_parent: Linux SIGTERMs the child when the spawning *thread* exits (PDEATHSIG);
    # for test infrastructure only, never for `up`, whose processes outlive the CLI.
    log_path.parent.mkdir(parents=True, exist_ok=True)
    preexec: Callable[[], None] | None = None
    if die_with_parent and sys.platform.startswith("linux"):
        preexec = _set_pdeathsig
    with log_path.open("ab") as log:
        popen = subprocess.Popen(
            [os.fspath(a) for a in argv],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
            close_fds=True,
            preexec_fn=preexec,
        )
    if pid_file is not None:
        write_pid_file(pid_file, popen.pid)
    return ManagedProcess(
        name=name, pid=popen.pid, log_path=log_path, pid_file=pid_file, popen=popen
    )


def adopt_pid_file(name: str, pid_file: Path, log_path: Path, marker: str) -> ManagedProcess | None:
    """A ManagedProcess for a live pid recorded in pid_file whose command line has marker."""
    pid = read_pid_file(pid_file)
    if pid is None or not pid_alive(pid) or marker not in process_cmdline(pid):
        return None
    return ManagedProcess(name=name, pid=pid, log_path=log_path, pid_file=pid_file)


# --------------------------------------------------------------------------- async helpers


def run_sync(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion from sync code, even when an event loop is running."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(factory())
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="devstack") as pool:
        return pool.submit(lambda: asyncio.run(factory())).result()
