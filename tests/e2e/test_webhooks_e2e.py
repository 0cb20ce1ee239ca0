"""Webhooks over the whole stack: a check-in reaches a tenant admin's local endpoint as a signed
CloudEvent; retries after 500s; tenants never see each other's events; a dead endpoint does not
delay another (timed).

The endpoints are small HTTP servers on 127.0.0.1 inside this test (private addresses and
`http` are allowed with MANDAACT_WEBHOOKS_ALLOW_PRIVATE=true in test mode); nothing leaves the
machine.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from tests.e2e.helpers import auth, create_grid_and_wait_for_checklist, eventually, grid

pytestmark = pytest.mark.e2e

HANG_SECONDS = 30.0
ATTEMPT_TIMEOUT_S = 8


@dataclass
class Received:
    """One request an endpoint got."""

    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Receiver:
    """A local HTTP server recording every POST; each path answers as scripted."""

    scripts: dict[str, list[int]] = field(default_factory=dict)
    """Path -> statuses to answer in turn (then 200); status 0 means never answer."""
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    port: int = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def at(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.path == path]

    def next_status(self, path: str) -> int:
        with self.lock:
            script = self.scripts.get(path, [])
            if script == [0]:
                return 0
            return script.pop(0) if script else 200


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    rec = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            with rec.lock:
                rec.received.append(
                    Received(self.path, dict(self.headers.items()), body, time.monotonic())
                )
            status = rec.next_status(self.path)
            if status == 0:
                time.sleep(HANG_SECONDS)  # a dead endpoint: accepts, never answers in time
                return
            self.send_response(status)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    rec.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield rec
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def webhooks(stack: Any) -> str:
    """The webhooks API and worker added to the session's stack (test mode, fast retries)."""
    from mandaact_devstack import free_port

    stack.ports.setdefault("webhooks", free_port())
    extra = {
        "MANDAACT_WEBHOOKS_ALLOW_PRIVATE": "true",
        "MANDAACT_WEBHOOKS_RETRY_SCALE": "0.001",
        "MANDAACT_WEBHOOKS_POLL_S": "0.1",
        "MANDAACT_WEBHOOKS_TIMEOUT_S": str(ATTEMPT_TIMEOUT_S),
    }
    for kind in ("worker", "api"):
        running = stack.procs.pop(f"webhooks-{kind}", None)
        if running is not None:  # the stack's own, without this module's settings
            running.stop(timeout=20)
        stack.start("webhooks", kind, extra)
    return str(stack.url("webhooks"))


def admin(tenant: str) -> dict[str, str]:
    return auth(tenant, "root", roles=["admin"])


async def register(
    http: httpx.AsyncClient, base: str, tenant: str, url: str, types: list[str]
) -> dict[str, Any]:
    r = await http.post(
        f"{base}/v1/admin/webhooks", json={"url": url, "event_types": types}, headers=admin(tenant)
    )
    assert r.status_code == 201, r.text
    created: dict[str, Any] = r.json()
    return created


async def check_in(http: httpx.AsyncClient, stack: Any, tenant: str, n: int = 1) -> list[str]:
    headers = auth(tenant, "dana")
    actions = await create_grid_and_wait_for_checklist(http, stack, headers, grid(1, n))
    for action in actions:
        r = await http.put(f"{stack.url('checkins')}/v1/checkins/{action}", headers=headers)
        assert r.status_code == 201, r.text
    return actions


async def test_a_check_in_reaches_the_endpoint_as_a_signed_cloudevent(
    stack: Any, webhooks: str, receiver: Receiver
) -> None:
    tenant = f"wh-{uuid.uuid4().hex[:6]}"
    path = f"/{tenant}/in"
    async with httpx.AsyncClient(timeout=10) as http:
        endpoint = await register(http, webhooks, tenant, receiver.url(path), ["action.completed"])
        [action] = await check_in(http, stack, tenant)

        async def got() -> list[Received]:
            return receiver.at(path)

        [request] = await eventually(got, lambda r: len(r) >= 1, seconds=60)
        document = Webhook(endpoint["secret"]).verify(request.body, request.headers)
        assert document["specversion"] == "1.0"
        assert document["type"] == "mandaact.action.completed.v1"
        assert document["tenantid"] == tenant
        assert document["datacontenttype"] == "application/json"
        assert document["data"]["action_id"] == action
        assert request.headers["webhook-id"] == document["id"]
        assert request.headers["content-type"] == "application/json"

        log = await http.get(
            f"{webhooks}/v1/admin/webhooks/{endpoint['id']}/deliveries", headers=admin(tenant)
        )
        [delivery] = log.json()["items"]
        assert delivery["status"] == "succeeded"
        assert delivery["attempts"][0]["status_code"] == 200


