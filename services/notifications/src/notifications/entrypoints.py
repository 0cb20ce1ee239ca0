"""Console-script entry points: `mandaact-notifications-api` and `mandaact-notifications-worker`."""

from __future__ import annotations

from mandaact_common.entrypoints import service_entrypoints
from notifications.bootstrap import build_app, worker_spec
from notifications.settings import Settings

api, worker = service_entrypoints(Settings, build_app, worker_spec)
