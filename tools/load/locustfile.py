"""Locust load test of the local stack (`make load`; docs/benchmarks.md, "Load").

Each simulated user gets its own dev token (tenant `load-<run>-t<k>`, `LOAD_USERS_PER_TENANT`
users a tenant so leaderboards have rows), creates one full 8x8 grid of daily routines through
the goals API, waits until the checkins read model shows it on the checklist, then runs a
weighted mix: checklist, check, undo, progress, leaderboard, weekly report.

Writes stay far below the per-user rate limit (20/s, burst 40): a user waits 0.5-1.5 s between
tasks and about a third of its tasks write. The 3-changes-per-action-per-date rule is tracked
client side, so no request is refused by it; once a user's 64 actions x 2 dates x 3 changes are
spent, its check and undo tasks do nothing and only reads go on.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import time
import uuid
from typing import Any
from zoneinfo import ZoneInfo

from locust import HttpUser, between, events, task
from locust.env import Environment
from locust.exception import StopUser

from mandaact_common.auth import mint_token
from mandaact_common.settings import DEV_JWT_SECRET

BASE = os.environ.get("LOAD_BASE", "http://127.0.0.1")
GOALS = f"{BASE}:{os.environ.get('LOAD_GOALS_PORT', '8001')}"
CHECKINS = f"{BASE}:{os.environ.get('LOAD_CHECKINS_PORT', '8002')}"
GAMIFICATION = f"{BASE}:{os.environ.get('LOAD_GAMIFICATION_PORT', '8003')}"
REPORTS = f"{BASE}:{os.environ.get('LOAD_REPORTS_PORT', '8004')}"
USERS_PER_TENANT = max(1, int(os.environ.get("LOAD_USERS_PER_TENANT", "8")))
READY_TIMEOUT_S = float(os.environ.get("LOAD_READY_TIMEOUT_S", "60"))
MAX_CHANGES = 3  # check/undo changes per action per date (docs/checkins.md, rule 6)
TZ = ZoneInfo("Asia/Seoul")  # the default timezone of a user who never saved settings
RUN = uuid.uuid4().hex[:8]
_serial = 0


def _token(tenant: str, user: str) -> str:
    audiences = [a.strip() for a in os.environ.get("MANDAACT_JWT_AUDIENCE", "").split(",")]
    return mint_token(
        os.environ.get("MANDAACT_JWT_SECRET", "").strip() or DEV_JWT_SECRET,
        tenant,
        user,
        audience=next((a for a in audiences if a), None),
        issuer=os.environ.get("MANDAACT_JWT_ISSUER", "").strip() or None,
    )


def _grid() -> dict[str, Any]:
    return {
        "title": "Load test",
        "sub_goals": [
            {
                "position": s,
                "title": f"Sub-goal {s}",
                "actions": [
                    {
                        "position": a,
                        "title": f"Action {s}.{a}",
                        "type": "routine",
                        "schedule": {"frequency": "daily"},
                    }
                    for a in range(1, 9)
                ],
            }
            for s in range(1, 9)
        ],
    }


class MandalartUser(HttpUser):
    host = GOALS
    wait_time = between(0.5, 1.5)

    def on_start(self) -> None:
        global _serial
        n = _serial
        _serial += 1
        tenant = f"load-{RUN}-t{n // USERS_PER_TENANT}"
        self.client.headers["Authorization"] = f"Bearer {_token(tenant, f'u{n}')}"
        today = dt.datetime.now(TZ).date()
        self.dates = [today.isoformat(), (today - dt.timedelta(days=1)).isoformat()]
        monday = today - dt.timedelta(days=today.weekday() + 7)
        year, week, _ = monday.isocalendar()
        self.last_week = f"{year}-W{week:02d}"
        with self.client.post(
            f"{GOALS}/v1/mandalarts",
            json=_grid(),
            headers={"Idempotency-Key": uuid.uuid4().hex},
            name="/v1/mandalarts (setup)",
            catch_response=True,
        ) as resp:
            if resp.status_code != 201:
                resp.failure(f"grid not created: {resp.status_code} {resp.text[:200]}")
                raise StopUser()
            grid = resp.json()
        self.grid_id: str = grid["id"]
        self.actions: list[str] = [a["id"] for sg in grid["sub_goals"] for a in sg["actions"]]
        self.changes: dict[tuple[str, str], int] = {}
        self.done: set[tuple[str, str]] = set()
        self._wait_for_checklist()

    def _wait_for_checklist(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            resp = self.client.get(f"{CHECKINS}/v1/checklist", name="/v1/checklist (wait for grid)")
            if resp.ok and any(i["mandalart_id"] == self.grid_id for i in resp.json()["items"]):
                return
            time.sleep(0.25)  # cooperative: Locust monkey-patches with gevent
        raise StopUser()

    @task(4)
    def checklist(self) -> None:
        self.client.get(f"{CHECKINS}/v1/checklist", name="/v1/checklist")

    @task(3)
    def check(self) -> None:
        free = [
            (a, d)
            for a in self.actions
            for d in self.dates
            if (a, d) not in self.done and self.changes.get((a, d), 0) < MAX_CHANGES
        ]
        if not free:
            return
        key = random.choice(free)
        resp = self.client.put(
            f"{CHECKINS}/v1/checkins/{key[0]}",
            params={"date": key[1]},
            name="/v1/checkins/[action_id]",
        )
        if resp.status_code == 201:
            self.changes[key] = self.changes.get(key, 0) + 1
            self.done.add(key)
        elif resp.status_code == 200:
            self.done.add(key)

    @task(1)
    def undo(self) -> None:
        undoable = [k for k in self.done if self.changes.get(k, 0) < MAX_CHANGES]
        if not undoable:
            return
        key = random.choice(undoable)
        resp = self.client.delete(
            f"{CHECKINS}/v1/checkins/{key[0]}",
            params={"date": key[1]},
            name="/v1/checkins/[action_id]",
        )
        if resp.status_code == 204:
            self.changes[key] = self.changes.get(key, 0) + 1
            self.done.discard(key)

    @task(2)
    def progress(self) -> None:
        self.client.get(f"{GAMIFICATION}/v1/me/progress", name="/v1/me/progress")

    @task(1)
    def leaderboard(self) -> None:
        self.client.get(
            f"{GAMIFICATION}/v1/leaderboard",
            params={"period": "week"},
            name="/v1/leaderboard",
        )

    @task(1)
    def weekly_report(self) -> None:
        # Last week's report: 404 until generated (a fresh load user has none), which is the
        # documented answer, so it counts as a success; anything else but 200 is a failure.
        with self.client.get(
            f"{REPORTS}/v1/reports/weekly/{self.last_week}",
            name="/v1/reports/weekly/[iso_week]",
            catch_response=True,
        ) as resp:
            if resp.status_code in (200, 404):
                resp.success()
            else:
                resp.failure(f"{resp.status_code} {resp.text[:200]}")


def _summary(environment: Environment, **_kwargs: Any) -> None:
    """A compact table: requests/s and p50/p95/p99 (ms) per endpoint, after Locust's own."""
    stats = environment.stats
    rows = [*sorted(stats.entries.values(), key=lambda e: e.name), stats.total]
    print()
    print(
        f"{'endpoint':<44} {'reqs':>7} {'fails':>6} {'req/s':>7} {'p50':>6} {'p95':>6} {'p99':>6}"
    )
    for e in rows:
        name = "Aggregated" if e is stats.total else f"{e.method} {e.name}"
        print(
            f"{name:<44.44} {e.num_requests:>7} {e.num_failures:>6} {e.total_rps:>7.1f}"
            f" {e.get_response_time_percentile(0.5):>6.0f}"
            f" {e.get_response_time_percentile(0.95):>6.0f}"
            f" {e.get_response_time_percentile(0.99):>6.0f}"
        )


events.quitting.add_listener(_summary)
