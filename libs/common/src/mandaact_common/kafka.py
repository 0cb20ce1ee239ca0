"""How every process reaches Kafka: its settings, its SASL/SCRAM principal, and small helpers."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final, Literal, Self

from aiokafka import TopicPartition
from aiokafka.client import AIOKafkaClient
from aiokafka.helpers import create_ssl_context
from faststream.security import SASLScram512
from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SASL_MECHANISM: Final = "SCRAM-SHA-512"
"""The only SASL mechanism the services speak (SPEC §11)."""

SecurityProtocol = Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL"]


class KafkaClientSettings(BaseSettings):
    """Where Kafka is and which principal this process is: every service's settings extend it.

    No username means PLAINTEXT (`make up`, the tests). With `MANDAACT_KAFKA_SASL_USERNAME` and
    `_PASSWORD` the process authenticates with SCRAM-SHA-512, over `SASL_PLAINTEXT` unless
    `MANDAACT_KAFKA_SECURITY_PROTOCOL=SASL_SSL` (then `MANDAACT_KAFKA_SSL_CAFILE` may name the
    broker's CA; the system's CAs otherwise).
    """

    model_config = SettingsConfigDict(
        extra="ignore", populate_by_name=True, hide_input_in_errors=True
    )

    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:9092",
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "kafka_bootstrap_servers"),
    )
    kafka_security_protocol: SecurityProtocol | None = Field(
        None,
        validation_alias=AliasChoices(
            "MANDAACT_KAFKA_SECURITY_PROTOCOL", "kafka_security_protocol"
        ),
    )
    """Unset: `SASL_PLAINTEXT` when a username is set, else `PLAINTEXT`."""
    kafka_sasl_username: str | None = Field(
        None,
        validation_alias=AliasChoices("MANDAACT_KAFKA_SASL_USERNAME", "kafka_sasl_username"),
    )
    """This process's Kafka principal (`User:<name>`), e.g. `mandaact-checkins`."""
    kafka_sasl_password: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("MANDAACT_KAFKA_SASL_PASSWORD", "kafka_sasl_password"),
    )
    kafka_ssl_cafile: str | None = Field(
        None, validation_alias=AliasChoices("MANDAACT_KAFKA_SSL_CAFILE", "kafka_ssl_cafile")
    )
    """PEM file of the CA that signed the broker's certificate (`SASL_SSL` only)."""

    @field_validator(
        "kafka_security_protocol",
        "kafka_sasl_username",
        "kafka_sasl_password",
        "kafka_ssl_cafile",
        mode="before",
    )
    @classmethod
    def _blank_kafka_setting_is_unset(cls, value: object) -> object:
        # Compose and Kubernetes often leave a variable set but empty: that means "not set".
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _kafka_principal_is_whole(self) -> Self:
        has_user = self.kafka_sasl_username is not None
        if has_user != (self.kafka_sasl_password is not None):
            raise ValueError(
                "set both MANDAACT_KAFKA_SASL_USERNAME and MANDAACT_KAFKA_SASL_PASSWORD"
                " (SCRAM-SHA-512), or neither for a PLAINTEXT broker"
            )
        if self.kafka_security_protocol is None:
            self.kafka_security_protocol = "SASL_PLAINTEXT" if has_user else "PLAINTEXT"
        sasl = self.kafka_security_protocol != "PLAINTEXT"
        if sasl != has_user:
            raise ValueError(
                f"MANDAACT_KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} "
                + (
                    "needs MANDAACT_KAFKA_SASL_USERNAME and MANDAACT_KAFKA_SASL_PASSWORD"
                    if sasl
                    else "sends no credentials: drop MANDAACT_KAFKA_SASL_USERNAME/PASSWORD"
                )
            )
        if self.kafka_ssl_cafile is not None and self.kafka_security_protocol != "SASL_SSL":
            raise ValueError("MANDAACT_KAFKA_SSL_CAFILE is used only with SASL_SSL")
        return self


def client_security(settings: KafkaClientSettings) -> dict[str, Any]:
    """aiokafka keyword arguments that authenticate as this process's principal ({}: PLAINTEXT)."""
    if settings.kafka_sasl_username is None or settings.kafka_sasl_password is None:
        return {}
    security: dict[str, Any] = {
        "security_protocol": settings.kafka_security_protocol,
        "sasl_mechanism": SASL_MECHANISM,
        "sasl_plain_username": settings.kafka_sasl_username,
        "sasl_plain_password": settings.kafka_sasl_password.get_secret_value(),
    }
    if settings.kafka_security_protocol == "SASL_SSL":
        security["ssl_context"] = create_ssl_context(cafile=settings.kafka_ssl_cafile)
    return security


def broker_security(settings: KafkaClientSettings) -> SASLScram512 | None:
    """The same principal as FastStream's broker security (None: PLAINTEXT)."""
    security = client_security(settings)
    if not security:
        return None
    return SASLScram512(
        username=security["sasl_plain_username"],
        password=security["sasl_plain_password"],
        ssl_context=security.get("ssl_context"),
    )


async def partitions_of(
    bootstrap_servers: str,
    topics: Iterable[str],
    *,
    security: Mapping[str, Any] | None = None,
) -> list[TopicPartition]:
    """Every partition of these topics, from fresh cluster metadata (`security`: see above)."""
    client = AIOKafkaClient(bootstrap_servers=bootstrap_servers, **(security or {}))
    await client.bootstrap()
    try:
        metadata = await client.fetch_all_metadata()
    finally:
        await client.close()
    return [
        TopicPartition(topic, p)
        for topic in topics
        for p in sorted(metadata.partitions_for_topic(topic) or set())
    ]
