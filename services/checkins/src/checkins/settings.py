"""Settings of the checkins service."""

from __future__ import annotations

from typing import ClassVar

from mandaact_common.settings import ServiceSettings


class Settings(ServiceSettings):
    """Checkins settings: the shared base with this service's name and port."""

    service_name: str = "checkins"
    default_http_port: ClassVar[int] = 8002
