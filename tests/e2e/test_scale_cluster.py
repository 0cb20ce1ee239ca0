"""Scale-out: the whole stack on a 3-broker KRaft cluster with 2 instances of every worker.

Check-ins go on while one broker is SIGKILLed and one instance of each worker is killed and
started again (consumer groups rebalance twice). Afterwards every acknowledged check-in is
credited exactly once, and the XP, the weekly reports and the notifications are the same as
the same check-ins give on the session's one-broker stack without faults.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from mandaact_common.domain.calendar import iso_week
from mandaact_contracts import topics
from tests.e2e.conftest import SERVICES, Stack
from tests.e2e.helpers import (
    auth,
    create_grid_and_wait_for_checklist,
    eventually,
    grid,
    wait_until_consumed,
)

pytestmark = [pytest.mark.e2e, pytest.mark.scale]

SEOUL = ZoneInfo("Asia/Seoul")
DAILY_CAP = 4  # notifications a user and local date (docs/notifications.md)
USERS = ("ann", "ben", "cat")
WORKERS = 2
CLOCK_ENV = "MANDAACT_NOTIFICATIONS_CLOCK_FILE"
# The reports scheduler makes one pass as a worker starts, then none during the test: the
# compared reports are written on request once every event is in.
QUIET = {"MANDAACT_REPORT_POLL": "3600"}
# What each group reads, so "consumed" means every result below is final.
GROUPS = {
    "gamification": [topics.ACTION_COMPLETED, topics.GOAL_CHANGED],
    "reports": [topics.ACTION_COMPLETED, topics.GOAL_CHANGED],
    "notifications": [topics.GOAL_CHANGED, topics.BADGE_UNLOCKED, topics.LEVEL_REACHED],
}


def seoul_today() -> date:
    return datetime.now(UTC).astimezone(SEOUL).date()


def last_monday() -> date:
    today = seoul_today()
    return today - timedelta(days=today.weekday() + 7)


def plan(user: int) -> list[tuple[int, int]]:
    """(action index, day offset from last week's Monday) of a user's check-ins: a different
    pattern per user, 9-11 check-ins each, some days with all four actions (perfect days)."""
    days = {0: [0, 1, 2, 3], 1: [1, 3], 2: [0], 3: [0, 1, 2, 3], 4: [2], 5: [3, 0], 6: [1]}
    return [
        (action, offset)
        for offset, actions in days.items()
        for action in actions
        if (offset + action + user) % 5 != 0
    ]


def this_weeks_plan(user: int) -> list[tuple[int, date]]:
    """(action index, date) of a user's check-ins this week, up to today."""
    today = seoul_today()
    monday = today - timedelta(days=today.weekday())
    days = [monday + timedelta(days=n) for n in range((today - monday).days + 1)]
    return [(action, day) for day in days for action in range(4) if (action + user) % 2 == 0]


Notified = tuple[str, str, str, str, str]
"""A notification as a user sees it: kind, title, body, deep link, local date."""


@dataclass
class Observed:
    """What the users see once everything converged, with ids replaced by positions."""

    ledgers: dict[str, list[tuple[str, int, str | None, int | None]]]
    progress: dict[str, tuple[int, int]]
    reports: dict[str, dict[str, Any]]
    notifications: dict[str, list[Notified]]
    acknowledged: dict[str, Counter[tuple[int, str]]]
    # The deep links of what the user earned that a notification tells: every badge unlocked,
    # and the progress screen once a level past the first is reached.
    told_of: dict[str, set[str]] = field(default_factory=dict)


def without_ids(node: Any) -> Any:
    """The report with grid ids (different in every run) left out."""
    if isinstance(node, dict):
        return {k: without_ids(v) for k, v in node.items() if k != "mandalart_id"}
    if isinstance(node, list):
        return [without_ids(item) for item in node]
    return node


def spread_tenant(partitions: int = 3) -> str:
    """A new tenant whose users' keys (`<tenant>:<user>`) fall on different partitions, so both
    instances of every worker have work and the killed broker led some of it."""
    from aiokafka.partitioner import DefaultPartitioner

    every = list(range(partitions))
    while True:
        tenant = f"scale-{uuid.uuid4().hex[:6]}"
        placed = {DefaultPartitioner()(f"{tenant}:{u}".encode(), every, every) for u in USERS}
        if len(placed) == len(USERS):
            return tenant


def of_earnings(notifications: list[Notified]) -> list[Notified]:
    """The badge and level notifications (when a report's comes depends on the run)."""
    return [n for n in notifications if n[0] != "report_ready"]


def write_clock(path: Path, instant: datetime | None) -> None:
    path.write_text("" if instant is None else instant.astimezone(UTC).isoformat())


async def run_scenario(
    stack: Stack, faults: Callable[[int], Awaitable[None]] | None = None
) -> Observed:
    """Three users check in on this week's and last week's days (`faults(0)` and `faults(1)`
    between three batches), then wait for every consumer group and read what they see."""
    tenant = spread_tenant()
    monday = last_monday()
    week = iso_week(monday)
    headers = {name: auth(tenant, name) for name in USERS}
    acknowledged: dict[str, Counter[tuple[int, str]]] = {name: Counter() for name in USERS}
    actions: dict[str, list[str]] = {}
    async with httpx.AsyncClient(timeout=60) as http:
        for name in USERS:
            actions[name] = await create_grid_and_wait_for_checklist(
                http, stack, headers[name], grid(2, 2)
            )
        # This week's check-ins first, around the broker kill: a report of an unfinished week
        # is never written. Last week's, whose reports are compared, only after the workers
        # came back: a reports worker writes every due report as it starts, and a report once
        # written stays as it is.
        this_week = [
            (name, action, day)
            for index, name in enumerate(USERS)
            for action, day in this_weeks_plan(index)
        ]
        half = len(this_week) // 2
        last_week = [
            (name, action, monday + timedelta(days=offset))
            for index, name in enumerate(USERS)
            for action, offset in plan(index)
        ]
        work = [*this_week, *last_week]
        for phase, batch in enumerate((this_week[:half], this_week[half:], last_week)):
            for name, action, day in batch:
                r = await http.put(
                    f"{stack.url('checkins')}/v1/checkins/{actions[name][action]}",
                    params={"date": day.isoformat()},
                    headers=headers[name],
                )
                assert r.status_code == 201, r.text  # acknowledged: it must be credited
                acknowledged[name][(action, day.isoformat())] += 1
            if faults is not None and phase < 2:
                await faults(phase)

        async def checkin_credits() -> int:
            total = 0
            for name in USERS:
                r = await http.get(
                    f"{stack.url('gamification')}/v1/me/xp-ledger",
                    params={"limit": 200},
                    headers=headers[name],
                )
                assert r.status_code == 200, r.text
                total += sum(1 for e in r.json()["items"] if e["reason"] == "checkin")
            return total

        await eventually(checkin_credits, lambda n: n >= len(work), 120)
        for group, group_topics in GROUPS.items():
            await wait_until_consumed(stack.infra.bootstrap_servers, group, group_topics, 120)
        await asyncio.sleep(1.0)  # timed notifications claimed right after the last event

        observed = Observed({}, {}, {}, {}, acknowledged)
        for name in USERS:
            position = {action_id: i for i, action_id in enumerate(actions[name])}
            r = await http.get(
                f"{stack.url('gamification')}/v1/me/xp-ledger",
                params={"limit": 200},
                headers=headers[name],
            )
            observed.ledgers[name] = sorted(
                (
                    e["reason"],
                    e["amount"],
                    e["local_date"],
                    position.get(e["action_id"]) if e.get("action_id") else None,
                )
                for e in r.json()["items"]
            )
            progress = (
                await http.get(f"{stack.url('gamification')}/v1/me/progress", headers=headers[name])
            ).json()
            observed.progress[name] = (progress["xp_total"], progress["level"])
            observed.told_of[name] = {
                f"mandaact://badges/{b['code']}" for b in progress["badges"]
            } | ({"mandaact://progress"} if progress["level"] > 1 else set())
            created = await http.post(
                f"{stack.url('reports')}/v1/reports/weekly/{week}/generate", headers=headers[name]
            )
            # 200: the reports worker may have made it already (its weekly job)
            assert created.status_code in (200, 201), created.text
            report = (
                await http.get(
                    f"{stack.url('reports')}/v1/reports/weekly/{week}", headers=headers[name]
                )
            ).json()
            observed.reports[name] = without_ids(
                {k: report[k] for k in ("week", "stats", "generator")}
            )
            listed = await http.get(
                f"{stack.url('notifications')}/v1/me/notifications", headers=headers[name]
            )
            assert listed.status_code == 200, listed.text
            observed.notifications[name] = sorted(
                (n["kind"], n["title"], n["body"], n["deep_link"], n["local_date"])
                for n in listed.json()["items"]
            )
    return observed


def stack_env(infra: Any) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": infra.bootstrap_servers,
        "MONGODB_URL": infra.mongodb_url,
        "MANDAACT_ENV": "test",
        "MANDAACT_DB_PREFIX": f"e2e_{uuid.uuid4().hex[:8]}",
        "MANDAACT_RELAY_POLL": "0.05",
        "MANDAACT_BACKFILL_DAYS": "14",
        "OPENAI_API_KEY": "",
    }


