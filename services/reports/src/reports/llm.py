"""The SummaryWriter adapters: one Chat Completions call per fold at most, else the fallback.

A call's outcome is cached in MongoDB under the hash of (prompt version, language, fold). The
cache row is written *before* the call, so even a crash mid-call never leads to a second call for
the same fold: a row that is still "calling" makes later writers use the fallback.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import openai
from openai import AsyncOpenAI
from openai.types.chat import (
    ChatCompletionMessageParam,
    ChatCompletionSystemMessageParam,
    ChatCompletionUserMessageParam,
)
from prometheus_client import Counter
from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from mandaact_common.mongo import Doc
from reports.domain.facts import Locale
from reports.domain.fallback import fallback_summary
from reports.domain.prompt import Answer, build_prompt, read_answer, summary_schema
from reports.domain.report import Outcome, Written
from reports.domain.stats import WeeklyStats
from reports.domain.summary import Summary
from reports.settings import Settings
from reports.store.ports import SummaryWriter

log = logging.getLogger(__name__)

LLM_CACHE = "llm_cache"
CACHE_RETENTION = timedelta(days=60)

SUMMARIES = Counter(
    "mandaact_reports_summaries_total",
    "Weekly summaries written, by generator and outcome of the LLM step",
    ["generator", "outcome"],
)


class FallbackWriter:
    """The SummaryWriter when no API key is set: the deterministic summary, no network."""

    async def write(self, stats: WeeklyStats, week: str, locale: Locale) -> Written:
        """The deterministic summary."""
        return _fallback(stats, locale, "no_key")

    async def aclose(self) -> None:
        """Nothing to release."""


def _fallback(stats: WeeklyStats, locale: Locale, outcome: Outcome) -> Written:
    SUMMARIES.labels("fallback", outcome).inc()
    return Written(fallback_summary(stats, locale), "fallback", outcome)


async def ensure_cache_indexes(db: AsyncDatabase[Doc]) -> None:
    """Old cache rows expire (a report, once stored, never needs its call again)."""
    await db[LLM_CACHE].create_index([("expires_at", ASCENDING)], expireAfterSeconds=0)


class LlmWriter:
    """Chat Completions with structured output, checked, cached, with a deadline."""

    def __init__(self, settings: Settings, db: AsyncDatabase[Doc], client: AsyncOpenAI) -> None:
        self._settings = settings
        self._cache = db[LLM_CACHE]
        self._client = client

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.close()

    async def write(self, stats: WeeklyStats, week: str, locale: Locale) -> Written:
        """The LLM's summary when it gives a valid one, else the fallback."""
        prompt = build_prompt(stats, week, locale, self._settings.llm_response_format)
        now = datetime.now(UTC)
        cached = await self._cache.find_one({"_id": prompt.cache_key})
        if cached is not None:
            return self._from_cache(cached, stats, locale)
        try:
            await self._cache.insert_one(
                {
                    "_id": prompt.cache_key,
                    "state": "calling",
                    "started_at": now,
                    "expires_at": now + CACHE_RETENTION,
                }
            )
        except DuplicateKeyError:
            return _fallback(stats, locale, "in_flight")
        answer, outcome = await self._call(prompt.messages, stats, week)
        await self._cache.update_one(
            {"_id": prompt.cache_key},
            {
                "$set": {
                    "state": "done",
                    "outcome": outcome,
                    "summary": answer.summary.model_dump() if answer.summary else None,
                    "detail": answer.detail,
                    "finished_at": datetime.now(UTC),
                }
            },
        )
        if answer.summary is None:
            log.info("LLM summary for %s rejected (%s): %s", week, outcome, answer.detail)
            return _fallback(stats, locale, outcome)
        SUMMARIES.labels("llm", "ok").inc()
        return Written(answer.summary, "llm", "ok")

    def _from_cache(self, cached: Doc, stats: WeeklyStats, locale: Locale) -> Written:
        if cached.get("state") == "done" and cached.get("summary"):
            SUMMARIES.labels("llm", "cached").inc()
            return Written(Summary.model_validate(cached["summary"]), "llm", "cached")
        outcome: Outcome = "cached_failure" if cached.get("state") == "done" else "in_flight"
        return _fallback(stats, locale, outcome)

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
        try:
            # The client's own timeout is per attempt; this bounds attempts plus backoff.
            async with asyncio.timeout(self._settings.llm_deadline_seconds):
                completion = await self._client.chat.completions.create(
                    model=self._settings.llm_model,
                    messages=_chat_messages(messages),
                    response_format=self._response_format(),
                    temperature=0.2,
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


def make_writer(settings: Settings, db: AsyncDatabase[Doc]) -> SummaryWriter:
    """The LLM writer when a key is set, else the fallback writer (call in a lifespan)."""
    if settings.openai_api_key is None:
        return FallbackWriter()
    client = AsyncOpenAI(
        api_key=settings.openai_api_key.get_secret_value(),
        base_url=settings.openai_base_url,
        timeout=settings.llm_timeout_seconds,
        max_retries=settings.llm_max_retries,
    )
    return LlmWriter(settings, db, client)
