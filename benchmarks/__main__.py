"""Run every benchmark against fresh local infrastructure and print the figures."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import signal
import sys
import tempfile
from typing import Any

BENCHES = {
    "gamification": "benchmarks.gamification_bench",
    "reports": "benchmarks.reports_bench",
}


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
            for name in args.names or list(BENCHES):
                module = importlib.import_module(BENCHES[name])
                results[name] = asyncio.run(module.run(infra))
        finally:
            infra.stop()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
