"""Settings of the reports service."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator

from mandaact_common.settings import ServiceSettings


class Settings(ServiceSettings):
    """Reports settings: the shared base plus the LLM, the scheduler and the rewrites."""

    service_name: str = "reports"
    default_http_port: ClassVar[int] = 8004
    openai_api_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("OPENAI_API_KEY", "openai_api_key")
    )
    openai_base_url: str | None = Field(
        None, validation_alias=AliasChoices("OPENAI_BASE_URL", "openai_base_url")
    )
    llm_model: str = Field(
        "gpt-4o-mini",
        min_length=1,
        validation_alias=AliasChoices("MANDAACT_LLM_MODEL", "llm_model"),
    )
    llm_timeout_seconds: float = Field(
        20.0,
        gt=0,
        le=300,
        validation_alias=AliasChoices("MANDAACT_LLM_TIMEOUT", "llm_timeout_seconds"),
    )
    llm_max_retries: int = Field(
        1, ge=0, le=5, validation_alias=AliasChoices("MANDAACT_LLM_MAX_RETRIES", "llm_max_retries")
    )
    llm_response_format: Literal["json_schema", "json_object"] = Field(
        "json_schema",
        validation_alias=AliasChoices("MANDAACT_LLM_RESPONSE_FORMAT", "llm_response_format"),
    )
    llm_concurrency: int = Field(
        4, ge=1, le=64, validation_alias=AliasChoices("MANDAACT_LLM_CONCURRENCY", "llm_concurrency")
    )
    llm_max_completion_tokens: int = Field(
        800,
        ge=64,
        le=4096,
        validation_alias=AliasChoices(
            "MANDAACT_LLM_MAX_COMPLETION_TOKENS", "llm_max_completion_tokens"
        ),
    )
    llm_token_cap_param: Literal["max_completion_tokens", "max_tokens"] = Field(
        "max_completion_tokens",
        validation_alias=AliasChoices("MANDAACT_LLM_TOKEN_CAP_PARAM", "llm_token_cap_param"),
    )
    llm_monthly_calls_per_tenant: int = Field(
        10_000,
        ge=0,
        validation_alias=AliasChoices(
            "MANDAACT_LLM_MONTHLY_CALLS_PER_TENANT", "llm_monthly_calls_per_tenant"
        ),
    )
    scheduler_poll_seconds: float = Field(
        30.0,
        gt=0,
        validation_alias=AliasChoices("MANDAACT_REPORT_POLL", "scheduler_poll_seconds"),
    )
    scheduler_chunk: int = Field(
        200,
        ge=1,
        le=5000,
        validation_alias=AliasChoices("MANDAACT_REPORT_CHUNK", "scheduler_chunk"),
    )
    claim_lease_seconds: float = Field(
        300.0,
        gt=0,
        validation_alias=AliasChoices("MANDAACT_REPORT_LEASE", "claim_lease_seconds"),
    )
    report_settle_seconds: float = Field(
        300.0,
        ge=0,
        validation_alias=AliasChoices("MANDAACT_REPORT_SETTLE_S", "report_settle_seconds"),
        description="How long a week's fold must stay unchanged before a report written from"
        " an older fold is rewritten.",
    )

    @field_validator("openai_api_key", mode="before")
    @classmethod
    def _blank_key_is_none(cls, value: object) -> object:
        # `OPENAI_API_KEY=` (set but empty) means "no key", not a key that every call fails with.
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("openai_base_url", mode="before")
    @classmethod
    def _blank_url_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @property
    def llm_deadline_seconds(self) -> float:
        """The most one summary may take, retries and backoff included, before the fallback."""
        return (
            self.llm_timeout_seconds * (self.llm_max_retries + 1) + 2.0 * self.llm_max_retries + 1.0
        )
