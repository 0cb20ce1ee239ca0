"""Console-script entry point: `mandaact-ops-api` (ops has no worker)."""

from __future__ import annotations

from mandaact_common import http
from mandaact_common.entrypoints import load_settings
from ops.bootstrap import build_app
from ops.settings import Settings


def api() -> None:
    """Run the ops API and console."""
    settings = load_settings(Settings)
    http.serve(build_app(settings), settings)