@pytest.fixture(scope="module")
def noon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A notifications clock file at noon in Seoul today: badge and level notifications go out
    at once (outside quiet hours) and no daily reminder or streak warning is due yet."""
    path = tmp_path_factory.mktemp("clock") / "notifications-clock"
    write_clock(path, datetime(*seoul_today().timetuple()[:3], 12, tzinfo=SEOUL))
    yield path
    write_clock(path, None)


@pytest.fixture(scope="module")
def one_broker(stack: Stack, noon: Path) -> Iterator[Stack]:
    """The session's one-broker stack, its notifications worker on the noon clock."""
    for service in ("notifications", "reports"):
        stack.procs.pop(f"{service}-worker").stop(timeout=20)
        stack.start(service, "worker", {CLOCK_ENV: str(noon), **QUIET})
    yield stack
    for service in ("notifications", "reports"):
        stack.procs.pop(f"{service}-worker").stop(timeout=20)
        stack.start(service, "worker")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, noon: Path) -> Iterator[Stack]:
    """A 3-broker cluster (RF 3, min.insync.replicas 2), its own MongoDB-compatible server, and
    every service's API with two instances of its worker."""
    from mandaact_devstack import free_port, start_test_infra

    base = tmp_path_factory.mktemp("cluster")
    infra = start_test_infra(base / "infra", brokers=3, use_docker=False)
    stack = Stack(infra, base / "run", stack_env(infra), {s: free_port() for s in SERVICES})
    clocked = {CLOCK_ENV: str(noon), **QUIET}
    try:
        for service in SERVICES:
            for instance in range(1, WORKERS + 1):
                stack.start(service, "worker", clocked, instance=instance)
            stack.start(service, "api", clocked, wait=False)
        for service in SERVICES:
            stack.wait_ready(service)
        yield stack
    finally:
        stack.stop_all()
        infra.stop()


