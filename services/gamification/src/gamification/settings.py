"""Settings of the gamification service."""

from __future__ import annotations

from typing import ClassVar

from pydantic import AliasChoices, Field

from mandaact_common.settings import ServiceSettings


class Settings(ServiceSettings):
    """Gamification settings: the shared base with this service's name and port."""

    service_name: str = "gamification"
    default_http_port: ClassVar[int] = 8003
    streak_sweep_seconds: float = Field(
        default=30.0,
        gt=0,
        validation_alias=AliasChoices("MANDAACT_STREAK_SWEEP_SECONDS", "streak_sweep_seconds"),
        description="How often the worker decides the streaks of users whose day ended, and "
        "applies tenants' streak repairs (MANDAACT_STREAK_SWEEP_SECONDS).",
    )
