"""Fixtures for the goals service against the real MongoDB-compatible server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from goals.bootstrap import build_app
from goals.settings import Settings
from mandaact_common.auth import mint_token
from mandaact_common.mongo import Doc
from mandaact_common.outbox import pending_events
from mandaact_common.settings import DEV_JWT_SECRET


@pytest.fixture
def goals_settings(infra: Any, unique_db_name: str) -> Settings:
    """Settings pointing at the test server, with a database of this test's own."""
    return Settings(env="test", mongodb_url=infra.mongodb_url, mongodb_database=unique_db_name)


@pytest.fixture
async def goals_app(
    goals_settings: Settings, mongo_client: AsyncMongoClient[Doc]
) -> AsyncIterator[FastAPI]:
    """The goals app with its lifespan running (indexes made)."""
    app = build_app(goals_settings, client=mongo_client)
    async with app.router.lifespan_context(app):
        yield app
    await mongo_client.drop_database(goals_settings.mongodb_database)


@pytest.fixture
async def http(goals_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to the app in process."""
    transport = httpx.ASGITransport(app=goals_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://goals") as client:
        yield client


@pytest.fixture
def db(mongo_client: AsyncMongoClient[Doc], goals_settings: Settings) -> AsyncDatabase[Doc]:
    """The goals database of this test."""
    return mongo_client[goals_settings.mongodb_database]


def _auth(tenant: str = "acme", user: str = "alice", **kwargs: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(DEV_JWT_SECRET, tenant, user, **kwargs)}"}


@pytest.fixture
def auth() -> Callable[..., dict[str, str]]:
    """Makes an Authorization header with a dev token: auth(tenant, user, **mint_token args)."""
    return _auth


@pytest.fixture
def outbox(db: AsyncDatabase[Doc]) -> Callable[..., Awaitable[list[dict[str, Any]]]]:
    """Reads outbox rows in order, each with its decoded JSON `payload` and `header_map`."""

    async def read(topic: str | None = None) -> list[dict[str, Any]]:
        return await pending_events(db, topic)

    return read


@pytest.fixture
def dump(db: AsyncDatabase[Doc]) -> Callable[[], Awaitable[dict[str, list[Doc]]]]:
    """Reads every document of every collection, to prove a rejected request changed nothing."""

    async def read() -> dict[str, list[Doc]]:
        names = sorted(await db.list_collection_names())
        return {name: await db[name].find({}).sort("_id", 1).to_list() for name in names}

    return read