async def test_topics_on_the_cluster_are_replicated_three_times_with_two_in_sync(
    cluster: Stack,
) -> None:
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    admin = AIOKafkaAdminClient(bootstrap_servers=cluster.infra.bootstrap_servers)
    await admin.start()
    try:
        [described] = await admin.describe_topics([topics.ACTION_COMPLETED])
        [config] = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topics.ACTION_COMPLETED)]
        )
    finally:
        await admin.close()
    assert {len(p["replicas"]) for p in described["partitions"]} == {3}
    assert {p["leader"] for p in described["partitions"]} == {1, 2, 3}  # spread over all
    values = {entry[0]: entry[1] for entry in config.resources[0][4]}
    assert values["min.insync.replicas"] == "2"


async def test_check_ins_survive_a_broker_kill_and_worker_restarts_exactly_once(
    cluster: Stack, one_broker: Stack, noon: Path
) -> None:
    async def faults(phase: int) -> None:
        if phase == 0:
            cluster.infra.kill_broker(2)  # it leads a third of every topic's partitions
            return
        for service in SERVICES:  # rebalances: one instance of every worker dies...
            cluster.kill(service, "worker", instance=1)
        await asyncio.sleep(1.0)
        for service in SERVICES:  # ...and comes back
            cluster.start(service, "worker", {CLOCK_ENV: str(noon), **QUIET})

    faulty = await run_scenario(cluster, faults)
    assert cluster.infra.cluster().running() == [1, 3]  # broker 2 stayed down to the end
    reference = await run_scenario(one_broker)

    for name in USERS:
        assert all(n == 1 for n in faulty.acknowledged[name].values())
        credited = Counter(
            (action, day)
            for reason, _amount, day, action in faulty.ledgers[name]
            if reason == "checkin" and action is not None and day is not None
        )
        assert credited == faulty.acknowledged[name], name  # each check-in exactly once
    assert faulty.ledgers == reference.ledgers
    assert faulty.progress == reference.progress
    differing = {
        (name, key): (value, reference.reports[name]["stats"].get(key))
        for name in USERS
        for key, value in faulty.reports[name]["stats"].items()
        if reference.reports[name]["stats"].get(key) != value
    }
    assert not differing, differing
    assert faulty.reports == reference.reports
    # Notifications: at most DAILY_CAP (4) a user and local date, whatever the kind, and which
    # ones fill the cap is the order their events (badge.unlocked, level.reached,
    # report.generated: other topics, other partitions) are processed in, which no two runs
    # share; a report's may come before the badges' (a reports worker that restarts writes what
    # is due). So, on both runs: all on today's date, never more than the cap, each badge or
    # level one of something earned and none twice, and as many of those as the cap leaves.
    assert faulty.told_of == reference.told_of
    for observed in (faulty, reference):
        for name in USERS:
            every = observed.notifications[name]
            told = of_earnings(every)
            links = [deep_link for _kind, _title, _body, deep_link, _date in told]
            assert len(set(links)) == len(links), told  # never twice
            assert set(links) <= observed.told_of[name], told  # only what was earned
            assert len({local_date for *_rest, local_date in every}) == 1, every  # all today
            assert len(every) <= DAILY_CAP, every
            room = DAILY_CAP - (len(every) - len(told))
            assert len(told) == min(room, len(observed.told_of[name])), (name, every)
    assert any(faulty.notifications.values())  # badges and levels were told
