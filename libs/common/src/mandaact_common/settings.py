"""The settings base every service extends: environment variables read by pydantic-settings."""

from __future__ import annotations

from typing import ClassVar, Literal, Self
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from mandaact_common.kafka import KafkaClientSettings

DEV_JWT_SECRET = "mandaact-dev-secret-change-me-0123456789"
"""The documented development secret; refused outside local and test modes."""

DEV_ERASURE_KEY = "mandaact-dev-erasure-key-change-me-0123456789"
"""The documented development key of erasure hashes; refused outside local and test modes."""

DEV_MODES = ("local", "test")
"""The modes that may run on the development secret (`MANDAACT_ENV`, default `production`)."""


class ServiceSettings(KafkaClientSettings):
    """Settings shared by every service; each service subclasses it with its own defaults."""

    # hide_input_in_errors: a refused setting's error must not print the secrets beside it.
    model_config = SettingsConfigDict(
        extra="ignore", populate_by_name=True, hide_input_in_errors=True
    )

    service_name: str = "mandaact"
    env: Literal["local", "test", "production"] = Field(
        "production", validation_alias=AliasChoices("MANDAACT_ENV", "env")
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
    jwt_secret: SecretStr | None = Field(
        None, validation_alias=AliasChoices("MANDAACT_JWT_SECRET", "jwt_secret")
    )
    """HS256 mode. Unset (and no JWKS URL) in local and test modes: the development secret."""
    jwt_jwks_url: str | None = Field(
        None, validation_alias=AliasChoices("MANDAACT_JWT_JWKS_URL", "jwt_jwks_url")
    )
    """RS256/ES256 mode: the identity provider's JWKS (keys picked by the token's `kid`)."""
    jwt_audience: str | None = Field(
        None, validation_alias=AliasChoices("MANDAACT_JWT_AUDIENCE", "jwt_audience")
    )
    """The `aud` a token must name (one of, comma-separated); unset: `aud` is not checked."""
    jwt_issuer: str | None = Field(
        None, validation_alias=AliasChoices("MANDAACT_JWT_ISSUER", "jwt_issuer")
    )
    """The `iss` a token must carry; unset: `iss` is not checked."""
    jwt_jwks_cache_seconds: float = Field(
        300.0,
        gt=0,
        validation_alias=AliasChoices("MANDAACT_JWT_JWKS_CACHE_S", "jwt_jwks_cache_seconds"),
    )
    """How long a fetched JWKS is used before it is fetched again."""
    jwt_jwks_min_refresh_seconds: float = Field(
        10.0,
        ge=0,
        validation_alias=AliasChoices(
            "MANDAACT_JWT_JWKS_MIN_REFRESH_S", "jwt_jwks_min_refresh_seconds"
        ),
    )
    """The least time between two fetches of the JWKS (an unknown `kid` fetches it again)."""
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
        5.0, gt=0, validation_alias=AliasChoices("MANDAACT_RELAY_POLL", "relay_poll_seconds")
    )
    """The relay's safety-net poll when idle; commits wake it at once (docs/delivery.md)."""
    api_relay: bool = Field(True, validation_alias=AliasChoices("MANDAACT_API_RELAY", "api_relay"))
    """Whether an API process relays the outbox rows its own requests commit (docs/delivery.md)."""
    relay_watch: bool = Field(
        False, validation_alias=AliasChoices("MANDAACT_RELAY_WATCH", "relay_watch")
    )
    """Whether relays also watch `outbox` with a change stream (wakes the sweeper at once for
    rows no relay marked); off by default: every process relays its own commits, woken
    in-process, and on SecantusDB every awaiting `getMore` wakes on every write."""
    # Delivery resilience (docs/delivery.md, "When a dependency is down").
    mongo_timeout_ms: int = Field(
        10_000,
        ge=100,
        validation_alias=AliasChoices("MANDAACT_MONGO_TIMEOUT_MS", "mongo_timeout_ms"),
    )
    """Deadline of one database call (PyMongo `timeoutMS`); a consumer batch has its own."""
    consumer_batch_deadline_seconds: float = Field(
        30.0,
        gt=0,
        le=240,  # one try must end well inside Kafka's max.poll.interval.ms (300 s)
        validation_alias=AliasChoices(
            "MANDAACT_CONSUMER_BATCH_DEADLINE_S", "consumer_batch_deadline_seconds"
        ),
    )
    """Deadline of one try of a consumer batch, shared by every database call in it."""
    consumer_max_backoff_seconds: float = Field(
        30.0,
        gt=0,
        validation_alias=AliasChoices(
            "MANDAACT_CONSUMER_MAX_BACKOFF_S", "consumer_max_backoff_seconds"
        ),
    )
    """The longest pause between two tries of a batch while a dependency stays down."""
    relay_max_attempts: int = Field(
        10, ge=1, validation_alias=AliasChoices("MANDAACT_RELAY_MAX_ATTEMPTS", "relay_max_attempts")
    )
    """Failed publishes (with the broker up) after which an outbox row is parked."""
    processed_ttl_seconds: int = Field(
        14 * 24 * 3600,
        ge=3600,
        validation_alias=AliasChoices("MANDAACT_PROCESSED_TTL_S", "processed_ttl_seconds"),
    )
    """How long a processed event id is kept (TTL on `processed_events.at`): past any
    redelivery, i.e. longer than the topics' retention (7 days)."""
    worker_stall_seconds: float = Field(
        30.0,
        gt=0,
        validation_alias=AliasChoices("MANDAACT_WORKER_STALL_S", "worker_stall_seconds"),
    )
    """A worker whose event loop has not run for this long fails its liveness probe."""
    lag_refresh_seconds: float = Field(
        10.0,
        ge=0,
        validation_alias=AliasChoices("MANDAACT_LAG_REFRESH_S", "lag_refresh_seconds"),
    )
    """How often workers and APIs read their groups' consumer lag from Kafka (0: never)."""
    # Rate limits on mutating requests (docs/limits.md), shared by every replica via MongoDB.
    rate_limit_enabled: bool = Field(
        True, validation_alias=AliasChoices("MANDAACT_RATE_LIMIT_ENABLED", "rate_limit_enabled")
    )
    rate_limit_user_per_s: float = Field(
        20.0,
        gt=0,
        validation_alias=AliasChoices("MANDAACT_RATE_LIMIT_USER_PER_S", "rate_limit_user_per_s"),
    )
    rate_limit_user_burst: int = Field(
        40,
        ge=1,
        validation_alias=AliasChoices("MANDAACT_RATE_LIMIT_USER_BURST", "rate_limit_user_burst"),
    )
    rate_limit_tenant_per_s: float = Field(
        2000.0,
        gt=0,
        validation_alias=AliasChoices(
            "MANDAACT_RATE_LIMIT_TENANT_PER_S", "rate_limit_tenant_per_s"
        ),
    )
    rate_limit_tenant_burst: int = Field(
        2000,
        ge=1,
        validation_alias=AliasChoices(
            "MANDAACT_RATE_LIMIT_TENANT_BURST", "rate_limit_tenant_burst"
        ),
    )
    # Data lifecycle (docs/data-lifecycle.md).
    erasure_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("MANDAACT_ERASURE_KEY", "erasure_key")
    )
    """The HMAC key of the hashes that stand for erased users and tenants (tombstones,
    deletion records, rate-limit buckets); the same in every service. Unset in local and test
    modes: the development key."""
    erasure_grace_seconds: float = Field(
        40.0,
        ge=0,
        validation_alias=AliasChoices("MANDAACT_ERASURE_GRACE_S", "erasure_grace_seconds"),
    )
    """How long after its tombstone an erasure starts: longer than a consumer batch may last
    (`MANDAACT_CONSUMER_BATCH_DEADLINE_S`), so no transaction that began before it is still
    writing."""
    consistency_wait_ms: int = Field(
        2000,
        ge=0,
        le=30_000,
        validation_alias=AliasChoices("MANDAACT_CONSISTENCY_WAIT_MS", "consistency_wait_ms"),
    )
    """How long a read waits for the events its `MandaAct-Consistency` tokens name (SPEC §12)
    before it answers 503."""
    cors_origins: str | None = Field(
        None, validation_alias=AliasChoices("MANDAACT_CORS_ORIGINS", "cors_origins")
    )
    """Browser origins allowed to call this API (comma-separated; the ops console's). Unset:
    none in production, any loopback origin in local and test modes (docs/ops.md)."""

    @field_validator(
        "jwt_secret", "jwt_jwks_url", "jwt_audience", "jwt_issuer", "erasure_key", mode="before"
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        # `MANDAACT_JWT_SECRET=` (set but empty, as compose and Kubernetes secrets often leave
        # it) means "not set", never an empty key.
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _fail_closed_on_token_verification(self) -> Self:
        if self.jwt_jwks_url is not None:
            if self.jwt_secret is not None:
                raise ValueError(
                    "set MANDAACT_JWT_SECRET (HS256) or MANDAACT_JWT_JWKS_URL (RS256/ES256),"
                    " not both"
                )
            scheme = urlsplit(self.jwt_jwks_url).scheme
            allowed = ("https",) if self.env == "production" else ("https", "http")
            if scheme not in allowed:
                raise ValueError(
                    f"MANDAACT_JWT_JWKS_URL must be an {' or '.join(allowed)} URL"
                    f" with MANDAACT_ENV={self.env}, not {self.jwt_jwks_url!r}"
                )
            return self
        if self.jwt_secret is None:
            if self.env not in DEV_MODES:
                raise ValueError(
                    f"MANDAACT_ENV={self.env} (the default when unset) needs MANDAACT_JWT_SECRET"
                    " (HS256, at least 32 characters) or MANDAACT_JWT_JWKS_URL (RS256/ES256 from"
                    " your identity provider); for development set MANDAACT_ENV=local"
                )
            self.jwt_secret = SecretStr(DEV_JWT_SECRET)
        secret = self.jwt_secret.get_secret_value()
        if self.env not in DEV_MODES and secret == DEV_JWT_SECRET:
            raise ValueError(
                "MANDAACT_JWT_SECRET is the documented development secret, accepted only with"
                f" MANDAACT_ENV=local or test (MANDAACT_ENV is {self.env}); set a secret of"
                " your own (e.g. `openssl rand -hex 32`) or MANDAACT_JWT_JWKS_URL"
            )
        if len(secret) < 32:
            raise ValueError("MANDAACT_JWT_SECRET must be at least 32 characters")
        return self

    @property
    def erasure_secret(self) -> bytes:
        """The erasure key's bytes (the validators fill in the dev key or refuse to start)."""
        return (self.erasure_key or SecretStr(DEV_ERASURE_KEY)).get_secret_value().encode()

    @model_validator(mode="after")
    def _fail_closed_on_the_erasure_key(self) -> Self:
        if self.erasure_key is None:
            if self.env not in DEV_MODES:
                raise ValueError(
                    f"MANDAACT_ENV={self.env} needs MANDAACT_ERASURE_KEY (at least 32 characters,"
                    " the same in every service; e.g. `openssl rand -hex 32`)"
                )
            self.erasure_key = SecretStr(DEV_ERASURE_KEY)
        key = self.erasure_key.get_secret_value()
        if self.env not in DEV_MODES and key == DEV_ERASURE_KEY:
            raise ValueError(
                "MANDAACT_ERASURE_KEY is the documented development key, accepted only with"
                f" MANDAACT_ENV=local or test (MANDAACT_ENV is {self.env})"
            )
        if len(key) < 32:
            raise ValueError("MANDAACT_ERASURE_KEY must be at least 32 characters")
        return self

    @model_validator(mode="after")
    def _default_port_and_database_from_service_name(self) -> Self:
        if not self.http_port:
            self.http_port = self.default_http_port
        if not self.mongodb_database:
            self.mongodb_database = f"mandaact_{self.service_name}"
        return self
