"""Read-your-writes across services (SPEC §12) over the whole stack, with no sleep or poll in
the client: each request passes the `MandaAct-Consistency` token of the write before it."""

from __future__ import annotations

import time
import uuid
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.e2e.helpers import auth, grid

pytestmark = pytest.mark.e2e

HEADER = "MandaAct-Consistency"


def token_of(response: httpx.Response) -> str:
    value: str | None = response.headers.get(HEADER)
    assert value, f"no {HEADER} on {response.request.method} {response.request.url}"
    return value


async def test_a_client_reads_its_own_writes_in_other_services_at_once(stack: Any) -> None:
    headers = auth(f"ryw-{uuid.uuid4().hex[:8]}", "una")
    async with httpx.AsyncClient(timeout=30) as http:
        # A grid, and at once a check-in of one of its actions (checkins' read model).
        created = await http.post(
            f"{stack.url('goals')}/v1/mandalarts", json=grid(1, 2), headers=headers
        )
        assert created.status_code == 201, created.text
        action = created.json()["sub_goals"][0]["actions"][0]["id"]
        checked = await http.put(
            f"{stack.url('checkins')}/v1/checkins/{action}",
            headers={**headers, HEADER: token_of(created)},
        )
        assert checked.status_code == 201, checked.text

        # The XP of that check-in, read at once in gamification.
        progress = await http.get(
            f"{stack.url('gamification')}/v1/me/progress",
            headers={**headers, HEADER: token_of(checked)},
        )
        assert progress.status_code == 200, progress.text
        assert progress.json()["xp_total"] > 0

        # A new timezone, and at once the checklist of "today" there (several tokens at once).
        for zone in ("Pacific/Kiritimati", "Pacific/Pago_Pago"):  # UTC+14 and UTC-11
            moved = await http.put(
                f"{stack.url('goals')}/v1/me", json={"timezone": zone}, headers=headers
            )
            assert moved.status_code == 200, moved.text
            tokens = f"{token_of(created)}, {token_of(moved)}"
            checklist = await http.get(
                f"{stack.url('checkins')}/v1/checklist", headers={**headers, HEADER: tokens}
            )
            assert checklist.status_code == 200, checklist.text
            assert checklist.json()["date"] == datetime.now(ZoneInfo(zone)).date().isoformat()


async def test_a_token_whose_events_never_arrive_gets_503_after_the_bound(stack: Any) -> None:
    headers = auth(f"ryw-{uuid.uuid4().hex[:8]}", "vic")
    async with httpx.AsyncClient(timeout=30) as http:
        created = await http.post(
            f"{stack.url('goals')}/v1/mandalarts", json=grid(1, 1), headers=headers
        )
        action = created.json()["sub_goals"][0]["actions"][0]["id"]
        checked = await http.put(
            f"{stack.url('checkins')}/v1/checkins/{action}",
            headers={**headers, HEADER: token_of(created)},
        )
        assert checked.status_code == 201, checked.text
        stack.procs.pop("gamification-worker").stop(timeout=20)
        try:
            again = await http.delete(
                f"{stack.url('checkins')}/v1/checkins/{action}", headers=headers
            )
            assert again.status_code in (200, 204), again.text
            start = time.monotonic()
            behind = await http.get(
                f"{stack.url('gamification')}/v1/me/progress",
                headers={**headers, HEADER: token_of(again)},
            )
            waited = time.monotonic() - start
        finally:
            stack.start("gamification", "worker")
        assert behind.status_code == 503, behind.text
        assert behind.headers["Retry-After"] == "1"
        problem = behind.json()
        assert problem["type"].endswith("/not-yet-consistent")
        assert "checkins" in problem["detail"]
        assert 1.9 <= waited < 10, waited
        # A read without the token answers at once; the other user's tokens are ignored.
        assert (
            await http.get(f"{stack.url('gamification')}/v1/me/progress", headers=headers)
        ).status_code == 200
        other = auth(f"ryw-{uuid.uuid4().hex[:8]}", "wes")
        ignored = await http.get(
            f"{stack.url('gamification')}/v1/me/progress",
            headers={**other, HEADER: token_of(again)},
        )
        assert ignored.status_code == 200
