"""The SummaryWriter adapters: at most one LLM call per (tenant, fold), else the fallback.

Before a call the writer claims it in the tenant's cache (`SummaryCache`), then takes one call
from the tenant's monthly budget (`LlmBudget`). The claim comes first, so even a crash mid-call
never leads to a second call for the same fold, and a retried job never spends twice: a claim
that is still "calling" makes later writers use the fallback. Past the budget nothing is called
and the fallback says so (`budget_exhausted`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import openai
from openai import AsyncOpenAI, omit
from openai.types.chat import (
    ChatCompletionMessageParam,
    ChatCompletionSystemMessageParam,
    ChatCompletionUserMessageParam,
)
from prometheus_client import Counter
from pymongo.asynchronous.database import AsyncDatabase

from mandaact_common.clock import Clock, utc_now
from mandaact_common.domain.owner import Owner
from mandaact_common.mongo import Doc
from reports.domain.facts import Locale
from reports.domain.fallback import fallback_summary
from reports.domain.prompt import Answer, build_prompt, read_answer, summary_schema
from reports.domain.report import Outcome, Written
from reports.domain.stats import WeeklyStats
from reports.settings import Settings
from reports.store.mongo import MongoLlmBudget, MongoSummaryCache
from reports.store.ports import CachedCall, LlmBudget, SummaryCache, SummaryWriter

log = logging.getLogger(__name__)

SUMMARIES = Counter(
    "mandaact_reports_summaries_total",
    "Weekly summaries written, by generator and outcome of the LLM step",
    ["generator", "outcome"],
)


class FallbackWriter:
    """The SummaryWriter when no API key is set: the deterministic summary, no network."""

    async def write(self, owner: Owner, stats: WeeklyStats, week: str, locale: Locale) -> Written:
        """The deterministic summary."""
        return _fallback(stats, locale, "no_key")

    async def aclose(self) -> None:
        """Nothing to release."""


def _fallback(stats: WeeklyStats, locale: Locale, outcome: Outcome) -> Written:
    SUMMARIES.labels("fallback", outcome).inc()
    return Written(fallback_summary(stats, locale), "fallback", outcome)


class LlmWriter:
    """Chat Completions with structured output and a token cap: checked, cached per tenant,
    within the tenant's monthly budget, with a deadline."""

    def __init__(
        self,
        settings: Settings,
        client: AsyncOpenAI,
        *,
        cache: SummaryCache,
        budget: LlmBudget,
        clock: Clock = utc_now,
    ) -> None:
        self._settings = settings
        self._client = client
        self._cache = cache
        self._budget = budget
        self._clock = clock

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.close()

    async def write(self, owner: Owner, stats: WeeklyStats, week: str, locale: Locale) -> Written:
        """The LLM's summary when it gives a valid one, else the fallback."""
        tenant = owner.tenant_id
        prompt = build_prompt(stats, week, locale, self._settings.llm_response_format)
        cached = await self._cache.find(tenant, prompt.cache_key)
        if cached is not None:
            await self._cache.used(owner, prompt.cache_key)
            return self._from_cache(cached, stats, locale)
        now = self._clock()
        if not await self._cache.begin(owner, prompt.cache_key, now):
            return _fallback(stats, locale, "in_flight")
        try:
            allowed = await self._budget.spend(tenant, now)
        except Exception:
            # Not knowing whether a unit was taken, make no call, but leave no claim that would
            # keep the retry of this job from calling.
            with contextlib.suppress(Exception):
                await self._cache.abandon(tenant, prompt.cache_key)
            raise
        if not allowed:
            # No call was made: nothing to cache, and a later writer (next month) may call.
            await self._cache.abandon(tenant, prompt.cache_key)
            log.info("LLM budget of tenant %s exhausted for %s: fallback", tenant, week)
            return _fallback(stats, locale, "budget_exhausted")
        answer, outcome = await self._call(prompt.messages, stats, week)
        await self._cache.finish(
            tenant, prompt.cache_key, outcome, answer.summary, answer.detail, self._clock()
        )
        if answer.summary is None:
            log.info("LLM summary for %s rejected (%s): %s", week, outcome, answer.detail)
            return _fallback(stats, locale, outcome)
        SUMMARIES.labels("llm", "ok").inc()
        return Written(answer.summary, "llm", "ok")

    def _from_cache(self, cached: CachedCall, stats: WeeklyStats, locale: Locale) -> Written:
        if cached.done and cached.summary is not None:
            SUMMARIES.labels("llm", "cached").inc()
            return Written(cached.summary, "llm", "cached")
        return _fallback(stats, locale, "cached_failure" if cached.done else "in_flight")

    def _response_format(self) -> Any:
        if self._settings.llm_response_format == "json_object":
            return {"type": "json_object"}
        return {
            "type": "json_schema",
            "json_schema": {"name": "weekly_summary", "strict": True, "schema": summary_schema()},
        }

    async def _call(
        self, messages: list[dict[str, str]], stats: WeeklyStats, week: str
    ) -> tuple[Answer, Outcome]:
        cap = self._settings.llm_max_completion_tokens
        # `max_tokens` is deprecated by OpenAI (and refused by its reasoning models); some
        # OpenAI-compatible servers only know it, hence the setting.
        legacy = self._settings.llm_token_cap_param == "max_tokens"
        try:
            # The client's own timeout is per attempt; this bounds attempts plus backoff.
            async with asyncio.timeout(self._settings.llm_deadline_seconds):
                completion = await self._client.chat.completions.create(
                    model=self._settings.llm_model,
                    messages=_chat_messages(messages),
                    response_format=self._response_format(),
                    temperature=0.2,
                    max_completion_tokens=omit if legacy else cap,
                    max_tokens=cap if legacy else omit,
                )
        except (TimeoutError, openai.APITimeoutError) as exc:
            return Answer(None, detail=repr(exc)), "timeout"
        except openai.APIError as exc:
            return Answer(None, detail=repr(exc)[:500]), "error"
        except Exception as exc:  # an LLM failure of any kind must only cost the fallback
            log.warning("LLM call failed unexpectedly: %r", exc)
            return Answer(None, detail=repr(exc)[:500]), "error"
        try:
            choice = completion.choices[0]
            if choice.finish_reason == "length":
                # Cut off at the token cap: whatever JSON there is, it is not the whole answer.
                return Answer(None, detail="finish_reason=length"), "truncated"
            message = choice.message
            refusal = message.refusal or (
                "content filter" if choice.finish_reason == "content_filter" else None
            )
            answer = read_answer(message.content, refusal, stats, week)
        except (AttributeError, IndexError, TypeError) as exc:
            return Answer(None, "malformed", repr(exc)[:500]), "malformed"
        return answer, (answer.rejection or "ok")


def _chat_messages(messages: list[dict[str, str]]) -> list[ChatCompletionMessageParam]:
    out: list[ChatCompletionMessageParam] = []
    for m in messages:
        if m["role"] == "system":
            out.append(ChatCompletionSystemMessageParam(role="system", content=m["content"]))
        else:
            out.append(ChatCompletionUserMessageParam(role="user", content=m["content"]))
    return out


def make_writer(
    settings: Settings, db: AsyncDatabase[Doc], clock: Clock = utc_now
) -> SummaryWriter:
    """The LLM writer when a key is set, else the fallback writer (call in a lifespan)."""
    if settings.openai_api_key is None:
        return FallbackWriter()
    client = AsyncOpenAI(
        api_key=settings.openai_api_key.get_secret_value(),
        base_url=settings.openai_base_url,
        timeout=settings.llm_timeout_seconds,
        max_retries=settings.llm_max_retries,
    )
    return LlmWriter(
        settings,
        client,
        cache=MongoSummaryCache(db),
        budget=MongoLlmBudget(db, settings.llm_monthly_calls_per_tenant),
        clock=clock,
    )
