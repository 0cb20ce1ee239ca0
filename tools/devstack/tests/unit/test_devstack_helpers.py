"""Pure helpers of mandaact_devstack: config rendering, ports, naming."""

from __future__ import annotations

from pathlib import Path

import pytest

from mandaact_devstack import FALLBACK_TOPICS, default_topics, free_port, mongodb_url
from mandaact_devstack.kafka import new_cluster_id, render_server_properties
from mandaact_devstack.procs import split_host_port
from mandaact_devstack.services import log_path, pid_path, script_name

pytestmark = pytest.mark.unit


def _props(text: str) -> dict[str, str]:
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def test_server_properties_single_node_kraft() -> None:
    props = _props(
        render_server_properties(Path("/data"), host="127.0.0.1", port=19092, controller_port=19093)
    )
    assert props["process.roles"] == "broker,controller"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092"
    assert props["log.dirs"] == "/data/kraft-logs"
    for key in (
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "min.insync.replicas",
    ):
        assert props[key] == "1"
    assert props["auto.create.topics.enable"] == "false"
    assert props["group.initial.rebalance.delay.ms"] == "0"


def test_cluster_id_is_kafka_shaped() -> None:
    cid = new_cluster_id()
    assert len(cid) == 22
    assert not cid.startswith("-")


def test_free_ports_are_distinct() -> None:
    ports = {free_port() for _ in range(20)}
    assert len(ports) == 20


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("127.0.0.1:9092", ("127.0.0.1", 9092)),
        ("a:1,b:2", ("a", 1)),
        ("PLAINTEXT://host:19092", ("host", 19092)),
        ("host", ("host", 9092)),
    ],
)
def test_split_host_port(address: str, expected: tuple[str, int]) -> None:
    assert split_host_port(address, 9092) == expected


def test_topics_cover_the_contract() -> None:
    topics = default_topics()
    assert set(FALLBACK_TOPICS) <= set(topics)
    assert all(n >= 1 for n in topics.values())


def test_names_and_urls() -> None:
    assert mongodb_url("127.0.0.1", 27017) == "mongodb://127.0.0.1:27017/?directConnection=true"
    assert script_name("goals", "api") == "mandaact-goals-api"
    assert pid_path("goals", "worker", Path("/r")) == Path("/r/pids/goals-worker.pid")
    assert log_path("reports", "api", Path("/r")) == Path("/r/logs/reports-api.log")
