"""Fixtures for the reports service: a local OpenAI-compatible server, event builders, the app."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from mandaact_common.consumer import IdempotentConsumer
from mandaact_common.mongo import Doc
from mandaact_common.testing import (
    MemoryRecord,
    RecordingDeadLetters,
    SettableClock,
    auth_header,
    record_of,
)
from mandaact_common.worker import WorkerDeps
from mandaact_contracts.events import (
    EventPayload,
)
from reports.bootstrap import build_app, ensure_indexes, fold_handler
from reports.settings import Settings
from services.reports.tests.support import DAILY, Users

# --- a local OpenAI-compatible Chat Completions server --------------------------------------

FOLD_BLOCK = re.compile(r"<fold>\n(.*)\n</fold>", re.S)
MODES = ("good", "slow", "error", "malformed", "broken_body", "refusal", "invented")


def fold_of(request_body: dict[str, Any]) -> dict[str, Any]:
    """The fold JSON the service put in the user message."""
    user = next(m["content"] for m in request_body["messages"] if m["role"] == "user")
    match = FOLD_BLOCK.search(user)
    assert match, "the user message carries a delimited fold"
    fold: dict[str, Any] = json.loads(match.group(1))
    return fold


def good_summary(fold: dict[str, Any]) -> dict[str, Any]:
    """A valid summary that states only numbers of the fold."""
    rate = fold["completion_rate"]
    pct = f"{round(rate * 100)}%" if rate is not None else "no due actions"
    return {
        "headline": f"LLM: {fold['checkins_total']} check-ins on {fold['days_active']} of 7 days",
        "key_metrics": [
            f"Completion {pct}",
            f"{fold['xp_gained']} XP gained",
            f"Streak {fold['streak_current']} days",
        ],
        "strengths": "You kept showing up.",
        "improvements": {"problem": "Evenings were quiet.", "insight": "Mornings suit you."},
        "action_plan": {"goal": "Keep the rhythm", "steps": ["Check in after breakfast"]},
    }


def completion(content: str | None, refusal: str | None = None) -> dict[str, Any]:
    """A Chat Completions response body."""
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": "fake-model",
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": content, "refusal": refusal},
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


class FakeLlm:
    """A real HTTP server on 127.0.0.1 that answers like the Chat Completions API and records
    every request; `mode` picks how it answers."""

    def __init__(self, slow_seconds: float = 30.0) -> None:
        self.mode = "good"
        self.requests: list[dict[str, Any]] = []
        self.slow_seconds = slow_seconds
        self._lock = threading.Lock()
        app = Starlette(routes=[Route("/v1/chat/completions", self._chat, methods=["POST"])])
        config = uvicorn.Config(
            app, host="127.0.0.1", port=0, log_level="warning", timeout_graceful_shutdown=1
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def start(self) -> None:
        """Serve in a thread until `stop`."""
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("fake LLM server did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        """Stop serving (slow answers are cut short)."""
        self._server.should_exit = True
        self._thread.join(timeout=10)

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL."""
        port = self._server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1"

    def reset(self, mode: str = "good") -> None:
        """Forget recorded requests and answer in `mode` from now on."""
        assert mode in MODES
        with self._lock:
            self.mode = mode
            self.requests.clear()

    async def _chat(self, request: Request) -> Response:
        body = await request.json()
        with self._lock:
            self.requests.append({"body": body, "headers": dict(request.headers)})
            mode = self.mode
        fold = fold_of(body)
        if mode == "slow":
            # Far beyond the client's timeout; the server's graceful shutdown cuts it short.
            await asyncio.sleep(self.slow_seconds)
            return JSONResponse(completion(json.dumps(good_summary(fold))))
        if mode == "error":
            return JSONResponse({"error": {"message": "boom", "type": "server_error"}}, 500)
        if mode == "broken_body":
            return PlainTextResponse("{this is not json", media_type="application/json")
        if mode == "malformed":
            return JSONResponse(completion('{"headline": "only a headline"'))
        if mode == "refusal":
            return JSONResponse(completion(None, refusal="I can't help with that."))
        summary = good_summary(fold)
        if mode == "invented":
            summary["strengths"] = "You also did 4242 push-ups."
        return JSONResponse(completion(json.dumps(summary, ensure_ascii=False)))


