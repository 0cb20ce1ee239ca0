"""Settings of the gamification service."""

from __future__ import annotations

from typing import ClassVar

from mandaact_common.settings import ServiceSettings


class Settings(ServiceSettings):
    """Gamification settings: the shared base with this service's name and port."""

    service_name: str = "gamification"
    default_http_port: ClassVar[int] = 8003
