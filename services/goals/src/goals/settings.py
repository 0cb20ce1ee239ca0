"""Settings of the goals service."""

from __future__ import annotations

from mandaact_common.settings import ServiceSettings


class Settings(ServiceSettings):
    """Goals settings: the shared base with this service's name and port."""

    service_name: str = "goals"
    http_port: int = 8001
