"""Console-script entry points: `mandaact-webhooks-api` and `mandaact-webhooks-worker`."""

from __future__ import annotations

from mandaact_common.entrypoints import service_entrypoints
from webhooks.bootstrap import build_app, worker_spec
from webhooks.settings import Settings

api, worker = service_entrypoints(Settings, build_app, worker_spec)
