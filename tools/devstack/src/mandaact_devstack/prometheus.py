"""An optional local Prometheus for `make up` (`MANDAACT_PROMETHEUS=true`, Debian's package).

It scrapes every API (`/metrics` on its port) and worker (`/metrics` on the API port + 1000)
that `up` started, and loads the alert rules of `deploy/prometheus/alerts.yml`.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from mandaact_devstack.procs import DevstackError, ManagedProcess, repo_root, spawn_detached

PROMETHEUS_ENV = "MANDAACT_PROMETHEUS"
PROMETHEUS_PORT = 9090
MARKER = "prometheus"


def prometheus_wanted() -> bool:
    """Whether `up` starts a Prometheus (MANDAACT_PROMETHEUS=true)."""
    return os.environ.get(PROMETHEUS_ENV, "").strip().lower() in {"1", "true", "yes"}


def scrape_config(apis: Sequence[tuple[str, int]], rules: Path) -> str:
    """The Prometheus configuration scraping these (service, API port) pairs and their workers."""
    lines = [
        "global:",
        "  scrape_interval: 5s",
        "  evaluation_interval: 5s",
        "rule_files:",
        f"  - {rules}",
        "scrape_configs:",
    ]
    for job, offset in (("mandaact-api", 0), ("mandaact-worker", 1000)):
        lines += [f"  - job_name: {job}", "    metrics_path: /metrics", "    static_configs:"]
        for service, port in apis:
            lines += [
                f'      - targets: ["127.0.0.1:{port + offset}"]',
                f"        labels: {{service: {service}}}",
            ]
    return "\n".join(lines) + "\n"


def start_prometheus(
    run_dir: Path, apis: Sequence[tuple[str, int]], port: int = PROMETHEUS_PORT
) -> ManagedProcess:
    """Start Prometheus on 127.0.0.1:`port` with its data and config under `run_dir`."""
    binary = shutil.which("prometheus")
    if binary is None:
        raise DevstackError(
            f"{PROMETHEUS_ENV}=true needs Prometheus: apt-get install prometheus (Debian)"
        )
    home = run_dir / "prometheus"
    home.mkdir(parents=True, exist_ok=True)
    config = home / "prometheus.yml"
    rules = repo_root() / "deploy" / "prometheus" / "alerts.yml"
    config.write_text(scrape_config(apis, rules))
    return spawn_detached(
        MARKER,
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={home / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        log_path=run_dir / "logs" / "prometheus.log",
        pid_file=pid_file(run_dir),
    )


def pid_file(run_dir: Path) -> Path:
    """Where `up` records the Prometheus it started."""
    return run_dir / "pids" / "prometheus.pid"
