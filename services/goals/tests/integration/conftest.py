"""Fixtures for the goals service against the real MongoDB-compatible server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from goals.bootstrap import build_app
from goals.settings import Settings
from mandaact_common.mongo import Doc


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
