"""Kafka with SASL/SCRAM-SHA-512 and ACLs: credentials, broker settings, the services' ACLs.

`MANDAACT_KAFKA_SASL=true make up` and the SASL tests use this. The broker gets one client
listener, `SASL_PLAINTEXT` with SCRAM-SHA-512, and the controller listener (SASL PLAIN with
the admin's static credential, since SCRAM credentials live in the metadata the controller
serves). `StandardAuthorizer` enforces the ACLs; `mandaact-admin` is the only super user (the
broker itself, devstack, tests and tools). SCRAM credentials are written into the metadata log
when the storage is formatted; ACLs are created (and stale ones deleted) through the admin API.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import importlib
import json
import os
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from mandaact_devstack.procs import DevstackError

if TYPE_CHECKING:
    from mandaact_common.kafka_acls import Acl
    from mandaact_common.worker import WorkerSpec

ADMIN_USER: Final = "mandaact-admin"
"""The super user: the broker's own identity, devstack, tests and development tools."""
SCRAM_MECHANISM: Final = "SCRAM-SHA-512"
SCRAM_ITERATIONS: Final = 8192
SASL_ENV_FLAG: Final = "MANDAACT_KAFKA_SASL"
"""`MANDAACT_KAFKA_SASL=true make up` runs the local Kafka with SASL and ACLs."""
CREDENTIALS_FILE: Final = "credentials.json"

# Kafka protocol codes (org.apache.kafka.common.resource / acl).
_RESOURCE_ANY, _RESOURCE_TOPIC, _RESOURCE_GROUP = 1, 2, 3
_PATTERN_ANY, _PATTERN_LITERAL = 1, 3
_OPERATION_ANY = 1
_OPERATIONS: Final = {"Read": 3, "Write": 4, "Describe": 8}
_PERMISSION_ANY, _PERMISSION_ALLOW = 1, 3
_RESOURCES: Final = {"topic": _RESOURCE_TOPIC, "group": _RESOURCE_GROUP}


def sasl_wanted(environ: Mapping[str, str] | None = None) -> bool:
    """Whether `MANDAACT_KAFKA_SASL` asks for SASL (true/1/yes/on)."""
    value = (environ if environ is not None else os.environ).get(SASL_ENV_FLAG, "")
    return value.strip().lower() in ("1", "true", "yes", "on")


# --------------------------------------------------------------------------- credentials


@dataclass(frozen=True)
class KafkaCredentials:
    """The SCRAM passwords of the admin and of each service principal of one broker."""

    passwords: Mapping[str, str]

    @property
    def admin_password(self) -> str:
        """The super user's password."""
        return self.passwords[ADMIN_USER]

    def security(self, user: str = ADMIN_USER) -> dict[str, Any]:
        """aiokafka keyword arguments that authenticate as `user`."""
        return {
            "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": SCRAM_MECHANISM,
            "sasl_plain_username": user,
            "sasl_plain_password": self.passwords[user],
        }

    def env(self, user: str) -> dict[str, str]:
        """The environment that makes a service process (or a tool) authenticate as `user`."""
        return {
            "MANDAACT_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "MANDAACT_KAFKA_SASL_USERNAME": user,
            "MANDAACT_KAFKA_SASL_PASSWORD": self.passwords[user],
        }

    @classmethod
    def load_or_create(cls, path: Path, users: Iterable[str]) -> KafkaCredentials:
        """Read `path`, or create it (mode 0600) with a random password per user and the admin."""
        wanted = {ADMIN_USER, *users}
        if path.is_file():
            passwords: dict[str, str] = json.loads(path.read_text())
            missing = sorted(wanted - set(passwords))
            if missing:
                raise DevstackError(
                    f"{path} has no credentials for {', '.join(missing)}; SCRAM users are made"
                    f" when the storage is formatted: remove {path.parent} to start afresh"
                )
            return cls(passwords)
        passwords = {user: secrets.token_urlsafe(24) for user in sorted(wanted)}
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(passwords, fh, indent=2)
            fh.write("\n")
        return cls(passwords)


def scram_format_argument(user: str, password: str, *, salt: bytes | None = None) -> str:
    """`kafka-storage format --add-scram` value with the salted password, not the password."""
    salt = salt or secrets.token_bytes(24)
    salted = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, SCRAM_ITERATIONS)
    return (
        f"{SCRAM_MECHANISM}=[name={user},iterations={SCRAM_ITERATIONS},"
        f'salt="{base64.b64encode(salt).decode()}",'
        f'saltedpassword="{base64.b64encode(salted).decode()}"]'
    )


def sasl_server_properties(
    credentials: KafkaCredentials, *, host: str, port: int, controller_port: int
) -> dict[str, str]:
    """The listener, SASL and authorizer lines of server.properties for a SASL broker."""
    admin, password = ADMIN_USER, credentials.admin_password
    return {
        "listeners": f"SASL_PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller_port}",
        "advertised.listeners": f"SASL_PLAINTEXT://{host}:{port}",
        "inter.broker.listener.name": "SASL_PLAINTEXT",
        "listener.security.protocol.map": (
            "CONTROLLER:SASL_PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT"
        ),
        "sasl.enabled.mechanisms": SCRAM_MECHANISM,
        "sasl.mechanism.inter.broker.protocol": SCRAM_MECHANISM,
        "listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config": (
            "org.apache.kafka.common.security.scram.ScramLoginModule required"
            f' username="{admin}" password="{password}";'
        ),
        "sasl.mechanism.controller.protocol": "PLAIN",
        "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
        "listener.name.controller.plain.sasl.jaas.config": (
            "org.apache.kafka.common.security.plain.PlainLoginModule required"
            f' username="{admin}" password="{password}" user_{admin}="{password}";'
        ),
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": f"User:{admin}",
        "allow.everyone.if.no.acl.found": "false",
    }


