"""Console-script entry points every service exposes: its HTTP API and its worker."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from fastapi import FastAPI
from pydantic import ValidationError

from mandaact_common import http
from mandaact_common import worker as worker_runtime
from mandaact_common.settings import ServiceSettings

S = TypeVar("S", bound=ServiceSettings)


def load_settings(settings: Callable[[], S]) -> S:
    """The process's settings, or exit with what is wrong in them (fail closed, no traceback)."""
    try:
        return settings()
    except ValidationError as exc:
        problems = "\n".join(
            f"  {'.'.join(map(str, error['loc'])) or 'settings'}: {error['msg']}"
            for error in exc.errors(include_url=False, include_input=False)
        )
        raise SystemExit(f"refusing to start, the settings are not valid:\n{problems}") from None


def service_entrypoints(
    settings: Callable[[], S],
    build_app: Callable[[S], FastAPI],
    worker_spec: Callable[[], worker_runtime.WorkerSpec],
) -> tuple[Callable[[], None], Callable[[], None]]:
    """The `api` and `worker` functions for a service's console scripts."""

    def api() -> None:
        loaded = load_settings(settings)
        http.serve(build_app(loaded), loaded)

    def worker() -> None:
        worker_runtime.main(worker_spec(), load_settings(settings))

    return api, worker
