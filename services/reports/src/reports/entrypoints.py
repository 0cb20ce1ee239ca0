"""Console-script entry points: `mandaact-reports-api` and `mandaact-reports-worker`."""

from __future__ import annotations

from mandaact_common.entrypoints import service_entrypoints
from reports.bootstrap import build_app, worker_spec
from reports.settings import Settings

api, worker = service_entrypoints(Settings, build_app, worker_spec)
