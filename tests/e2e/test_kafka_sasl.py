"""Kafka with SASL/SCRAM-SHA-512 and ACLs (SPEC §11), on one broker devstack starts so.

Each service runs as its own principal with the ACLs derived from its declared topics: the
check-in path still reaches the gamification ledger, and a principal is refused a topic it does
not produce.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import TopicAuthorizationFailedError

from mandaact_common.kafka import client_security
from mandaact_common.kafka_acls import kafka_principal
from mandaact_common.outbox import make_producer
from mandaact_common.settings import ServiceSettings
from mandaact_contracts import topics
from tests.e2e.conftest import Stack
from tests.e2e.helpers import auth, create_grid_and_wait_for_checklist, eventually, grid

pytestmark = pytest.mark.e2e

SERVICES = ("goals", "checkins", "gamification")
"""The services on the check-in path (reports is not needed to reach the ledger)."""


@pytest.fixture(scope="module")
def sasl_stack(infra: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A SASL broker with the services' ACLs, and the services on it as their own principals."""
    from mandaact_devstack import free_port
    from mandaact_devstack.testinfra import start_sasl_kafka

    base = tmp_path_factory.mktemp("sasl")
    kafka = start_sasl_kafka(base)
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "MONGODB_URL": infra.mongodb_url,
        "MANDAACT_ENV": "test",
        "MANDAACT_DB_PREFIX": f"sasl_{uuid.uuid4().hex[:8]}",
        "MANDAACT_API_RELAY": "true",
        "OPENAI_API_KEY": "",
    }
    where = SimpleNamespace(
        bootstrap_servers=kafka.bootstrap_servers, mongodb_url=infra.mongodb_url, kafka=kafka
    )
    stack = Stack(where, base / "run", env, {s: free_port() for s in SERVICES})
    try:
        for service in SERVICES:  # all at once, then wait: the 2 cores start them sooner
            principal = kafka.credentials.env(kafka_principal(service))
            stack.start(service, "worker", principal)
            stack.start(service, "api", principal, wait=False)
        for service in SERVICES:
            stack.wait_ready(service)
        yield stack
    finally:
        try:
            stack.stop_all()
        finally:
            kafka.stop()


def _settings_of(stack: Stack, service: str) -> ServiceSettings:
    """The settings a service process builds from the stack's environment and its principal."""
    principal = stack.infra.kafka.credentials.env(kafka_principal(service))
    return ServiceSettings(
        env="test",
        kafka_bootstrap_servers=stack.infra.bootstrap_servers,
        kafka_sasl_username=principal["MANDAACT_KAFKA_SASL_USERNAME"],
        kafka_sasl_password=principal["MANDAACT_KAFKA_SASL_PASSWORD"],
    )


async def test_the_checkins_principal_may_not_write_xp_awarded(sasl_stack: Stack) -> None:
    settings = _settings_of(sasl_stack, "checkins")
    producer = make_producer(
        settings.kafka_bootstrap_servers, "sasl-test", security=client_security(settings)
    )
    await producer.start()
    try:
        with pytest.raises(TopicAuthorizationFailedError):
            await producer.send_and_wait(topics.XP_AWARDED, b"{}", key=b"evil:mallory")
        # ...while the topics checkins produces are open to it.
        sent = await producer.send_and_wait(
            topics.dead_letter_topic("checkins"), b"probe", key=b"sasl:probe"
        )
        assert sent.offset >= 0
    finally:
        await producer.stop()


async def _xp_awarded_keys(stack: Stack, seconds: float) -> set[bytes]:
    """Keys on `xp.awarded`, read as the super user (gamification's principal wrote them)."""
    reader = AIOKafkaConsumer(
        topics.XP_AWARDED,
        **stack.infra.kafka.security(),
        bootstrap_servers=stack.infra.bootstrap_servers,
        group_id=f"sasl-reader-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await reader.start()
    keys: set[bytes] = set()
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not keys:
            for records in (await reader.getmany(timeout_ms=500)).values():
                keys |= {r.key for r in records if r.key}
    finally:
        await reader.stop()
    return keys


async def test_a_check_in_reaches_the_ledger_with_each_service_as_its_own_principal(
    sasl_stack: Stack,
) -> None:
    tenant = f"sasl-{uuid.uuid4().hex[:6]}"
    headers = auth(tenant, "alice")
    async with httpx.AsyncClient(timeout=10) as http:
        action_ids = await create_grid_and_wait_for_checklist(http, sasl_stack, headers, grid())
        r = await http.put(
            f"{sasl_stack.url('checkins')}/v1/checkins/{action_ids[0]}", headers=headers
        )
        assert r.status_code == 201, r.text

        async def checkin_entries() -> list[Any]:
            r = await http.get(f"{sasl_stack.url('gamification')}/v1/me/xp-ledger", headers=headers)
            assert r.status_code == 200, r.text
            return [e for e in r.json()["items"] if e["reason"] == "checkin"]

        entries = await eventually(checkin_entries, lambda e: len(e) > 0, 30)
    assert [e["action_id"] for e in entries] == [action_ids[0]]
    keys = await eventually(
        lambda: _xp_awarded_keys(sasl_stack, 5), lambda k: f"{tenant}:alice".encode() in k, 30
    )
    assert f"{tenant}:alice".encode() in keys
