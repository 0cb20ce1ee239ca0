"""Cluster mode and worker instances of devstack: ports, names, replication, parsing."""

from __future__ import annotations

from pathlib import Path

import pytest

from mandaact_devstack.cli import cluster_ports, kafka_brokers
from mandaact_devstack.kafka import cluster_replication, plan_cluster, render_server_properties
from mandaact_devstack.procs import DevstackError
from mandaact_devstack.services import (
    SERVICE_PORTS,
    process_name,
    worker_instances,
    worker_metrics_port,
)

pytestmark = pytest.mark.unit


def props(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if not line.startswith("#"))


def test_three_brokers_replicate_three_times_with_two_in_sync() -> None:
    assert cluster_replication(1) == (1, 1)
    assert cluster_replication(2) == (2, 1)
    assert cluster_replication(3) == (3, 2)
    assert cluster_replication(5) == (3, 2)
    with pytest.raises(DevstackError):
        cluster_replication(0)


def test_every_node_of_a_cluster_votes_and_defaults_to_the_cluster_replication(
    tmp_path: Path,
) -> None:
    nodes = plan_cluster(tmp_path, 3, ports=[1, 2, 3], controller_ports=[11, 12, 13])
    assert [n.node_id for n in nodes] == [1, 2, 3]
    assert {n.cluster_id_file for n in nodes} == {tmp_path.resolve() / "cluster.id"}
    assert len({n.data_dir for n in nodes}) == 3
    node = nodes[1]
    rendered = props(
        render_server_properties(
            node.data_dir,
            host=node.host,
            port=node.port,
            controller_port=node.controller_port,
            **node.properties(),
        )
    )
    assert rendered["node.id"] == "2"
    assert rendered["controller.quorum.voters"] == ("1@127.0.0.1:11,2@127.0.0.1:12,3@127.0.0.1:13")
    assert rendered["listeners"] == "PLAINTEXT://127.0.0.1:2,CONTROLLER://127.0.0.1:12"
    for key in (
        "default.replication.factor",
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
    ):
        assert rendered[key] == "3", key
    assert rendered["min.insync.replicas"] == "2"
    assert rendered["transaction.state.log.min.isr"] == "2"


def test_a_single_broker_keeps_its_own_quorum_and_replication_one(tmp_path: Path) -> None:
    rendered = props(render_server_properties(tmp_path, host="h", port=1, controller_port=2))
    assert rendered["controller.quorum.voters"] == "1@h:2"
    assert rendered["default.replication.factor"] == "1"
    assert rendered["min.insync.replicas"] == "1"


def test_a_cluster_plan_refuses_clashing_or_missing_ports(tmp_path: Path) -> None:
    with pytest.raises(DevstackError, match="must differ"):
        plan_cluster(tmp_path, 2, ports=[1, 2], controller_ports=[2, 3])
    with pytest.raises(DevstackError, match="need 3"):
        plan_cluster(tmp_path, 3, ports=[1, 2], controller_ports=[4, 5, 6])


def test_make_up_cluster_nodes_sit_100_ports_apart() -> None:
    assert cluster_ports(3) == ([9092, 9192, 9292], [9093, 9193, 9293])
    assert kafka_brokers("") == 1
    assert kafka_brokers("3") == 3
    for bad in ("0", "6", "three"):
        with pytest.raises(DevstackError, match="MANDAACT_KAFKA_BROKERS"):
            kafka_brokers(bad)


def test_worker_instances_for_all_or_some_services() -> None:
    assert worker_instances("") == dict.fromkeys(SERVICE_PORTS, 1)
    assert worker_instances("2") == dict.fromkeys(SERVICE_PORTS, 2)
    some = worker_instances("checkins=3, gamification=2")
    assert some["checkins"] == 3
    assert some["gamification"] == 2
    assert some["goals"] == 1
    for bad in ("nope=2", "checkins=0", "checkins=x", "10"):
        with pytest.raises(DevstackError, match="MANDAACT_WORKER_INSTANCES"):
            worker_instances(bad)


def test_instances_past_the_first_get_their_own_names_and_metrics_ports() -> None:
    assert process_name("checkins", "worker") == "checkins-worker"
    assert process_name("checkins", "worker", 2) == "checkins-worker-2"
    assert worker_metrics_port(8002) == 9002
    assert worker_metrics_port(8002, 3) == 9202
    with pytest.raises(DevstackError):
        process_name("checkins", "worker", 0)
