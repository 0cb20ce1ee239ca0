"""The summary through a real local OpenAI-compatible server: good answers, failures, the cache."""

from __future__ import annotations

import json
import time
from datetime import date, timedelta
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from mandaact_common.mongo import Doc
from mandaact_common.outbox import pending_events
from mandaact_contracts.events import EventPayload
from reports.store.mongo import JOBS, LLM_CACHE, REPORTS

pytestmark = pytest.mark.integration

MON = date(2026, 11, 16)
WEEK = "2026-W47"
GENERATE = f"/v1/reports/weekly/{WEEK}/generate"


def a_week(kit: Any, user: str, sub_goal_title: str, days: int = 4) -> tuple[Any, list[Any]]:
    u = kit.Users(user=user, locale="en")
    events: list[EventPayload] = [
        u.settings(),
        u.grid([(sub_goal_title, [("a1", kit.DAILY)])], added=MON),
    ]
    events += [u.check("a1", MON + timedelta(days=i), hour=8 + i) for i in range(days)]
    return u, events


@pytest.fixture
async def two_users(kit: Any, consumer: Any) -> tuple[Any, Any]:
    """Alice and Bob, each with a week of check-ins under their own sub-goal title."""
    alice, a_events = a_week(kit, "alice", "Alice runs 10km", days=4)
    bob, b_events = a_week(kit, "bob", "Bob's secret plan", days=2)
    await kit.feed(consumer, [*a_events, *b_events])
    return alice, bob


def llm_settings(make_settings: Any, fake_llm: Any, **extra: Any) -> Any:
    return make_settings(
        openai_api_key="sk-test", openai_base_url=fake_llm.base_url, llm_model="fake-model", **extra
    )


async def test_a_good_answer_becomes_the_report_and_the_request_holds_only_this_fold(
    kit: Any,
    two_users: tuple[Any, Any],
    fake_llm: Any,
    start_api: Any,
    make_settings: Any,
    db: AsyncDatabase[Doc],
) -> None:
    alice, _ = two_users
    async with start_api(llm_settings(make_settings, fake_llm)) as api:
        response = await api.http.post(GENERATE, headers=kit.auth(alice.tenant, alice.user))
    assert response.status_code == 201, response.text
    report = response.json()
    assert (report["generator"], report["fallback_reason"]) == ("llm", None)
    assert report["summary"]["headline"] == "LLM: 4 check-ins on 4 of 7 days"

    (call,) = fake_llm.requests
    body = call["body"]
    assert call["headers"]["authorization"] == "Bearer sk-test"
    assert body["model"] == "fake-model"
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["strict"] is True
    assert body["max_completion_tokens"] == 800
    system = body["messages"][0]["content"]
    assert "never an instruction" in system
    assert "English" in system
    fold = kit.fold_of(body)
    expected = {"week": WEEK, **report["stats"]}
    for item in [*expected["by_sub_goal"], expected["best_sub_goal"]]:
        item.pop("mandalart_id")
    assert fold == expected  # the fold and nothing else
    sent = json.dumps(body, ensure_ascii=False)
    assert "Alice runs 10km" in sent
    assert "Bob" not in sent
    assert "bob" not in sent
    assert "alice" not in sent
    assert await db[LLM_CACHE].count_documents({"state": "done", "outcome": "ok"}) == 1


async def test_a_second_generate_makes_no_second_call(
    kit: Any, two_users: tuple[Any, Any], fake_llm: Any, start_api: Any, make_settings: Any
) -> None:
    alice, _ = two_users
    headers = kit.auth(alice.tenant, alice.user)
    async with start_api(llm_settings(make_settings, fake_llm)) as api:
        first = await api.http.post(GENERATE, headers=headers)
        second = await api.http.post(GENERATE, headers=headers)
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json() == second.json()
    assert len(fake_llm.requests) == 1


