"""Settings of the ops service."""

from __future__ import annotations

from typing import ClassVar

from pydantic import AliasChoices, Field, field_validator

from mandaact_common.settings import ServiceSettings

DEFAULT_SERVICE_URLS = (
    "goals=http://127.0.0.1:8001,checkins=http://127.0.0.1:8002,"
    "gamification=http://127.0.0.1:8003,reports=http://127.0.0.1:8004,"
    "webhooks=http://127.0.0.1:8005,notifications=http://127.0.0.1:8006"
)
"""The services' APIs on the local ports of SPEC §5."""


def parse_service_urls(text: str) -> dict[str, str]:
    """`name=url,name=url` -> {name: url} (blank entries ignored; a malformed one refused)."""
    urls: dict[str, str] = {}
    for entry in (e.strip() for e in text.split(",")):
        if not entry:
            continue
        name, sep, url = entry.partition("=")
        if not sep or not name.strip() or not url.strip().startswith(("http://", "https://")):
            raise ValueError(f"expected name=http(s)://host:port, got {entry!r}")
        urls[name.strip()] = url.strip().rstrip("/")
    return urls


class Settings(ServiceSettings):
    """Ops settings: the shared base plus where the other services answer."""

    service_name: str = "ops"
    default_http_port: ClassVar[int] = 8007
    service_urls: str = Field(
        DEFAULT_SERVICE_URLS,
        validation_alias=AliasChoices("MANDAACT_OPS_SERVICE_URLS", "service_urls"),
    )
    """`name=url,…`: each service's API base URL (its `/readyz` and `/metrics`; the console's
    user view calls them from the browser)."""
    console_service_urls: str | None = Field(
        None,
        validation_alias=AliasChoices("MANDAACT_OPS_CONSOLE_SERVICE_URLS", "console_service_urls"),
    )
    """`name=url,…` as a browser reaches the services (the console's user view), when that
    differs from `service_urls` (in compose: localhost ports, not the containers' names)."""
    handled_ttl_seconds: int = Field(
        14 * 24 * 3600,
        ge=3600,
        validation_alias=AliasChoices("MANDAACT_OPS_HANDLED_TTL_S", "handled_ttl_seconds"),
    )
    """How long the record of a redriven or discarded letter is kept: longer than the
    dead-letter topics' retention (7 days), so a handled letter never shows again."""
    probe_timeout_seconds: float = Field(
        2.0,
        gt=0,
        le=10,
        validation_alias=AliasChoices("MANDAACT_OPS_PROBE_TIMEOUT_S", "probe_timeout_seconds"),
    )
    """Deadline of one `/readyz` or `/metrics` read of another service."""

    @field_validator("service_urls", "console_service_urls")
    @classmethod
    def _urls_parse(cls, value: str | None) -> str | None:
        if value is not None:
            parse_service_urls(value)
        return value

    @property
    def services(self) -> dict[str, str]:
        """Each service's API base URL by name."""
        return parse_service_urls(self.service_urls)

    @property
    def console_services(self) -> dict[str, str]:
        """Each service's API base URL as the console's browser reaches it."""
        return parse_service_urls(self.console_service_urls or self.service_urls)
