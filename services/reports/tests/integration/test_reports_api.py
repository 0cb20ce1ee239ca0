"""The reports HTTP API against the real MongoDB-compatible server."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from mandaact_common.mongo import Doc
from mandaact_common.outbox import pending_events
from mandaact_contracts import topics
from reports.domain.report import report_id
from reports.store.ports import user_key

pytestmark = pytest.mark.integration

W46_MON = date(2026, 11, 9)
W47_MON = date(2026, 11, 16)


@pytest.fixture
async def alice(kit: Any, consumer: Any) -> Any:
    """Alice checked in during 2026-W46 and 2026-W47 (Seoul)."""
    u = kit.Users(user="alice", locale="en")
    await kit.feed(
        consumer,
        [
            u.settings(),
            u.grid([("Sub", [("a1", kit.DAILY)])], added=W46_MON),
            u.check("a1", W46_MON),
            u.check("a1", W47_MON),
            u.check("a1", W47_MON + timedelta(days=1)),
        ],
    )
    return u


@pytest.fixture
async def api(start_api: Any, make_settings: Any) -> Any:
    async with start_api(make_settings()) as running:
        yield running


def is_problem(response: Any, status: int) -> bool:
    return bool(
        response.status_code == status
        and response.headers["content-type"].startswith("application/problem+json")
        and response.json()["status"] == status
    )


async def test_generate_then_read_then_list(api: Any, alice: Any, kit: Any) -> None:
    headers = kit.auth(alice.tenant, alice.user)
    assert is_problem(await api.http.get("/v1/reports/weekly/2026-W47", headers=headers), 404)
    created = await api.http.post("/v1/reports/weekly/2026-W47/generate", headers=headers)
    assert created.status_code == 201
    assert created.headers["location"] == "/v1/reports/weekly/2026-W47"
    body = created.json()
    assert set(body) == {
        "week",
        "stats",
        "summary",
        "generator",
        "fallback_reason",
        "generated_at",
        "fold_version",
        "stale",
    }
    assert body["stale"] is False
    assert body["fold_version"] >= 1
    assert (body["generator"], body["fallback_reason"]) == ("fallback", "llm_not_configured")
    assert body["week"] == "2026-W47"
    assert body["stats"]["checkins_total"] == 2
    assert body["stats"]["vs_previous_week"]["checkins_total"] == 1
    assert datetime.fromisoformat(body["generated_at"]) == datetime(2026, 11, 24, 12, tzinfo=UTC)
    again = await api.http.post("/v1/reports/weekly/2026-W47/generate", headers=headers)
    assert (again.status_code, again.json()) == (200, body)
    read = await api.http.get("/v1/reports/weekly/2026-W47", headers=headers)
    assert (read.status_code, read.json()) == (200, body)

    assert (await api.http.post("/v1/reports/weekly/2026-W46/generate", headers=headers)).is_success
    listed = (await api.http.get("/v1/reports", headers=headers)).json()
    assert [i["week"] for i in listed["items"]] == ["2026-W47", "2026-W46"]
    assert listed["items"][0]["headline"] == body["summary"]["headline"]
    page = (await api.http.get("/v1/reports?limit=1", headers=headers)).json()
    assert ([i["week"] for i in page["items"]], page["next_before"]) == (["2026-W47"], "2026-W47")
    rest = (await api.http.get("/v1/reports?limit=1&before=2026-W47", headers=headers)).json()
    assert [i["week"] for i in rest["items"]] == ["2026-W46"]


async def test_report_generated_is_emitted_once_per_report(
    api: Any, alice: Any, kit: Any, db: AsyncDatabase[Doc]
) -> None:
    headers = kit.auth(alice.tenant, alice.user)
    for _ in range(3):
        await api.http.post("/v1/reports/weekly/2026-W47/generate", headers=headers)
    (row,) = await pending_events(db, topics.REPORT_GENERATED)
    payload = row["payload"]
    assert payload["report_id"] == report_id(user_key("acme", "alice"), "2026-W47")
    assert (payload["week"], payload["generator"], payload["user_id"]) == (
        "2026-W47",
        "fallback",
        "alice",
    )
    assert row["key"] == b"acme:alice"


@pytest.mark.parametrize("week", ["2026-W54", "2026-47", "W47", "2026-W00", "2026-w47", "x" * 20])
async def test_a_bad_week_is_422(api: Any, week: str, kit: Any) -> None:
    for method in ("get", "post"):
        path = f"/v1/reports/weekly/{week}" + ("/generate" if method == "post" else "")
        response = await getattr(api.http, method)(path, headers=kit.auth())
        assert is_problem(response, 422), (method, week, response.text)


async def test_only_finished_weeks_can_be_generated(
    api: Any, alice: Any, kit: Any, clock: Any
) -> None:
    headers = kit.auth(alice.tenant, alice.user)
    # 2026-W48 runs Mon 23 Nov - Sun 29 Nov; the clock says Tue 24 Nov.
    for week in ("2026-W48", "2026-W49", "2027-W10"):
        response = await api.http.post(f"/v1/reports/weekly/{week}/generate", headers=headers)
        assert is_problem(response, 422), week
    # Sunday 23:59 in Seoul: W47 is not over yet there.
    clock.now = datetime(2026, 11, 22, 14, 59, tzinfo=UTC)
    response = await api.http.post("/v1/reports/weekly/2026-W47/generate", headers=headers)
    assert is_problem(response, 422)
    clock.now = datetime(2026, 11, 22, 15, 0, tzinfo=UTC)  # Monday 00:00 in Seoul
    response = await api.http.post("/v1/reports/weekly/2026-W47/generate", headers=headers)
    assert response.status_code == 201


async def test_a_week_without_check_ins_has_no_report(api: Any, alice: Any, kit: Any) -> None:
    headers = kit.auth(alice.tenant, alice.user)
    response = await api.http.post("/v1/reports/weekly/2026-W40/generate", headers=headers)
    assert is_problem(response, 404)


async def test_nobody_else_sees_a_report(api: Any, alice: Any, kit: Any) -> None:
    await api.http.post("/v1/reports/weekly/2026-W47/generate", headers=kit.auth("acme", "alice"))
    for tenant, user in (("acme", "bob"), ("other", "alice")):
        headers = kit.auth(tenant, user)
        assert is_problem(await api.http.get("/v1/reports/weekly/2026-W47", headers=headers), 404)
        assert (await api.http.get("/v1/reports", headers=headers)).json()["items"] == []
        response = await api.http.post("/v1/reports/weekly/2026-W47/generate", headers=headers)
        assert is_problem(response, 404)


async def test_auth_is_required(api: Any) -> None:
    assert is_problem(await api.http.get("/v1/reports"), 401)
    assert is_problem(await api.http.post("/v1/reports/weekly/2026-W47/generate"), 401)


async def test_an_idempotency_key_replays_the_first_answer(api: Any, alice: Any, kit: Any) -> None:
    headers = {**kit.auth(alice.tenant, alice.user), "Idempotency-Key": "k-1"}
    first = await api.http.post("/v1/reports/weekly/2026-W47/generate", headers=headers)
    replay = await api.http.post("/v1/reports/weekly/2026-W47/generate", headers=headers)
    assert (first.status_code, replay.status_code) == (201, 201)
    assert first.json() == replay.json()
    other_week = await api.http.post("/v1/reports/weekly/2026-W46/generate", headers=headers)
    assert is_problem(other_week, 422)
    bad_key = {**headers, "Idempotency-Key": "not a key"}
    assert is_problem(
        await api.http.post("/v1/reports/weekly/2026-W47/generate", headers=bad_key), 422
    )


async def test_health_and_asyncapi(api: Any) -> None:
    assert (await api.http.get("/healthz")).json() == {"status": "ok"}
    document = (await api.http.get("/asyncapi.json")).json()
    assert topics.REPORT_GENERATED in json.dumps(document)
    assert (await api.http.get("/readyz")).status_code == 200