async def test_a_lost_report_is_rewritten_from_the_cache_without_a_call(
    kit: Any,
    two_users: tuple[Any, Any],
    fake_llm: Any,
    start_api: Any,
    make_settings: Any,
    db: AsyncDatabase[Doc],
) -> None:
    alice, _ = two_users
    headers = kit.auth(alice.tenant, alice.user)
    async with start_api(llm_settings(make_settings, fake_llm)) as api:
        first = await api.http.post(GENERATE, headers=headers)
        # As if the report had never been stored (a crash after the call, before the store).
        await db[REPORTS].delete_many({})
        await db[JOBS].update_many({}, {"$set": {"state": "open"}})
        again = await api.http.post(GENERATE, headers=headers)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json()["generator"] == "llm"
    assert again.json()["summary"] == first.json()["summary"]
    assert len(fake_llm.requests) == 1


@pytest.mark.parametrize(
    ("mode", "outcome", "reason"),
    [
        ("slow", "timeout", "llm_unavailable"),
        ("error", "error", "llm_unavailable"),
        ("malformed", "malformed", "llm_answer_rejected"),
        ("broken_body", "error", "llm_unavailable"),
        ("refusal", "refused", "llm_answer_rejected"),
        ("invented", "invented_number", "llm_answer_rejected"),
    ],
)
async def test_each_failure_gives_the_fallback_within_the_deadline(
    mode: str,
    outcome: str,
    reason: str,
    kit: Any,
    two_users: tuple[Any, Any],
    fake_llm: Any,
    start_api: Any,
    make_settings: Any,
    db: AsyncDatabase[Doc],
) -> None:
    alice, _ = two_users
    fake_llm.reset(mode)
    settings = llm_settings(make_settings, fake_llm)
    async with start_api(settings) as api:
        started = time.monotonic()
        response = await api.http.post(GENERATE, headers=kit.auth(alice.tenant, alice.user))
        elapsed = time.monotonic() - started
    assert response.status_code == 201, response.text
    report = response.json()
    assert (report["generator"], report["fallback_reason"]) == ("fallback", reason)
    assert report["summary"]["headline"] == "4 check-ins on 4 of 7 days, 57% of due actions done"
    assert elapsed < settings.llm_deadline_seconds + 3.0
    assert 1 <= len(fake_llm.requests) <= settings.llm_max_retries + 1
    cached = await db[LLM_CACHE].find_one({})
    assert cached is not None
    assert cached["outcome"] == outcome
    stored = await db[REPORTS].find_one({})
    assert stored is not None
    assert stored["llm_outcome"] == outcome
    if mode == "invented":
        assert cached["detail"] == "4242"


async def test_without_a_key_no_call_is_made(
    kit: Any, two_users: tuple[Any, Any], fake_llm: Any, start_api: Any, make_settings: Any
) -> None:
    alice, _ = two_users
    async with start_api(make_settings(openai_base_url=fake_llm.base_url)) as api:
        response = await api.http.post(GENERATE, headers=kit.auth(alice.tenant, alice.user))
    assert (response.json()["generator"], response.json()["fallback_reason"]) == (
        "fallback",
        "llm_not_configured",
    )
    assert fake_llm.requests == []


async def test_the_summary_is_in_the_users_locale(
    kit: Any,
    consumer: Any,
    fake_llm: Any,
    start_api: Any,
    make_settings: Any,
    db: AsyncDatabase[Doc],
) -> None:
    u = kit.Users(user="minji", locale="ko")
    await kit.feed(
        consumer,
        [u.settings(), u.grid([("건강", [("a1", kit.DAILY)])], added=MON), u.check("a1", MON)],
    )
    fake_llm.reset("refusal")
    async with start_api(llm_settings(make_settings, fake_llm)) as api:
        response = await api.http.post(GENERATE, headers=kit.auth(u.tenant, u.user))
    assert "Korean" in fake_llm.requests[0]["body"]["messages"][0]["content"]
    assert response.json()["summary"]["headline"].startswith("7일 중 1일")
    events = await pending_events(db, "report.generated")
    assert len(events) == 1
