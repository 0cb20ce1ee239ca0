"""Test helpers of the webhooks service: resolvers, transports, events, a worker over memory."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Coroutine, Mapping, Sequence
from datetime import UTC, datetime

import httpx
import pytest

from mandaact_common.testing import SettableClock
from mandaact_contracts import topics
from mandaact_contracts.envelope import Envelope, new_envelope
from mandaact_contracts.events import ActionCompleted
from webhooks.delivery import DeliveryWorker, Limits
from webhooks.guard import Resolver, UrlGuard
from webhooks.service import WebhooksService
from webhooks.store.memory import unit_of_work_over

NOW = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)


def resolver_of(names: Mapping[str, Sequence[str]]) -> Resolver:
    """A resolver that knows only these names (any other does not resolve)."""

    async def resolve(host: str, port: int) -> Sequence[str]:
        if host not in names:
            raise OSError(f"unknown host {host}")
        return names[host]

    return resolve


def forbidden_transport() -> httpx.MockTransport:
    """A transport that fails the test if a request ever reaches it."""

    def handler(request: httpx.Request) -> httpx.Response:
        pytest.fail(f"a request left the guard: {request.method} {request.url}")

    return httpx.MockTransport(handler)


def action_completed(tenant: str = "acme", user: str = "alice") -> Envelope:
    """A fresh `action.completed` CloudEvent of a user."""
    payload = ActionCompleted.model_validate(
        {
            "tenant_id": tenant,
            "user_id": user,
            "checkin_id": str(uuid.uuid4()),
            "action_id": str(uuid.uuid4()),
            "mandalart_id": str(uuid.uuid4()),
            "sub_goal_position": 1,
            "sub_goal_title": "Body",
            "action_title": "Run",
            "action_type": "routine",
            "local_date": "2026-11-20",
            "timezone": "Asia/Seoul",
            "occurred_at": NOW.isoformat(),
            "seq": 1,
        }
    )
    return new_envelope(topics.ACTION_COMPLETED, payload, "checkins", subject=f"users/{user}")


Handler = Callable[[httpx.Request], Coroutine[None, None, httpx.Response]]


class World:
    """The use cases and a delivery worker over one in-memory store, with a settable clock."""

    def __init__(
        self,
        handler: Handler,
        *,
        names: Mapping[str, Sequence[str]] | None = None,
        allow_private: bool = True,
        limits: Limits | None = None,
    ) -> None:
        self.clock = SettableClock(NOW)
        self.uow = unit_of_work_over()
        self.guard = UrlGuard(allow_private=allow_private, resolver=resolver_of(names or {}))
        self.client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
        self.service = WebhooksService(self.uow, self.guard, clock=self.clock)
        self.worker = DeliveryWorker(
            self.uow, self.guard, self.client, limits or Limits(), clock=self.clock
        )
