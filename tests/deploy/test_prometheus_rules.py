"""The alert rules and dashboard of deploy/: valid for Prometheus, tested, about metrics that exist.

`promtool` comes with the Debian `prometheus` package (`apt-get install prometheus`, which
`.ci/run` does); without it these tests fail and say so.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY

import mandaact_common.observability  # noqa: F401  (registers every mandaact_* metric)

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "mandaact.json"
METRIC = re.compile(r"\bmandaact_[a-z_]+\b")


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail(
            "promtool is missing: install the Debian package `prometheus`"
            " (apt-get install -y --no-install-recommends prometheus), see docs/operations.md"
        )
    return found


def run_promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args],
        cwd=PROMETHEUS_DIR,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_promtool_accepts_the_rules_and_the_config() -> None:
    rules = run_promtool("check", "rules", "alerts.yml")
    assert rules.returncode == 0, rules.stdout + rules.stderr
    config = run_promtool("check", "config", "--syntax-only", "prometheus.yml")
    assert config.returncode == 0, config.stdout + config.stderr


def test_the_alerts_fire_when_they_should_and_only_then() -> None:
    result = run_promtool("test", "rules", "alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def exported_metrics() -> set[str]:
    """The names a scrape of a mandaact process shows (counters with `_total`, histograms
    with `_bucket`, ...)."""
    names: set[str] = set()
    for family in REGISTRY.collect():
        names.add(family.name)
        if family.type == "counter":
            names.add(f"{family.name}_total")
        if family.type == "histogram":
            names |= {f"{family.name}_{suffix}" for suffix in ("bucket", "sum", "count")}
    return names


def test_every_rule_and_panel_reads_a_metric_the_services_export() -> None:
    rules = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text(encoding="utf-8"))
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs += [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    used = {name for expr in exprs for name in METRIC.findall(expr)}
    assert used, "no mandaact_* metric in the rules and dashboard"
    assert used - exported_metrics() == set()
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    # The four: lag, outbox age, dead letters, 5xx.
    assert {"ConsumerLagHigh", "OutboxEventsOld", "EventsDeadLettered", "HttpErrorsHigh"} <= alerts
