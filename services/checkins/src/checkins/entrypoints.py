"""Console-script entry points: `mandaact-checkins-api` and `mandaact-checkins-worker`."""

from __future__ import annotations

from checkins.bootstrap import build_app, worker_spec
from checkins.settings import Settings
from mandaact_common.entrypoints import service_entrypoints

api, worker = service_entrypoints(Settings, build_app, worker_spec)
