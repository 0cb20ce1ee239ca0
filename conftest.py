"""Repo-wide pytest fixtures: real infrastructure for integration and e2e tests."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest


@pytest.fixture(scope="session")
def infra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real Kafka broker and MongoDB-compatible server for this test session.

    testcontainers when a Docker engine answers, else local processes on free ports;
    KAFKA_BOOTSTRAP_SERVERS / MONGODB_URL point at existing servers instead.
    """
    from mandaact_devstack import start_test_infra

    handle = start_test_infra(tmp_path_factory.mktemp("infra"))
    os.environ.setdefault("MANDAACT_TEST_KAFKA", handle.bootstrap_servers)
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture
def unique_db_name() -> str:
    """A fresh database name so tests never see each other's documents."""
    return f"t_{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def mongo_client(infra: Any) -> AsyncIterator[Any]:
    """An AsyncMongoClient connected to the test server."""
    from mandaact_common.mongo import make_client

    client = make_client(infra.mongodb_url)
    try:
        yield client
    finally:
        await client.close()
