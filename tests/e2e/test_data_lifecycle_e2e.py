"""SPEC §9 over the whole stack: a user's export and erasure, a tenant's deletion.

A user with grids, check-ins, XP, a report, a webhook delivery and notifications exports one
bundle holding all of it (`mandaact export`); after `DELETE /v1/me` completes, no document of any
service's database holds that user's id, a check-in event replayed for them changes nothing, and
the tenant's other users keep everything. A tenant's deletion leaves no document with its id.
Everything runs on the real broker and server; the only endpoint is a local HTTP receiver.
"""

from __future__ import annotations

import json
import threading
import uuid
import zipfile
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from pymongo import AsyncMongoClient

from mandaact_cli.cli import main as cli
from mandaact_common.mongo import Doc
from mandaact_common.testing import documents_naming, record_of
from mandaact_contracts import topics
from mandaact_contracts.events import ActionCompleted
from tests.e2e.helpers import (
    auth,
    create_grid_and_wait_for_checklist,
    eventually,
    grid,
    progress_of,
    wait_until_consumed,
)

pytestmark = pytest.mark.e2e

CONSUMING_GROUPS = ("gamification", "reports", "webhooks", "notifications")
"""The groups that read `action.completed`."""


@pytest.fixture(scope="module")
def receiver() -> Iterator[tuple[str, list[bytes]]]:
    """A local webhook endpoint that keeps every body it is sent."""
    bodies: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            bodies.append(self.rfile.read(int(self.headers.get("content-length", "0"))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hooks", bodies
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def webhooks(stack: Any) -> str:
    """The webhooks service on the stack (local endpoints allowed in test mode)."""
    from mandaact_devstack import free_port

    if "webhooks-api" not in stack.procs:
        stack.ports.setdefault("webhooks", free_port())
        extra = {"MANDAACT_WEBHOOKS_ALLOW_PRIVATE": "true", "MANDAACT_WEBHOOKS_POLL_S": "0.1"}
        stack.start("webhooks", "worker", extra)
        stack.start("webhooks", "api", extra)
    return str(stack.url("webhooks"))


@pytest.fixture
async def mongo(stack: Any) -> Any:
    client: AsyncMongoClient[Doc] = AsyncMongoClient(stack.infra.mongodb_url, tz_aware=True)
    try:
        yield client
    finally:
        await client.close()


async def naming(mongo: Any, stack: Any, needle: str) -> list[tuple[str, str, Any]]:
    """Every document of every database of the stack whose text holds `needle`."""
    prefix = stack.env["MANDAACT_DB_PREFIX"]
    found: list[tuple[str, str, Any]] = []
    for name in await mongo.list_database_names():
        if name.startswith(prefix):
            found += [(name, c, d) for c, d in await documents_naming(mongo[name], needle)]
    return found


def urls(stack: Any, webhooks: str) -> list[str]:
    pairs = [f"{s}={stack.url(s)}" for s in topics.ERASING_SERVICES if s != "webhooks"]
    return [arg for pair in [*pairs, f"webhooks={webhooks}"] for arg in ("--service", pair)]


async def build_a_full_user(
    http: httpx.AsyncClient, stack: Any, headers: dict[str, str], n_actions: int = 2
) -> list[str]:
    """Settings, a grid, check-ins and XP; returns the action ids."""
    settings = {"timezone": "UTC", "quiet_hours": {"from": "00:00", "to": "00:01"}}
    assert (
        await http.put(f"{stack.url('goals')}/v1/me", json=settings, headers=headers)
    ).is_success
    actions = await create_grid_and_wait_for_checklist(http, stack, headers, grid(1, n_actions))
    last_week = (date.today() - timedelta(days=7)).isoformat()  # the stack backfills 14 days
    for action in actions:
        for day in (None, last_week):
            r = await http.put(
                f"{stack.url('checkins')}/v1/checkins/{action}",
                params={"date": day} if day else None,
                headers=headers,
            )
            assert r.status_code == 201, r.text

    async def xp() -> int:
        return int((await progress_of(http, stack, headers))["xp_total"])

    await eventually(xp, lambda total: total > 0)
    return actions


async def test_a_users_export_holds_everything_and_erasure_leaves_nothing_of_them(
    stack: Any,
    webhooks: str,
    receiver: tuple[str, list[bytes]],
    mongo: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    tenant = f"lc-{uuid.uuid4().hex[:8]}"
    user, other = f"erase-me-{uuid.uuid4().hex}", f"keep-me-{uuid.uuid4().hex}"
    me, them = auth(tenant, user), auth(tenant, other)
    endpoint, bodies = receiver
    async with httpx.AsyncClient(timeout=30) as http:
        hook = await http.post(
            f"{webhooks}/v1/admin/webhooks",
            json={"url": endpoint, "event_types": [topics.ACTION_COMPLETED]},
            headers=auth(tenant, "root", roles=["admin"]),
        )
        assert hook.status_code == 201, hook.text
        await build_a_full_user(http, stack, me)
        await build_a_full_user(http, stack, them)
        week = (date.today() - timedelta(days=7)).strftime("%G-W%V")
        await wait_until_consumed(
            stack.infra.bootstrap_servers, "reports", [topics.ACTION_COMPLETED, topics.XP_AWARDED]
        )
        report = await http.post(
            f"{stack.url('reports')}/v1/reports/weekly/{week}/generate", headers=me
        )
        # 200 when the reports worker's scheduler wrote last week's report first (it catches up
        # on finished weeks): either way the report exists.
        assert report.status_code in (200, 201), report.text

        async def notified() -> list[Any]:
            r = await http.get(f"{stack.url('notifications')}/v1/me/notifications", headers=me)
            return list(r.json()["items"])

        await eventually(notified, bool, seconds=60)

        async def delivered() -> int:
            return sum(user.encode() in body for body in bodies)

        await eventually(delivered, lambda n: n >= 4, 60)

        # The export: one zip, a manifest and every service's part, all of it about the user.
        bundle = tmp_path / "export.zip"
        args = ["export", "--tenant", tenant, "--user", user, "--out", str(bundle)]
        assert cli([*args, *urls(stack, webhooks)]) == 0, capsys.readouterr().out
        with zipfile.ZipFile(bundle) as zipped:
            manifest = json.loads(zipped.read("manifest.json"))
            parts = {s: json.loads(zipped.read(f"{s}.json")) for s in topics.ERASING_SERVICES}
        assert set(manifest["parts"]) == set(topics.ERASING_SERVICES)
        assert (manifest["tenant_id"], manifest["user_id"]) == (tenant, user)
        held = {s: {c for c, docs in p["collections"].items() if docs} for s, p in parts.items()}
        assert {"users", "mandalarts"} <= held["goals"]
        assert "checkins" in held["checkins"]
        assert "ledger" in held["gamification"]
        assert "reports" in held["reports"]
        assert "deliveries" in held["webhooks"]
        assert "notifications" in held["notifications"]
        assert other not in json.dumps(parts), "nobody else's data in the bundle"

        # The erasure.
        asked = await http.delete(f"{stack.url('goals')}/v1/me", headers=me)
        assert asked.status_code == 202, asked.text

        async def deletion() -> dict[str, Any]:
            r = await http.get(f"{stack.url('goals')}/v1/me/deletion", headers=me)
            assert r.status_code == 200, r.text
            body: dict[str, Any] = r.json()
            return body

        done = await eventually(deletion, lambda d: d["status"] == "complete", seconds=120)
        assert set(done["services"]) == set(topics.ERASING_SERVICES)
        # The last answers' outbox rows leave with the relay's next round.
        assert await eventually(lambda: naming(mongo, stack, user), lambda f: f == [], 30) == []

        # A check-in event replayed for the erased user changes nothing anywhere.
        replayed = ActionCompleted(
            tenant_id=tenant,
            user_id=user,
            checkin_id=str(uuid.uuid4()),
            action_id=str(uuid.uuid4()),
            mandalart_id=str(uuid.uuid4()),
            sub_goal_position=1,
            sub_goal_title="Sub-goal 1",
            action_title="Action 1.1",
            action_type="routine",
            local_date=date.today(),
            timezone="UTC",
            occurred_at=datetime.now(UTC),
            seq=99,
        )
        record = record_of(replayed, source="checkins")
        producer = AIOKafkaProducer(
            bootstrap_servers=stack.infra.bootstrap_servers, enable_idempotence=True, acks="all"
        )
        await producer.start()
        try:
            await producer.send_and_wait(
                topics.ACTION_COMPLETED,
                record.value,
                key=record.key,
                headers=list(record.headers),
            )
        finally:
            await producer.stop()
        for group in CONSUMING_GROUPS:
            await wait_until_consumed(
                stack.infra.bootstrap_servers, group, [topics.ACTION_COMPLETED]
            )
        assert await naming(mongo, stack, user) == []
        assert (await progress_of(http, stack, me))["xp_total"] == 0

        # The tenant's other user keeps everything.
        assert (await progress_of(http, stack, them))["xp_total"] > 0
        theirs = await http.get(f"{stack.url('checkins')}/v1/me/export", headers=them)
        assert len(theirs.json()["collections"]["checkins"]) == 4
        grids = await http.get(f"{stack.url('goals')}/v1/mandalarts", headers=them)
        assert len(grids.json()["items"]) == 1
        # The erased user cannot write again (410), and leaves nothing by trying.
        refused = await http.post(f"{stack.url('goals')}/v1/mandalarts", json=grid(), headers=me)
        assert refused.status_code == 410
        assert await naming(mongo, stack, user) == []


async def test_a_tenant_deletion_leaves_no_document_with_its_id(
    stack: Any, webhooks: str, receiver: tuple[str, list[bytes]], mongo: Any
) -> None:
    tenant, kept = f"gone-{uuid.uuid4().hex}", f"stays-{uuid.uuid4().hex[:8]}"
    admin = auth(tenant, "root", roles=["admin"])
    endpoint, _ = receiver
    async with httpx.AsyncClient(timeout=30) as http:
        hook = await http.post(
            f"{webhooks}/v1/admin/webhooks",
            json={"url": endpoint, "event_types": [topics.ACTION_COMPLETED]},
            headers=admin,
        )
        assert hook.status_code == 201, hook.text
        await build_a_full_user(http, stack, auth(tenant, "ann"), n_actions=1)
        await build_a_full_user(http, stack, auth(tenant, "ben"), n_actions=1)
        await build_a_full_user(http, stack, auth(kept, "cat"), n_actions=1)
        member = auth(tenant, "ann")
        refused = await http.delete(f"{stack.url('goals')}/v1/admin/tenant", headers=member)
        assert refused.status_code == 403
        asked = await http.delete(f"{stack.url('goals')}/v1/admin/tenant", headers=admin)
        assert asked.status_code == 202, asked.text

        async def deletion() -> dict[str, Any]:
            r = await http.get(f"{stack.url('goals')}/v1/admin/tenant/deletion", headers=admin)
            assert r.status_code == 200, r.text
            body: dict[str, Any] = r.json()
            return body

        await eventually(deletion, lambda d: d["status"] == "complete", seconds=120)
        assert await eventually(lambda: naming(mongo, stack, tenant), lambda f: f == [], 30) == []
        assert (await progress_of(http, stack, auth(kept, "cat")))["xp_total"] > 0
        theirs = await http.get(f"{stack.url('checkins')}/v1/me/export", headers=auth(kept, "cat"))
        assert len(theirs.json()["collections"]["checkins"]) == 2
        again = {"url": endpoint, "event_types": [topics.ACTION_COMPLETED]}
        gone = await http.post(f"{webhooks}/v1/admin/webhooks", json=again, headers=admin)
        assert gone.status_code == 410, "a deleted tenant stores nothing again"
