"""Run benchmarks against fresh local infrastructure, print the figures and keep them.

Each benchmark's result is printed and written to `bench-results/<name>.json` (git-ignored; the
folder is made next to `benchmarks/`, or at BENCH_RESULTS_DIR) as soon as it finishes.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

BENCHES = {
    "gamification": "benchmarks.gamification_bench",
    "reports": "benchmarks.reports_bench",
    "notifications": "benchmarks.notifications_bench",
    "pipeline": "benchmarks.pipeline_bench",
    "consistency": "benchmarks.consistency_bench",
}
RESULTS_DIR = Path(
    os.environ.get("BENCH_RESULTS_DIR", Path(__file__).resolve().parent.parent / "bench-results")
)


def _keep(name: str, result: dict[str, Any]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    return path


def main() -> None:
    """Entry point of `python -m benchmarks [name ...]`."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*", help=f"some of {sorted(BENCHES)} (default: all)")
    args = parser.parse_args()
    unknown = sorted(set(args.names) - set(BENCHES))
    if unknown:
        parser.error(f"unknown benchmarks {unknown}; choose from {sorted(BENCHES)}")
    # A SIGTERM (e.g. timeout) unwinds through `finally`, so the servers started here stop too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    from mandaact_devstack import start_test_infra

    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="mandaact-bench-") as tmp:
        infra = start_test_infra(tmp)
        try:
            for name in dict.fromkeys(args.names or list(BENCHES)):
                module = importlib.import_module(BENCHES[name])
                results[name] = asyncio.run(module.run(infra))
                print(f"{name}: written to {_keep(name, results[name])}", flush=True)
        finally:
            infra.stop()
    print(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
