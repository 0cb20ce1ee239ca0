"""Console-script entry points every service exposes: its HTTP API and its worker."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from fastapi import FastAPI

from mandaact_common import http
from mandaact_common import worker as worker_runtime
from mandaact_common.settings import ServiceSettings

S = TypeVar("S", bound=ServiceSettings)


def service_entrypoints(
    settings: Callable[[], S],
    build_app: Callable[[S], FastAPI],
    worker_spec: Callable[[], worker_runtime.WorkerSpec],
) -> tuple[Callable[[], None], Callable[[], None]]:
    """The `api` and `worker` functions for a service's console scripts."""

    def api() -> None:
        loaded = settings()
        http.serve(build_app(loaded), loaded)

    def worker() -> None:
        worker_runtime.main(worker_spec(), settings())

    return api, worker