# --------------------------------------------------------------------------- ACLs


def service_principals(services: Iterable[str]) -> list[str]:
    """The SASL usernames of these services (`mandaact-<service>`)."""
    from mandaact_common.kafka_acls import kafka_principal

    return [kafka_principal(service) for service in services]


def service_worker_specs(services: Iterable[str]) -> dict[str, WorkerSpec]:
    """Each installed service's `WorkerSpec` (from `<service>.bootstrap.worker_spec()`)."""
    specs: dict[str, WorkerSpec] = {}
    for service in services:
        try:
            bootstrap = importlib.import_module(f"{service}.bootstrap")
        except ImportError:
            continue
        specs[service] = bootstrap.worker_spec()
    return specs


def stack_acls(services: Iterable[str]) -> dict[str, frozenset[Acl]]:
    """Principal -> ACLs of every installed service, derived from its declared topics."""
    from mandaact_common.kafka_acls import kafka_principal, service_acls

    return {
        kafka_principal(name): service_acls(spec)
        for name, spec in service_worker_specs(services).items()
    }


def _acl_of(resource_type: int, name: str, pattern: int, operation: int) -> Acl | None:
    from mandaact_common.kafka_acls import Acl

    kinds = {code: kind for kind, code in _RESOURCES.items()}
    operations = {code: op for op, code in _OPERATIONS.items()}
    if pattern != _PATTERN_LITERAL or resource_type not in kinds or operation not in operations:
        return None
    return Acl(kinds[resource_type], name, operations[operation])  # type: ignore[arg-type]


def _check(errors: Iterable[tuple[int, str | None]], what: str) -> None:
    failed = [f"error {code} {message or ''}".strip() for code, message in errors if code]
    if failed:
        raise DevstackError(f"{what} failed: {'; '.join(failed)}")


async def sync_acls(
    bootstrap: str,
    credentials: KafkaCredentials,
    wanted: Mapping[str, frozenset[Acl]],
    *,
    max_wait: float = 30.0,
) -> dict[str, int]:
    """Make each principal's ALLOW ACLs exactly `wanted` (create missing, delete stale).

    aiokafka has no ACL admin API, so this sends Kafka's CreateAcls / DescribeAcls /
    DeleteAcls requests through its client. Returns principal -> ACLs created.
    """
    from aiokafka.client import AIOKafkaClient
    from aiokafka.protocol.admin import CreateAclsRequest, DeleteAclsRequest, DescribeAclsRequest

    client = AIOKafkaClient(bootstrap_servers=bootstrap, **credentials.security())
    await asyncio.wait_for(client.bootstrap(), max_wait)
    created: dict[str, int] = {}
    try:
        node = client.get_random_node()
        for user, acls in wanted.items():
            principal = f"User:{user}"
            described = await client.send(
                node,
                DescribeAclsRequest(
                    _RESOURCE_ANY,
                    None,  # null: any name
                    _PATTERN_ANY,
                    principal,
                    None,  # null: any host
                    _OPERATION_ANY,
                    _PERMISSION_ANY,
                ),
            )
            _check([(described.error_code, described.error_message)], f"describing {principal}")
            present: set[Acl] = set()
            for resource_type, name, pattern, entries in described.resources:
                for _principal, host, operation, permission in entries:
                    acl = _acl_of(resource_type, name, pattern, operation)
                    if acl in acls and host == "*" and permission == _PERMISSION_ALLOW:
                        present.add(acl)
                        continue
                    deleted = await client.send(
                        node,
                        DeleteAclsRequest(
                            resource_type, name, pattern, principal, host, operation, permission
                        ),
                    )
                    _check(
                        [(r[0], r[1]) for r in deleted.filter_responses],
                        f"deleting a stale ACL of {principal} on {name}",
                    )
            for acl in sorted(acls - present):
                response = await client.send(
                    node,
                    CreateAclsRequest(
                        _RESOURCES[acl.resource],
                        acl.name,
                        _PATTERN_LITERAL,
                        principal,
                        "*",
                        _OPERATIONS[acl.operation],
                        _PERMISSION_ALLOW,
                    ),
                )
                _check(
                    [(r[0], r[1]) for r in response.creation_responses],
                    f"creating {acl} for {principal}",
                )
            created[user] = len(acls - present)
        await _wait_acls_visible(client, node, wanted, max_wait)
    finally:
        with contextlib.suppress(Exception):
            await client.close()
    return created


async def _wait_acls_visible(
    client: Any, node: int, wanted: Mapping[str, frozenset[Acl]], max_wait: float
) -> None:
    """ACLs go through the metadata log: wait until the broker's authorizer reports them all."""
    from aiokafka.protocol.admin import DescribeAclsRequest

    deadline = asyncio.get_running_loop().time() + max_wait
    while True:
        missing = 0
        for user, acls in wanted.items():
            described = await client.send(
                node,
                DescribeAclsRequest(
                    _RESOURCE_ANY,
                    None,
                    _PATTERN_ANY,
                    f"User:{user}",
                    None,
                    _OPERATION_ANY,
                    _PERMISSION_ALLOW,
                ),
            )
            seen = {
                _acl_of(rtype, name, pattern, op)
                for rtype, name, pattern, entries in described.resources
                for _p, _h, op, _perm in entries
            }
            missing += len(acls - seen)
        if not missing:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise DevstackError(f"{missing} ACLs still not visible after {max_wait}s")
        await asyncio.sleep(0.1)