async def test_500_twice_then_200_is_three_attempts_and_one_success(
    stack: Any, webhooks: str, receiver: Receiver
) -> None:
    tenant = f"wh-{uuid.uuid4().hex[:6]}"
    path = f"/{tenant}/flaky"
    receiver.scripts[path] = [500, 500, 200]
    async with httpx.AsyncClient(timeout=10) as http:
        endpoint = await register(http, webhooks, tenant, receiver.url(path), ["action.completed"])
        await check_in(http, stack, tenant)
        url = f"{webhooks}/v1/admin/webhooks/{endpoint['id']}/deliveries"

        async def succeeded() -> list[Any]:
            r = await http.get(url, params={"status": "succeeded"}, headers=admin(tenant))
            items: list[Any] = r.json()["items"]
            return items

        [delivery] = await eventually(succeeded, lambda items: len(items) == 1, seconds=60)
        assert [a["status_code"] for a in delivery["attempts"]] == [500, 500, 200]
        requests = receiver.at(path)
        assert len(requests) == 3
        assert {r.headers["webhook-id"] for r in requests} == {delivery["event_id"]}
        failed = await http.get(url, params={"status": "failed"}, headers=admin(tenant))
        assert failed.json()["items"] == []


async def test_a_tenant_never_sees_another_tenants_events(
    stack: Any, webhooks: str, receiver: Receiver
) -> None:
    first, second = (f"wh-{uuid.uuid4().hex[:6]}" for _ in range(2))
    async with httpx.AsyncClient(timeout=10) as http:
        await register(http, webhooks, first, receiver.url(f"/{first}/all"), ["*"])
        await register(http, webhooks, second, receiver.url(f"/{second}/all"), ["*"])
        await check_in(http, stack, first)
        await check_in(http, stack, second)

        async def both() -> tuple[list[Received], list[Received]]:
            return receiver.at(f"/{first}/all"), receiver.at(f"/{second}/all")

        def completed(requests: list[Received]) -> list[Any]:
            documents = [json.loads(r.body) for r in requests]
            return [d for d in documents if d["type"] == "mandaact.action.completed.v1"]

        await eventually(both, lambda got: all(completed(g) for g in got), seconds=60)
        await asyncio.sleep(1.0)  # anything that would leak across tenants has had time to arrive
        for tenant, requests in zip((first, second), await both(), strict=True):
            tenants = {json.loads(r.body)["tenantid"] for r in requests}
            assert tenants == {tenant}


async def test_a_dead_endpoint_does_not_delay_another(
    stack: Any, webhooks: str, receiver: Receiver
) -> None:
    tenant = f"wh-{uuid.uuid4().hex[:6]}"
    dead, alive = f"/{tenant}/dead", f"/{tenant}/alive"
    receiver.scripts[dead] = [0]
    checks = 6
    async with httpx.AsyncClient(timeout=10) as http:
        await register(http, webhooks, tenant, receiver.url(dead), ["action.completed"])
        await register(http, webhooks, tenant, receiver.url(alive), ["action.completed"])
        started = time.monotonic()
        await check_in(http, stack, tenant, checks)
        checked_in = time.monotonic()

        async def live() -> list[Received]:
            return receiver.at(alive)

        got = await eventually(live, lambda r: len(r) >= checks, seconds=60)
        # The dead endpoint holds its attempts for ATTEMPT_TIMEOUT_S each, two at a time: sent
        # one after another behind it, the live one's six would wait at least 3 × 8 s.
        last = max(r.at for r in got) - checked_in
        assert last < ATTEMPT_TIMEOUT_S, f"the live endpoint's last delivery came {last:.1f} s late"
        assert len(receiver.at(dead)) >= 1  # the dead endpoint was being tried meanwhile
        assert started < checked_in
