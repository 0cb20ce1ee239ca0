"""Local dev/test infrastructure: Kafka (KRaft) from Maven Central jars, SecantusDB, services.

Nothing here is imported by service code; tests and `make up` / `make down` use it.
"""

from __future__ import annotations

from mandaact_devstack.kafka import (
    FALLBACK_TOPICS,
    ClusterNode,
    KafkaCluster,
    create_topics,
    create_topics_sync,
    default_topics,
    ensure_kafka_artifacts,
    kafka_answers,
    kafka_version,
    provision_kafka,
    start_kafka,
    start_kafka_cluster,
    wait_kafka_ready,
    warm_up_coordinators,
)
from mandaact_devstack.kafka_sasl import ADMIN_USER, KafkaCredentials, stack_acls, sync_acls
from mandaact_devstack.mongo import (
    check_mongo_features,
    mongo_answers,
    mongodb_url,
    start_secantus,
    wait_mongo_ready,
)
from mandaact_devstack.procs import (
    DevstackError,
    ManagedProcess,
    free_port,
    port_open,
    repo_root,
    run_sync,
    stop_process_group,
    wait_port_closed,
)
from mandaact_devstack.services import (
    SERVICE_PORTS,
    start_service,
    stop_service,
    wait_http_ready,
)
from mandaact_devstack.testinfra import (
    InfraHandle,
    SaslKafka,
    docker_available,
    start_sasl_kafka,
    start_test_infra,
)

__all__ = [
    "ADMIN_USER",
    "FALLBACK_TOPICS",
    "SERVICE_PORTS",
    "ClusterNode",
    "DevstackError",
    "InfraHandle",
    "KafkaCluster",
    "KafkaCredentials",
    "ManagedProcess",
    "SaslKafka",
    "check_mongo_features",
    "create_topics",
    "create_topics_sync",
    "default_topics",
    "docker_available",
    "ensure_kafka_artifacts",
    "free_port",
    "kafka_answers",
    "kafka_version",
    "mongo_answers",
    "mongodb_url",
    "port_open",
    "provision_kafka",
    "repo_root",
    "run_sync",
    "stack_acls",
    "start_kafka",
    "start_kafka_cluster",
    "start_sasl_kafka",
    "start_secantus",
    "start_service",
    "start_test_infra",
    "stop_process_group",
    "stop_service",
    "sync_acls",
    "wait_http_ready",
    "wait_kafka_ready",
    "wait_mongo_ready",
    "wait_port_closed",
    "warm_up_coordinators",
]
