"""The LLM's limits: the largest 8 sub-goals, the completion-token cap, the tenant's monthly
budget and the per-tenant cache, over a real OpenAI client on a mock transport (no network)."""

from __future__ import annotations

import json
import typing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx2
import pytest
from openai import AsyncOpenAI

from mandaact_common.domain.owner import Owner
from mandaact_common.testing import SettableClock
from reports.domain.fallback import fallback_summary
from reports.domain.prompt import PROMPT_SUB_GOALS, build_prompt, prompt_sub_goals
from reports.domain.report import Outcome, Report, budget_month, fallback_reason
from reports.domain.stats import SubGoalStat, WeeklyStats
from reports.llm import LlmWriter
from reports.settings import Settings
from reports.store.memory import InMemoryLlmBudget, InMemorySummaryCache
from services.reports.tests.support import stats, sub_goal

pytestmark = pytest.mark.unit

WEEK = "2026-W47"
NOVEMBER = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
ACME = Owner("acme", "alice")
GLOBEX = Owner("globex", "alice")


def many_sub_goals(n: int) -> list[SubGoalStat]:
    """n sub-goals over two grids with due counts 1..n scattered (and done = due // 2)."""
    out = []
    for i in range(n):
        due = (i * 7) % n + 1
        out.append(
            SubGoalStat(
                mandalart_id=f"m{i // 8}",
                position=i % 8 + 1,
                title=f"Sub-goal {i}",
                due=due,
                done=due // 2,
                rate=round((due // 2) / due, 4),
            )
        )
    return out


def fold_sent(body: dict[str, Any]) -> dict[str, Any]:
    user = body["messages"][1]["content"]
    fold: dict[str, Any] = json.loads(user.split("<fold>\n", 1)[1].rsplit("\n</fold>", 1)[0])
    return fold


# --- the largest sub-goals --------------------------------------------------------------------


def test_the_eight_largest_sub_goals_are_those_with_most_due_then_done_in_grid_order() -> None:
    subs = many_sub_goals(12)
    chosen = prompt_sub_goals(subs)
    assert len(chosen) == PROMPT_SUB_GOALS == 8
    assert sorted(s.due for s in chosen) == sorted(s.due for s in subs)[-8:]
    assert chosen == [s for s in subs if s in chosen]  # grid order is kept

    # Ties on due go to more done, then to the earlier sub-goal.
    tied = [sub_goal(f"t{i}", 5, d, position=i % 8 + 1) for i, d in enumerate([1, 3, 3, 2] * 3)]
    picked = prompt_sub_goals(tied)
    assert [s.title for s in picked] == ["t1", "t2", "t3", "t5", "t6", "t7", "t9", "t10"]


def test_eight_or_fewer_sub_goals_are_all_sent_and_nothing_is_added() -> None:
    subs = many_sub_goals(8)
    assert prompt_sub_goals(subs) == subs
    fold = fold_sent({"messages": build_prompt(stats(by_sub_goal=subs), WEEK, "en").messages})
    assert len(fold["by_sub_goal"]) == 8
    assert "sub_goals_total" not in fold


def test_the_prompt_lists_the_largest_eight_and_says_how_many_there_were() -> None:
    subs = many_sub_goals(20)
    prompt = build_prompt(stats(by_sub_goal=subs), WEEK, "en")
    fold = fold_sent({"messages": prompt.messages})
    assert [s["title"] for s in fold["by_sub_goal"]] == [s.title for s in prompt_sub_goals(subs)]
    assert fold["sub_goals_total"] == 20
    assert "at most 8" in prompt.messages[0]["content"]
    # Sub-goals left out of the prompt do not change what is asked, so not the cache key.
    smaller = [
        s if s in prompt_sub_goals(subs) else s.model_copy(update={"title": "x"}) for s in subs
    ]
    assert build_prompt(stats(by_sub_goal=smaller), WEEK, "en").cache_key == prompt.cache_key


# --- a writer over a real OpenAI client on a mock transport -----------------------------------


def chat_completion(content: str | None, finish_reason: str = "stop") -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": "fake-model",
        "choices": [
            {
                "index": 0,
                "finish_reason": finish_reason,
                "message": {"role": "assistant", "content": content, "refusal": None},
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


def good_answer(fold: dict[str, Any]) -> str:
    return json.dumps(
        {
            "headline": f"{fold['checkins_total']} check-ins on {fold['days_active']} of 7 days",
            "key_metrics": ["Steady", f"{fold['xp_gained']} XP", "On track"],
            "strengths": "You kept showing up.",
            "improvements": {"problem": "Evenings were quiet.", "insight": "Mornings suit you."},
            "action_plan": {"goal": "Keep the rhythm", "steps": ["Check in after breakfast"]},
        }
    )


@dataclass
class FakeServer:
    """What the mock transport answers, and every request body it was sent."""

    finish_reason: str = "stop"
    bodies: list[dict[str, Any]] = field(default_factory=list)

    def handle(self, request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content)
        self.bodies.append(body)
        content = good_answer(fold_sent(body))
        if self.finish_reason == "length":
            content = content[:40]
        return httpx2.Response(200, json=chat_completion(content, self.finish_reason))


@dataclass
class Rig:
    writer: LlmWriter
    server: FakeServer
    cache: InMemorySummaryCache
    budget: InMemoryLlmBudget
    clock: SettableClock


def rig(server: FakeServer | None = None, **settings: Any) -> Rig:
    server = server or FakeServer()
    values: dict[str, Any] = {"env": "test", "openai_api_key": "sk-test", **settings}
    config = Settings(**values)
    client = AsyncOpenAI(
        api_key="sk-test",
        base_url="http://llm.invalid/v1",
        max_retries=0,
        http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(server.handle)),
    )
    cache = InMemorySummaryCache()
    budget = InMemoryLlmBudget(config.llm_monthly_calls_per_tenant)
    clock = SettableClock(NOVEMBER)
    writer = LlmWriter(config, client, cache=cache, budget=budget, clock=clock)
    return Rig(writer, server, cache, budget, clock)


def week_of(checkins: int) -> WeeklyStats:
    """A fold that differs from others by its check-in count (so its own cache key)."""
    return stats(checkins_total=checkins)


async def test_every_request_caps_the_completion_tokens() -> None:
    r = rig()
    written = await r.writer.write(ACME, week_of(12), WEEK, "en")
    assert (written.generator, written.outcome) == ("llm", "ok")
    (body,) = r.server.bodies
    assert body["max_completion_tokens"] == Settings(env="test").llm_max_completion_tokens == 800
    assert "max_tokens" not in body
    await r.writer.aclose()


async def test_the_cap_can_go_as_max_tokens_for_servers_that_only_know_it() -> None:
    r = rig(llm_token_cap_param="max_tokens", llm_max_completion_tokens=300)
    await r.writer.write(ACME, week_of(12), WEEK, "en")
    (body,) = r.server.bodies
    assert body["max_tokens"] == 300
    assert "max_completion_tokens" not in body
    await r.writer.aclose()


async def test_the_request_holds_at_most_the_eight_largest_sub_goals() -> None:
    r = rig()
    subs = many_sub_goals(16)
    await r.writer.write(ACME, stats(by_sub_goal=subs), WEEK, "en")
    (body,) = r.server.bodies
    fold = fold_sent(body)
    assert len(fold["by_sub_goal"]) == 8
    assert fold["sub_goals_total"] == 16
    await r.writer.aclose()


async def test_an_answer_cut_off_at_the_cap_gives_the_fallback() -> None:
    r = rig(FakeServer(finish_reason="length"))
    written = await r.writer.write(ACME, week_of(12), WEEK, "en")
    assert (written.generator, written.outcome) == ("fallback", "truncated")
    assert written.summary == fallback_summary(week_of(12), "en")
    assert fallback_reason(written.outcome) == "llm_answer_rejected"
    await r.writer.aclose()


async def test_past_the_monthly_budget_no_call_is_made_and_the_fallback_says_why() -> None:
    r = rig(llm_monthly_calls_per_tenant=2)
    first = [await r.writer.write(ACME, week_of(n), WEEK, "en") for n in (10, 11)]
    assert [w.outcome for w in first] == ["ok", "ok"]
    past = await r.writer.write(ACME, week_of(12), WEEK, "en")
    assert (past.generator, past.outcome) == ("fallback", "budget_exhausted")
    assert fallback_reason(past.outcome) == "monthly_llm_budget_exhausted"
    assert len(r.server.bodies) == 2
    assert r.budget.calls == {("acme", "2026-11"): 2}
    assert r.budget.refused == {("acme", "2026-11"): 1}

    # A summary already called for costs nothing again; another tenant has its own budget.
    assert (await r.writer.write(ACME, week_of(10), WEEK, "en")).outcome == "cached"
    assert (await r.writer.write(GLOBEX, week_of(12), WEEK, "en")).outcome == "ok"
    assert len(r.server.bodies) == 3

    # The refused fold left no claim behind: next month it is called for.
    r.clock.now = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
    assert (await r.writer.write(ACME, week_of(12), WEEK, "en")).outcome == "ok"
    assert r.budget.calls[("acme", "2026-12")] == 1
    await r.writer.aclose()


async def test_a_zero_budget_never_calls() -> None:
    r = rig(llm_monthly_calls_per_tenant=0)
    assert (await r.writer.write(ACME, week_of(1), WEEK, "en")).outcome == "budget_exhausted"
    assert r.server.bodies == []
    await r.writer.aclose()


class BrokenBudget:
    async def spend(self, tenant_id: str, at: datetime) -> bool:
        raise ConnectionError("database down")


async def test_a_budget_that_cannot_be_read_makes_no_call_and_leaves_no_claim() -> None:
    r = rig()
    writer = LlmWriter(
        Settings(env="test", openai_api_key="sk-test"),
        AsyncOpenAI(api_key="sk-test", base_url="http://llm.invalid/v1"),
        cache=r.cache,
        budget=BrokenBudget(),
    )
    with pytest.raises(ConnectionError):
        await writer.write(ACME, week_of(12), WEEK, "en")
    assert r.cache.rows == {}  # the job's retry may still call
    await writer.aclose()
    await r.writer.aclose()


async def test_the_cache_never_crosses_tenants() -> None:
    r = rig()
    same = week_of(12)
    assert (await r.writer.write(ACME, same, WEEK, "en")).outcome == "ok"
    assert (await r.writer.write(GLOBEX, same, WEEK, "en")).outcome == "ok"
    assert (await r.writer.write(ACME, same, WEEK, "en")).outcome == "cached"
    assert len(r.server.bodies) == 2
    assert sorted(t for t, _ in r.cache.rows) == ["acme", "globex"]
    await r.writer.aclose()


# --- defaults and reasons ---------------------------------------------------------------------


def test_the_defaults_and_their_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    s = Settings(env="test")
    assert (s.llm_max_completion_tokens, s.llm_monthly_calls_per_tenant) == (800, 10_000)
    assert s.llm_token_cap_param == "max_completion_tokens"
    monkeypatch.setenv("MANDAACT_LLM_MONTHLY_CALLS_PER_TENANT", "25")
    monkeypatch.setenv("MANDAACT_LLM_MAX_COMPLETION_TOKENS", "512")
    s = Settings(env="test")
    assert (s.llm_max_completion_tokens, s.llm_monthly_calls_per_tenant) == (512, 25)


def test_budget_months_are_utc_calendar_months() -> None:
    assert budget_month(datetime(2026, 11, 30, 23, 59, tzinfo=UTC)) == "2026-11"
    seoul_first = datetime.fromisoformat("2026-12-01T08:00:00+09:00")  # still November in UTC
    assert budget_month(seoul_first) == "2026-11"


def report_with(outcome: Outcome, generator: Any) -> Report:
    return Report(
        owner=ACME,
        week=WEEK,
        stats=week_of(1),
        summary=fallback_summary(week_of(1), "en"),
        generator=generator,
        llm_outcome=outcome,
        locale="en",
        prompt_version="v",
        generated_at=NOVEMBER,
    )


@pytest.mark.parametrize("outcome", typing.get_args(Outcome))
def test_every_fallback_outcome_has_a_reason_for_the_reader(outcome: Outcome) -> None:
    generator = "llm" if outcome in ("ok", "cached") else "fallback"
    reason = report_with(outcome, generator).fallback_reason
    assert (reason is None) == (generator == "llm")
