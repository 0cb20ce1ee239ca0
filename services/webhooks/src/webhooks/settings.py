"""Settings of the webhooks service."""

from __future__ import annotations

from typing import ClassVar, Self

from pydantic import AliasChoices, Field, model_validator

from mandaact_common.settings import ServiceSettings


class Settings(ServiceSettings):
    """Webhooks settings: the shared base plus the delivery worker's knobs."""

    service_name: str = "webhooks"
    default_http_port: ClassVar[int] = 8005
    allow_private: bool = Field(
        False, validation_alias=AliasChoices("MANDAACT_WEBHOOKS_ALLOW_PRIVATE", "allow_private")
    )
    """Local and test only: `http` URLs and loopback/private/link-local addresses are allowed."""
    retry_scale: float = Field(
        1.0,
        gt=0,
        le=1.0,
        validation_alias=AliasChoices("MANDAACT_WEBHOOKS_RETRY_SCALE", "retry_scale"),
    )
    """Multiplies the retry schedule (tests shrink it, e.g. 0.001)."""
    poll_seconds: float = Field(
        1.0,
        gt=0,
        le=60,
        validation_alias=AliasChoices("MANDAACT_WEBHOOKS_POLL_S", "poll_seconds"),
    )
    """How often an idle delivery worker looks for due deliveries."""
    timeout_seconds: float = Field(
        10.0,
        gt=0,
        le=10.0,
        validation_alias=AliasChoices("MANDAACT_WEBHOOKS_TIMEOUT_S", "timeout_seconds"),
    )
    """An attempt that has no answer within this many seconds failed (SPEC: 2xx within 10 s)."""
    concurrency: int = Field(
        64,
        ge=1,
        le=1024,
        validation_alias=AliasChoices("MANDAACT_WEBHOOKS_CONCURRENCY", "concurrency"),
    )
    """Attempts in flight per worker process, over all endpoints."""
    per_endpoint: int = Field(
        2,
        ge=1,
        le=16,
        validation_alias=AliasChoices("MANDAACT_WEBHOOKS_PER_ENDPOINT", "per_endpoint"),
    )
    """Attempts in flight per endpoint and worker process (a dead endpoint holds at most these)."""
    per_tenant: int = Field(
        8,
        ge=1,
        le=256,
        validation_alias=AliasChoices("MANDAACT_WEBHOOKS_PER_TENANT", "per_tenant"),
    )
    """Attempts in flight per tenant and worker process (a tenant's dead endpoints hold at
    most these of the `concurrency` slots)."""

    @model_validator(mode="after")
    def _private_addresses_only_in_development(self) -> Self:
        if self.allow_private and self.env == "production":
            raise ValueError(
                "MANDAACT_WEBHOOKS_ALLOW_PRIVATE=true lets deliveries reach loopback and private"
                " addresses; it is accepted only with MANDAACT_ENV=local or test"
            )
        return self
