"""The pure parts of delivery resilience: what is transient, backoff, liveness, row faults."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    NotEnoughReplicasError,
    TopicAuthorizationFailedError,
    UnknownTopicOrPartitionError,
)
from pymongo.errors import (
    AutoReconnect,
    ExecutionTimeout,
    NetworkTimeout,
    OperationFailure,
    ServerSelectionTimeoutError,
)

from mandaact_common.consumer import ConsumerStopping, RetryPolicy
from mandaact_common.liveness import Heartbeat, probe_app
from mandaact_common.mongo import is_deadline, is_transient
from mandaact_common.outbox import row_at_fault
from mandaact_common.settings import ServiceSettings
from mandaact_common.worker import GroupKeeper, retry_policy

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "error",
    [
        AutoReconnect("connection reset"),
        NetworkTimeout("timed out"),
        ServerSelectionTimeoutError("no server"),
        ExecutionTimeout("deadline", 50),
        OperationFailure("stepped down", 189),
        OperationFailure("write conflict", 112),
        TimeoutError(),
        ConnectionRefusedError(),
    ],
)
def test_what_says_nothing_about_the_message_is_transient(error: BaseException) -> None:
    assert is_transient(error)


@pytest.mark.parametrize(
    "error",
    [ValueError("a rule"), KeyError("x"), OperationFailure("document failed validation", 121)],
)
def test_what_the_message_causes_is_not_transient(error: BaseException) -> None:
    assert not is_transient(error)


def test_deadlines_are_told_apart() -> None:
    assert is_deadline(ExecutionTimeout("deadline", 50))
    assert is_deadline(TimeoutError())
    assert not is_deadline(AutoReconnect("reset"))


def test_backoff_doubles_up_to_its_cap_and_never_overflows() -> None:
    policy = RetryPolicy(backoff_seconds=0.2, max_backoff_seconds=30)
    assert [policy.pause_after(n) for n in range(1, 10)] == [
        0.2,
        0.4,
        0.8,
        1.6,
        3.2,
        6.4,
        12.8,
        25.6,
        30,
    ]
    assert policy.pause_after(100_000) == 30


def test_the_retry_policy_and_its_defaults_come_from_the_settings() -> None:
    settings = ServiceSettings(env="test")
    policy = retry_policy(settings)
    assert (policy.retries, policy.backoff_seconds) == (4, 0.2)
    assert (policy.max_backoff_seconds, policy.batch_deadline_seconds) == (30, 30)
    assert settings.mongo_timeout_ms == 10_000
    assert settings.relay_max_attempts == 10
    assert settings.processed_ttl_seconds == 14 * 24 * 3600
    assert settings.worker_stall_seconds == 30
    with pytest.raises(ValueError, match="less than or equal to 240"):
        ServiceSettings(env="test", consumer_batch_deadline_seconds=600)
    with pytest.raises(ValueError, match="greater than or equal to 3600"):
        ServiceSettings(env="test", processed_ttl_seconds=60)


@pytest.mark.parametrize(
    ("error", "at_fault"),
    [
        (MessageSizeTooLargeError(), True),
        (TopicAuthorizationFailedError(), True),
        (UnknownTopicOrPartitionError(), True),
        (KeyError("value"), True),  # a row that cannot even be read into a record
        (KafkaConnectionError(), False),
        (KafkaTimeoutError(), False),
        (NotEnoughReplicasError(), False),
        (AutoReconnect("the database went away"), False),
        (TimeoutError(), False),
    ],
)
def test_only_what_would_fail_on_a_healthy_broker_counts_against_a_row(
    error: BaseException, at_fault: bool
) -> None:
    assert row_at_fault(error) is at_fault


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def call(app: Any, path: str) -> tuple[str, bytes]:
    status: list[str] = []
    body = b"".join(
        app({"PATH_INFO": path, "REQUEST_METHOD": "GET"}, lambda s, h: status.append(s))
    )
    return status[0], body


def test_the_probe_answers_503_once_the_loop_has_been_silent_too_long() -> None:
    clock = Clock()
    heartbeat = Heartbeat(5.0, clock=clock)
    app = probe_app(heartbeat)
    status, body = call(app, "/livez")
    assert status.startswith("200")
    assert json.loads(body)["status"] == "ok"
    clock.now += 5.0
    assert call(app, "/livez")[0].startswith("200")
    clock.now += 0.1
    status, body = call(app, "/livez")
    assert status.startswith("503")
    assert json.loads(body) == {
        "status": "stalled",
        "loop_age_seconds": 5.1,
        "max_age_seconds": 5.0,
    }
    heartbeat.beat()
    assert call(app, "/livez")[0].startswith("200")
    assert call(app, "/nope")[0].startswith("404")
    status, body = call(app, "/metrics")
    assert status.startswith("200")
    assert b"mandaact_worker_loop_age_seconds" in body


class FakeKafkaConsumer:
    """Records what the keeper does to the consumer (the real one is in the integration test)."""

    def __init__(self, assigned: set[Any]) -> None:
        self.assigned = set(assigned)
        self.paused_set: set[Any] = set()
        self.polls = 0
        self.seeks: list[tuple[Any, int]] = []
        self.fetched: dict[Any, list[Any]] = {}

    def assignment(self) -> set[Any]:
        return set(self.assigned)

    def paused(self) -> set[Any]:
        return self.paused_set & self.assigned

    def pause(self, *partitions: Any) -> None:
        self.paused_set |= set(partitions)

    def resume(self, *partitions: Any) -> None:
        self.paused_set -= set(partitions)

    def seek(self, partition: Any, offset: int) -> None:
        self.seeks.append((partition, offset))

    async def getmany(self, *partitions: Any, timeout_ms: int = 0, max_records: Any = None) -> Any:
        self.polls += 1
        fetched, self.fetched = self.fetched, {}
        return fetched


class Rec:
    def __init__(self, offset: int) -> None:
        self.offset = offset


async def test_the_group_keeper_pauses_polls_puts_back_and_resumes() -> None:
    consumer = FakeKafkaConsumer({"p0", "p1"})
    stop = asyncio.Event()
    keeper = GroupKeeper(consumer, stop, poll_seconds=0.05)
    consumer.fetched = {"p2": [Rec(7), Rec(8)]}  # a rebalance let records through
    await keeper(0.2)
    assert consumer.paused_set == {"p0", "p1"}
    assert consumer.polls >= 3
    assert consumer.seeks == [("p2", 7)]
    consumer.assigned = {"p0"}  # p1 was revoked meanwhile
    keeper.release()
    assert consumer.paused_set == {"p1"}
    stop.set()
    with pytest.raises(ConsumerStopping):
        await keeper(10)
