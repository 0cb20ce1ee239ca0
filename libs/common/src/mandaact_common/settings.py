"""The settings base every service extends: environment variables read by pydantic-settings."""

from __future__ import annotations

from typing import ClassVar, Literal, Self

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_JWT_SECRET = "mandaact-dev-secret-change-me-0123456789"
"""The documented development secret; refused outside local and test modes."""


class ServiceSettings(BaseSettings):
    """Settings shared by every service; each service subclasses it with its own defaults."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    service_name: str = "mandaact"
    env: Literal["local", "test", "production"] = Field(
        "local", validation_alias=AliasChoices("MANDAACT_ENV", "env")
    )
    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:9092",
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "kafka_bootstrap_servers"),
    )
    mongodb_url: str = Field(
        "mongodb://127.0.0.1:27017/?directConnection=true",
        validation_alias=AliasChoices("MONGODB_URL", "mongodb_url"),
    )
    mongodb_database: str = Field(
        "", validation_alias=AliasChoices("MANDAACT_MONGODB_DATABASE", "mongodb_database")
    )
    jwt_secret: str = Field(
        DEV_JWT_SECRET, validation_alias=AliasChoices("MANDAACT_JWT_SECRET", "jwt_secret")
    )
    http_host: str = Field("127.0.0.1", validation_alias=AliasChoices("MANDAACT_HTTP_HOST"))
    default_http_port: ClassVar[int] = 8000
    http_port: int = Field(
        0, ge=0, le=65535, validation_alias=AliasChoices("MANDAACT_HTTP_PORT", "http_port")
    )
    worker_metrics_port: int = Field(
        0, validation_alias=AliasChoices("MANDAACT_WORKER_METRICS_PORT", "worker_metrics_port")
    )
    backfill_days: int = Field(
        1, ge=0, le=30, validation_alias=AliasChoices("MANDAACT_BACKFILL_DAYS", "backfill_days")
    )
    consumer_batch_size: int = Field(
        500, ge=1, validation_alias=AliasChoices("MANDAACT_CONSUMER_BATCH", "consumer_batch_size")
    )
    consumer_max_retries: int = Field(
        4, ge=0, validation_alias=AliasChoices("MANDAACT_CONSUMER_RETRIES", "consumer_max_retries")
    )
    consumer_backoff_seconds: float = Field(
        0.2,
        ge=0,
        validation_alias=AliasChoices("MANDAACT_CONSUMER_BACKOFF", "consumer_backoff_seconds"),
    )
    relay_poll_seconds: float = Field(
        0.05, gt=0, validation_alias=AliasChoices("MANDAACT_RELAY_POLL", "relay_poll_seconds")
    )

    @model_validator(mode="after")
    def _refuse_dev_secret_in_production_and_short_secrets(self) -> Self:
        if self.env == "production" and self.jwt_secret == DEV_JWT_SECRET:
            raise ValueError(
                "MANDAACT_JWT_SECRET is the development default;"
                " set a real secret outside local mode"
            )
        if len(self.jwt_secret) < 32:
            raise ValueError("MANDAACT_JWT_SECRET must be at least 32 characters")
        return self

    @model_validator(mode="after")
    def _default_port_and_database_from_service_name(self) -> Self:
        if not self.http_port:
            self.http_port = self.default_http_port
        if not self.mongodb_database:
            self.mongodb_database = f"mandaact_{self.service_name}"
        return self
