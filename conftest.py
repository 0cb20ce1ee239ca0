"""Repo-wide pytest fixtures: real infrastructure for integration and e2e tests."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest

# Tests pass `env="test"` (or MANDAACT_ENV=test to the processes they start) and sign their tokens
# with the development secret: token settings exported in the shell running them must not change
# what the services under test accept. Likewise the erasure key: the test process and the
# services it starts must hash erased ids alike, with the development key.
for _name in (
    "MANDAACT_JWT_SECRET",
    "MANDAACT_JWT_JWKS_URL",
    "MANDAACT_JWT_AUDIENCE",
    "MANDAACT_JWT_ISSUER",
    "MANDAACT_ERASURE_KEY",
):
    os.environ.pop(_name, None)

# An app built inside a test process does not relay its own outbox: the tests read the rows it
# wrote (`pending_events`) and must find them there. The stacks the e2e tests and benchmarks
# start set MANDAACT_API_RELAY=true for their processes, as `make up` runs them.
os.environ["MANDAACT_API_RELAY"] = "false"


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


@pytest.fixture
def auth() -> Callable[..., dict[str, str]]:
    """Makes an Authorization header with a dev token: auth(tenant, user, **mint_token args)."""
    from mandaact_common.testing import auth_header

    return auth_header


@pytest.fixture
def outbox(db: Any) -> Callable[..., Awaitable[list[dict[str, Any]]]]:
    """Reads the test database's unpublished events in order (`payload`, `header_map` decoded).

    `db` is the requesting test's own database fixture (each service's conftest defines it).
    """
    from mandaact_common.outbox import pending_events

    async def read(topic: str | None = None) -> list[dict[str, Any]]:
        return await pending_events(db, topic)

    return read


@pytest.fixture
def dump(db: Any) -> Callable[[], Awaitable[dict[str, list[Any]]]]:
    """Reads every document of every collection, to prove a rejected request changed nothing.

    The rate limiter's buckets (`rate_limits`) are left out: every mutating request moves them.
    """

    async def read() -> dict[str, list[Any]]:
        names = sorted(set(await db.list_collection_names()) - {"rate_limits"})
        return {name: await db[name].find({}).sort("_id", 1).to_list() for name in names}

    return read
