"""`mandaact dlt list|redrive|discard` against the stack's ops API and real dead letters."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from mandaact_cli.cli import main
from mandaact_contracts import topics
from tests.e2e.helpers import eventually

pytestmark = pytest.mark.e2e


def listed(capsys: pytest.CaptureFixture[str], ops: str, marker: str) -> list[dict[str, Any]]:
    assert main(["dlt", "--ops-url", ops, "list", "--group", "gamification", "--limit", "200"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line[:1] == "{"]
    return [item for item in lines if marker in (item["value"] or "")]


async def test_a_letter_redriven_before_its_cause_is_fixed_comes_back_and_a_discarded_one_goes(
    stack: Any, ops: str, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = uuid.uuid4().hex
    producer = AIOKafkaProducer(
        bootstrap_servers=stack.infra.bootstrap_servers, enable_idempotence=True, acks="all"
    )
    await producer.start()
    try:
        await producer.send_and_wait(
            topics.ACTION_COMPLETED,
            f"not json {marker}".encode(),
            key=b"evil:mallory",
            headers=[("ce_id", marker.encode())],
        )
    finally:
        await producer.stop()

    async def letters() -> list[dict[str, Any]]:
        return listed(capsys, ops, marker)

    (first,) = await eventually(letters, lambda found: len(found) == 1, 60)
    assert first["topic"] == topics.ACTION_COMPLETED
    assert first["error"].startswith("InvalidEvent")
    assert first["headers"]["ce_id"] == marker

    assert main(["dlt", "--ops-url", ops, "redrive", "gamification", first["id"]]) == 0
    assert json.loads(capsys.readouterr().out)["ids"] == [first["id"]]
    # Still malformed: the consumer dead-letters it again, as a new letter with the same ce_id.
    (again,) = await eventually(
        letters, lambda found: len(found) == 1 and found[0]["id"] != first["id"], 60
    )
    assert again["headers"]["ce_id"] == marker

    assert main(["dlt", "--ops-url", ops, "discard", "gamification", again["id"]]) == 0
    assert json.loads(capsys.readouterr().out)["count"] == 1
    assert await letters() == []
    assert main(["dlt", "--ops-url", ops, "discard", "gamification"]) == 2
    capsys.readouterr()
