"""Console-script entry points: `mandaact-gamification-api` and `mandaact-gamification-worker`."""

from __future__ import annotations

from gamification.bootstrap import build_app, worker_spec
from gamification.settings import Settings
from mandaact_common.entrypoints import service_entrypoints

api, worker = service_entrypoints(Settings, build_app, worker_spec)
