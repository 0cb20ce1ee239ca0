"""`MANDAACT_PROMETHEUS=true make up`: the local Prometheus's configuration and start."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from pathlib import Path

import pytest

from mandaact_devstack import free_port, wait_http_ready
from mandaact_devstack.procs import repo_root
from mandaact_devstack.prometheus import prometheus_wanted, scrape_config, start_prometheus

pytestmark = pytest.mark.unit

APIS = [("goals", 8001), ("checkins", 8002)]


def test_the_config_scrapes_every_api_and_worker_and_passes_promtool(tmp_path: Path) -> None:
    text = scrape_config(APIS, repo_root() / "deploy" / "prometheus" / "alerts.yml")
    for target in ("127.0.0.1:8001", "127.0.0.1:9001", "127.0.0.1:8002", "127.0.0.1:9002"):
        assert f'"{target}"' in text
    config = tmp_path / "prometheus.yml"
    config.write_text(text)
    checked = subprocess.run(
        ["promtool", "check", "config", str(config)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_it_is_off_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MANDAACT_PROMETHEUS", raising=False)
    assert not prometheus_wanted()
    monkeypatch.setenv("MANDAACT_PROMETHEUS", "true")
    assert prometheus_wanted()


def test_prometheus_starts_with_the_alert_rules_loaded(tmp_path: Path) -> None:
    port = free_port()
    proc = start_prometheus(tmp_path, APIS, port=port)
    try:
        wait_http_ready(f"http://127.0.0.1:{port}/-/ready", timeout=60, proc=proc)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/rules", timeout=5) as r:
            groups = json.load(r)["data"]["groups"]
        names = {rule["name"] for g in groups for rule in g["rules"]}
        assert "ConsumerLagHigh" in names
    finally:
        proc.stop(timeout=20)
