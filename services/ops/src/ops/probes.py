"""Reads the other services' `/readyz` and `/metrics` over HTTP, as any monitoring tool does."""

from __future__ import annotations

import asyncio

import httpx

from ops.domain.model import ServiceHealth, metric_value


class HttpProbes:
    """Health and outbox figures of each service's API."""

    def __init__(
        self, timeout_seconds: float, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self._timeout = timeout_seconds
        self._transport = transport  # tests: a stand-in for the other services

    async def check(self, service: str, base_url: str) -> ServiceHealth:
        """One service's readiness and outbox gauges; unreachable is `ready: false`."""
        async with httpx.AsyncClient(
            base_url=base_url, timeout=self._timeout, transport=self._transport
        ) as http:
            ready, metrics = await asyncio.gather(
                http.get("/readyz"), http.get("/metrics"), return_exceptions=True
            )
        if isinstance(ready, BaseException):
            return ServiceHealth(service, False, f"unreachable: {type(ready).__name__}")
        detail = ready.text[:200]
        text = metrics.text if isinstance(metrics, httpx.Response) else ""
        return ServiceHealth(
            service,
            ready.status_code == 200,
            detail,
            outbox_pending=metric_value(text, "mandaact_outbox_pending"),
            outbox_oldest_age_seconds=metric_value(text, "mandaact_outbox_oldest_age_seconds"),
            outbox_parked=metric_value(text, "mandaact_outbox_parked"),
        )
