"""Console-script entry points: `mandaact-goals-api` and `mandaact-goals-worker`."""

from __future__ import annotations

from goals.bootstrap import build_app, worker_spec
from goals.settings import Settings
from mandaact_common.entrypoints import service_entrypoints

api, worker = service_entrypoints(Settings, build_app, worker_spec)