@pytest.fixture(scope="session")
def fake_llm_server() -> Iterator[FakeLlm]:
    """One fake LLM server for the session."""
    server = FakeLlm()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fake_llm(fake_llm_server: FakeLlm) -> FakeLlm:
    """The fake LLM server, reset to good answers and no recorded requests."""
    fake_llm_server.reset()
    return fake_llm_server


# --- settings, database, app ----------------------------------------------------------------


@pytest.fixture
def make_settings(infra: Any, unique_db_name: str) -> Callable[..., Settings]:
    """Reports settings on the test server and this test's database; LLM settings by kwargs."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "env": "test",
            "mongodb_url": infra.mongodb_url,
            "mongodb_database": unique_db_name,
            "kafka_bootstrap_servers": infra.bootstrap_servers,
            "openai_api_key": None,
            "openai_base_url": None,
            "llm_timeout_seconds": 1.0,
            "llm_max_retries": 1,
        }
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture
async def db(
    mongo_client: AsyncMongoClient[Doc], unique_db_name: str
) -> AsyncIterator[AsyncDatabase[Doc]]:
    """This test's reports database, with its indexes; dropped afterwards."""
    database = mongo_client[unique_db_name]
    await ensure_indexes(database)
    yield database
    await mongo_client.drop_database(unique_db_name)


@pytest.fixture
def clock() -> SettableClock:
    """A clock set to Tuesday 2026-11-24 12:00 UTC (week 2026-W47 is finished everywhere)."""
    return SettableClock(datetime(2026, 11, 24, 12, 0, tzinfo=UTC))


@dataclass
class Api:
    """An in-process HTTP client of the reports app, and the app."""

    http: httpx.AsyncClient
    app: FastAPI


@pytest.fixture
def start_api(
    mongo_client: AsyncMongoClient[Doc], clock: SettableClock, db: AsyncDatabase[Doc]
) -> Callable[[Settings], Any]:
    """Start the app with its lifespan for some settings: `async with start_api(s) as api`."""
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def start(settings: Settings) -> AsyncIterator[Api]:
        app = build_app(settings, client=mongo_client, clock=clock)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://reports") as http:
                yield Api(http, app)

    return start


# --- events -----------------------------------------------------------------------------------


def record(payload: EventPayload, offset: int = 0) -> MemoryRecord:
    """A record made from a real envelope of the payload."""
    return record_of(payload, offset=offset)


@pytest.fixture
def consumer(
    mongo_client: AsyncMongoClient[Doc], db: AsyncDatabase[Doc], clock: SettableClock
) -> tuple[IdempotentConsumer, RecordingDeadLetters]:
    """The reports consumer over this test's database, with the real batch handler on the
    test's clock (the default settle time: a changed fold is rewritten 300 s after)."""
    sink = RecordingDeadLetters()
    deps = WorkerDeps(settings=Settings(env="test"), client=mongo_client, db=db, producer=None)
    handler = fold_handler(deps, clock)
    return (
        IdempotentConsumer(
            group="reports", client=mongo_client, db=db, handler=handler, dead_letters=sink
        ),
        sink,
    )


async def feed(
    consumer: tuple[IdempotentConsumer, RecordingDeadLetters],
    events: Sequence[EventPayload | MemoryRecord],
    batch: int = 7,
) -> None:
    """Feed events (or ready records) through the idempotent consumer in batches."""
    c, sink = consumer
    records = [e if isinstance(e, MemoryRecord) else record(e, i) for i, e in enumerate(events)]
    for start in range(0, len(records), batch):
        await c.process(records[start : start + batch])
    assert sink.sent == [], [str(e) for _, e in sink.sent]


class Kit:
    """The builders tests use (conftest modules are not importable under importlib mode)."""

    Users = Users
    Clock = SettableClock
    DAILY = DAILY
    feed = staticmethod(feed)
    record = staticmethod(record)
    auth = staticmethod(auth_header)
    fold_of = staticmethod(fold_of)


@pytest.fixture
def kit() -> Kit:
    """Event builders, the consumer feeder, tokens."""
    return Kit()
