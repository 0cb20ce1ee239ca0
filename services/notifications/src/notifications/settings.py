"""Settings of the notifications service."""

from __future__ import annotations

from typing import ClassVar, Self

from pydantic import AliasChoices, Field, model_validator

from mandaact_common.settings import DEV_MODES, ServiceSettings


class Settings(ServiceSettings):
    """Notifications settings: the shared base plus the timers' workers."""

    service_name: str = "notifications"
    default_http_port: ClassVar[int] = 8006
    poll_seconds: float = Field(
        5.0,
        gt=0,
        le=60,
        validation_alias=AliasChoices("MANDAACT_NOTIFICATIONS_POLL", "poll_seconds"),
    )
    """How often a worker looks for due timers (a minute's fire times are met within it)."""
    lease_seconds: float = Field(
        60.0,
        gt=0,
        validation_alias=AliasChoices("MANDAACT_NOTIFICATIONS_LEASE", "lease_seconds"),
    )
    """How long a claimed timer is a worker's before another may take it over."""
    chunk: int = Field(
        200,
        ge=1,
        le=5000,
        validation_alias=AliasChoices("MANDAACT_NOTIFICATIONS_CHUNK", "chunk"),
    )
    """Timers claimed at once by one worker."""
    clock_file: str | None = Field(
        None,
        validation_alias=AliasChoices("MANDAACT_NOTIFICATIONS_CLOCK_FILE", "clock_file"),
    )
    """Tests only (MANDAACT_ENV=local or test): a file holding the instant the service takes
    for now (RFC 3339); absent or empty, the real clock."""

    @model_validator(mode="after")
    def _test_clock_only_in_dev(self) -> Self:
        if self.clock_file and self.env not in DEV_MODES:
            raise ValueError(
                "MANDAACT_NOTIFICATIONS_CLOCK_FILE is for tests: only with MANDAACT_ENV=local"
                " or test"
            )
        return self
