"""Notifications on the whole stack, with the notifications service's clock moved by the test.

The other services run on the real clock: check-ins are backfilled onto the three days before
today, so gamification's streak is 3 when "today" ends in Seoul. The notifications worker reads
its time from a file (`MANDAACT_NOTIFICATIONS_CLOCK_FILE`, test mode only) that the test writes.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from mandaact_contracts import topics
from tests.e2e.helpers import auth, create_grid_and_wait_for_checklist, eventually, grid

pytestmark = pytest.mark.e2e

SEOUL = ZoneInfo("Asia/Seoul")
CONSUMED = [
    topics.GOAL_CHANGED,
    topics.ACTION_COMPLETED,
    topics.STREAK_CHANGED,
    topics.BADGE_UNLOCKED,
    topics.LEVEL_REACHED,
]


def seoul(day: date, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=SEOUL)


@pytest.fixture(scope="module")
def clock_file(stack: Any) -> Iterator[Path]:
    """Two notifications workers on a clock file (empty again afterwards: real time)."""
    from mandaact_devstack import start_service

    path = Path(stack.run_dir) / "notifications-clock"
    path.write_text("")
    clocked = {"MANDAACT_NOTIFICATIONS_CLOCK_FILE": str(path), "MANDAACT_NOTIFICATIONS_POLL": "0.2"}
    stack.procs.pop("notifications-worker").stop(timeout=20)
    stack.start("notifications", "worker", clocked)
    env = {**stack.env, "MANDAACT_MONGODB_DATABASE": stack.database("notifications"), **clocked}
    second = start_service(
        "notifications", "worker", env, run_dir=Path(stack.run_dir) / "second", die_with_parent=True
    )
    try:
        yield path
    finally:
        path.write_text("")
        second.stop(timeout=20)


def set_clock(path: Path, instant: datetime) -> None:
    path.write_text(instant.astimezone(UTC).isoformat())


async def caught_up(bootstrap: str, group: str, seconds: float = 60) -> None:
    """Wait until `group` has committed every record now on the topics it reads here."""
    from aiokafka import AIOKafkaConsumer
    from aiokafka.admin import AIOKafkaAdminClient

    from mandaact_common.kafka import partitions_of

    parts = await partitions_of(bootstrap, CONSUMED)
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await reader.start()
    try:
        ends = {tp: end for tp, end in (await reader.end_offsets(parts)).items() if end > 0}
    finally:
        await reader.stop()
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:

        async def committed() -> dict[Any, int]:
            offsets = await admin.list_consumer_group_offsets(group)
            return {tp: meta.offset for tp, meta in offsets.items()}

        await eventually(
            committed, lambda got: all(got.get(tp, -1) >= end for tp, end in ends.items()), seconds
        )
    finally:
        await admin.close()


async def requested_on_kafka(bootstrap: str, tenant: str) -> list[dict[str, Any]]:
    """Every `notification.requested` of this tenant now on the topic."""
    from aiokafka import AIOKafkaConsumer

    from mandaact_common.kafka import partitions_of
    from mandaact_contracts.envelope import from_kafka

    parts = await partitions_of(bootstrap, [topics.NOTIFICATION_REQUESTED])
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await reader.start()
    try:
        reader.assign(parts)
        await reader.seek_to_beginning(*parts)
        ends = await reader.end_offsets(parts)
        found: list[dict[str, Any]] = []

        async def behind() -> bool:
            return any([await reader.position(tp) < end for tp, end in ends.items()])

        while await behind():
            batches = await reader.getmany(timeout_ms=1000)
            for records in batches.values():
                for record in records:
                    envelope = from_kafka(list(record.headers), record.value or b"")
                    if envelope.tenant_id == tenant:
                        found.append(dict(envelope.data))
        return found
    finally:
        await reader.stop()


async def notifications_of(
    http: httpx.AsyncClient, stack: Any, headers: dict[str, str]
) -> list[dict[str, Any]]:
    r = await http.get(f"{stack.url('notifications')}/v1/me/notifications", headers=headers)
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


async def check_in(
    http: httpx.AsyncClient, stack: Any, headers: dict[str, str], action: str, day: date
) -> None:
    r = await http.put(
        f"{stack.url('checkins')}/v1/checkins/{action}",
        params={"date": day.isoformat()},
        headers=headers,
    )
    assert r.status_code == 201, r.text


async def test_streak_at_risk_at_21_seoul_and_a_badge_at_23_waits_for_08(
    stack: Any, clock_file: Path
) -> None:
    tenant = f"notify-{uuid.uuid4().hex[:6]}"
    bob, carol, dana = (auth(tenant, name) for name in ("bob", "carol", "dana"))
    today = datetime.now(UTC).astimezone(SEOUL).date()
    bootstrap = stack.infra.bootstrap_servers
    # What happens while the check-ins are made is told on yesterday's date.
    set_clock(clock_file, seoul(today - timedelta(days=1), 12))
    async with httpx.AsyncClient(timeout=30) as http:
        for headers, days in ((bob, (3, 2, 1)), (carol, (3, 2, 1, 0))):
            [action] = await create_grid_and_wait_for_checklist(http, stack, headers, grid(1, 1))
            for back in days:
                await check_in(http, stack, headers, action, today - timedelta(days=back))

        async def streak(headers: dict[str, str]) -> int:
            r = await http.get(f"{stack.url('gamification')}/v1/me/progress", headers=headers)
            current: int = r.json()["streak"]["current"]
            return current

        await eventually(lambda: streak(bob), lambda s: s == 3)
        await eventually(lambda: streak(carol), lambda s: s == 4)
        await caught_up(bootstrap, "notifications")
        before = {n["id"] for n in await notifications_of(http, stack, bob)}

        set_clock(clock_file, seoul(today, 21, 0, 30))
        told = await eventually(
            lambda: notifications_of(http, stack, bob),
            lambda items: any(n["kind"] == "streak_at_risk" for n in items),
        )
        at_risk = next(n for n in told if n["kind"] == "streak_at_risk")
        assert at_risk["local_date"] == today.isoformat()
        assert at_risk["deep_link"] == "mandaact://checklist"
        assert "3" in at_risk["body"]
        assert all(n["local_date"] == today.isoformat() for n in told if n["id"] not in before)
        await asyncio.sleep(1.0)  # carol's rows were due at the same instant
        assert all(
            n["kind"] != "streak_at_risk" for n in await notifications_of(http, stack, carol)
        )

        # Dana's first check-in at 23:00: its badge waits for the end of quiet hours.
        set_clock(clock_file, seoul(today, 23))
        [action] = await create_grid_and_wait_for_checklist(http, stack, dana, grid(1, 1))
        await check_in(http, stack, dana, action, today)
        await eventually(lambda: streak(dana), lambda s: s == 1)
        await caught_up(bootstrap, "notifications")
        set_clock(clock_file, seoul(today + timedelta(days=1), 7, 59))
        await asyncio.sleep(1.0)
        assert await notifications_of(http, stack, dana) == []

        set_clock(clock_file, seoul(today + timedelta(days=1), 8, 0, 30))
        morning = await eventually(
            lambda: notifications_of(http, stack, dana),
            lambda items: any(n["kind"] == "badge_unlocked" for n in items),
        )
        badges = [n for n in morning if n["kind"] == "badge_unlocked"]
        assert all(n["local_date"] == (today + timedelta(days=1)).isoformat() for n in badges)
        assert all(n["deep_link"].startswith("mandaact://badges/") for n in badges)


async def test_two_workers_together_send_each_reminder_once(stack: Any, clock_file: Path) -> None:
    tenant = f"notify2-{uuid.uuid4().hex[:6]}"
    users = [f"user{n}" for n in range(6)]
    day = datetime.now(UTC).astimezone(SEOUL).date() + timedelta(days=2)
    set_clock(clock_file, seoul(day, 12))
    async with httpx.AsyncClient(timeout=30) as http:
        for user in users:
            await create_grid_and_wait_for_checklist(http, stack, auth(tenant, user), grid(1, 1))
        await caught_up(stack.infra.bootstrap_servers, "notifications")

        set_clock(clock_file, seoul(day, 20, 0, 30))
        for user in users:
            headers = auth(tenant, user)

            async def listed(headers: dict[str, str] = headers) -> list[dict[str, Any]]:
                return await notifications_of(http, stack, headers)

            await eventually(listed, lambda items: [n["kind"] for n in items] == ["daily_reminder"])
    told = await eventually(
        lambda: requested_on_kafka(stack.infra.bootstrap_servers, tenant),
        lambda found: len(found) >= len(users),
    )
    await asyncio.sleep(2.0)  # both workers polled many times since
    told = await requested_on_kafka(stack.infra.bootstrap_servers, tenant)
    assert sorted(n["user_id"] for n in told) == users
    assert {n["kind"] for n in told} == {"daily_reminder"}
    assert {n["local_date"] for n in told} == {day.isoformat()}


async def test_the_service_serves_its_ops_endpoints(stack: Any) -> None:
    async with httpx.AsyncClient(base_url=stack.url("notifications"), timeout=10) as http:
        assert (await http.get("/healthz")).json() == {"status": "ok"}
        ready = await http.get("/readyz")
        assert ready.json() == {"status": "ready", "mongodb": True, "kafka": True}
        assert "mandaact_http_requests_total" in (await http.get("/metrics")).text
        openapi = (await http.get("/openapi.json")).json()
        asyncapi = (await http.get("/asyncapi.json")).json()
    assert "/v1/me/notifications" in openapi["paths"]
    channels = " ".join(asyncapi["channels"])
    assert topics.NOTIFICATION_REQUESTED in channels
    assert topics.STREAK_CHANGED in channels
