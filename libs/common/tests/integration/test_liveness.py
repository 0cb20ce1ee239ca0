"""A worker whose event loop stalls fails its liveness probe; one waiting on an outage does not."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from mandaact_common.liveness import Heartbeat, ProbeServer

pytestmark = pytest.mark.integration


def status_of(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return None


async def test_a_blocked_loop_fails_the_probe_served_from_its_thread() -> None:
    from mandaact_devstack import free_port

    heartbeat = Heartbeat(0.5, interval_seconds=0.05)
    stop = asyncio.Event()
    beating = asyncio.create_task(heartbeat.run(stop))
    server = ProbeServer("127.0.0.1", free_port(), heartbeat).start()
    url = f"http://127.0.0.1:{server.port}/livez"
    seen: list[int | None] = []
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            seen.append(status_of(url))
            time.sleep(0.1)

    try:
        await asyncio.sleep(0.2)
        assert await asyncio.to_thread(status_of, url) == 200
        poller = threading.Thread(target=poll)
        poller.start()
        time.sleep(1.5)  # noqa: ASYNC251 - what a handler's hanging blocking call does
        await asyncio.sleep(0.3)
        done.set()
        poller.join()
        assert 503 in seen
        assert await asyncio.to_thread(status_of, url) == 200  # the loop runs again
    finally:
        done.set()
        stop.set()
        await beating
        server.close()


STALLING_WORKER = textwrap.dedent(
    """
    import asyncio, sys, time

    from mandaact_common.settings import ServiceSettings
    from mandaact_common.worker import WorkerSpec, run_worker


    async def block_the_loop(deps, stop):
        await asyncio.sleep(float(sys.argv[1]))
        time.sleep(600)  # a synchronous call that hangs: the event loop stops with it


    spec = WorkerSpec(service="stall", background=(block_the_loop,))
    asyncio.run(run_worker(spec, ServiceSettings()))
    """
)


def test_a_worker_whose_loop_blocks_fails_its_liveness_probe_within_the_window(
    infra: Any, tmp_path: Path
) -> None:
    from mandaact_devstack import free_port

    port = free_port()
    script = tmp_path / "stalling_worker.py"
    script.write_text(STALLING_WORKER)
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": infra.bootstrap_servers,
        "MONGODB_URL": infra.mongodb_url,
        "MANDAACT_MONGODB_DATABASE": f"t_{uuid.uuid4().hex[:12]}",
        "MANDAACT_ENV": "test",
        "MANDAACT_WORKER_METRICS_PORT": str(port),
        "MANDAACT_WORKER_STALL_S": "2",
    }
    proc = subprocess.Popen(
        [sys.executable, str(script), "4"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}/livez"
    try:
        statuses: list[tuple[float, int | None]] = []
        start = time.monotonic()
        while time.monotonic() - start < 40:
            statuses.append((time.monotonic() - start, status_of(url)))
            if statuses[-1][1] == 503 or proc.poll() is not None:
                break
            time.sleep(0.2)
        codes = [code for _, code in statuses]
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        assert 200 in codes, f"the probe never answered 200: {statuses}"
        assert codes[-1] == 503, f"the stalled loop never failed the probe: {statuses}"
        ok_until = max(t for t, code in statuses if code == 200)
        failed_at = statuses[-1][0]
        # it blocks 4 s after the start, and 2 s of silence fail the probe
        assert failed_at - ok_until < 5, statuses
        # the metrics thread still answers (the loop does not)
        assert status_of(f"http://127.0.0.1:{port}/metrics") == 200
    finally:
        proc.kill()
        proc.wait(timeout=10)
