"""Settings of the goals service."""

from __future__ import annotations

from typing import ClassVar

from mandaact_common.settings import ServiceSettings


class Settings(ServiceSettings):
    """Goals settings: the shared base with this service's name and port."""

    service_name: str = "goals"
    default_http_port: ClassVar[int] = 8001
