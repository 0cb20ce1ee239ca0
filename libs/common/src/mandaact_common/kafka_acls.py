"""The Kafka ACLs of a service's principal, derived from what its worker declares it uses.

One source of truth: a service's `WorkerSpec` names the topics it publishes and, per consumer
group, the topics it reads. Its principal may write exactly those published topics and its groups'
dead-letter topics, read exactly the consumed topics, and use exactly its own groups. Kafka lets
READ and WRITE imply DESCRIBE, and an idempotent producer needs WRITE on some topic (no
IDEMPOTENT_WRITE on the cluster since Kafka 2.8, KIP-679), so nothing else is granted.
devstack applies these ACLs; the compose init job and the Strimzi `KafkaUser`s spell them out,
and `tests/deploy` checks that they match.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mandaact_common.worker import WorkerSpec
from mandaact_contracts.topics import dead_letter_topic

ResourceType = Literal["topic", "group"]
Operation = Literal["Read", "Write", "Describe"]


@dataclass(frozen=True, order=True)
class Acl:
    """One ALLOW rule of a principal: an operation on one literally named topic or group."""

    resource: ResourceType
    name: str
    operation: Operation


def kafka_principal(service: str) -> str:
    """The SASL username (Kafka principal `User:<name>`) a service's processes use."""
    return f"mandaact-{service}"


def service_acls(spec: WorkerSpec) -> frozenset[Acl]:
    """Everything the service's principal may do, and nothing more."""
    acls = {Acl("topic", topic, "Write") for topic in spec.publishes}
    for consumer in spec.consumers:
        acls.add(Acl("group", consumer.group, "Read"))
        acls.add(Acl("topic", dead_letter_topic(consumer.group), "Write"))
        acls |= {Acl("topic", topic, "Read") for topic in consumer.topics}
    acls |= {Acl("topic", topic, "Read") for topic in spec.observes}
    acls |= {Acl("group", group, "Describe") for group in spec.describes_groups}
    return frozenset(acls)
