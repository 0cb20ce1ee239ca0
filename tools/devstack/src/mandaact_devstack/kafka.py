"""Apache Kafka from Maven Central jars: artifacts, a single-node KRaft broker, topics."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import hashlib
import logging
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mandaact_devstack.kafka_sasl import (
    KafkaCredentials,
    sasl_server_properties,
    scram_format_argument,
    sync_acls,
)
from mandaact_devstack.procs import (
    DevstackError,
    ManagedProcess,
    free_port,
    port_open,
    repo_root,
    run_sync,
    spawn_detached,
    split_host_port,
)

if TYPE_CHECKING:
    from mandaact_common.kafka_acls import Acl

log = logging.getLogger(__name__)

KAFKA_MAIN_CLASS = "kafka.Kafka"
STORAGE_TOOL_CLASS = "kafka.tools.StorageTool"
_STAMP = ".devstack-complete"
_REQUIRED_JAR_PREFIXES = (
    "kafka_2.13-",
    "kafka-clients-",
    "kafka-server-",
    "log4j-core-",
    "slf4j-api-",
)
_TOPIC_ALREADY_EXISTS = 36

FALLBACK_TOPICS: dict[str, int] = dict.fromkeys(
    (
        "user.changed",
        "goal.changed",
        "action.completed",
        "action.uncompleted",
        "xp.awarded",
        "xp.revoked",
        "level.reached",
        "badge.unlocked",
        "streak.changed",
        "report.generated",
    ),
    3,
)


# --------------------------------------------------------------------------- artifacts


def kafka_deploy_dir() -> Path:
    """`deploy/kafka` of the repo (pom.xml, log4j2.yaml, lib/)."""
    return repo_root() / "deploy" / "kafka"


def _pom_digest(pom: Path) -> str:
    return hashlib.sha256(pom.read_bytes()).hexdigest()


def _artifacts_complete(lib: Path, digest: str) -> bool:
    stamp = lib / _STAMP
    if not stamp.is_file() or stamp.read_text().strip() != digest:
        return False
    names = [p.name for p in lib.glob("*.jar")]
    return all(any(n.startswith(prefix) for n in names) for prefix in _REQUIRED_JAR_PREFIXES)


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ensure_kafka_artifacts(kafka_dir: Path | None = None, *, quiet: bool = True) -> Path:
    """Copy Kafka's jars into deploy/kafka/lib with Maven unless already complete; return lib."""
    kafka_dir = kafka_dir or kafka_deploy_dir()
    pom = kafka_dir / "pom.xml"
    lib = kafka_dir / "lib"
    if not pom.is_file():
        raise DevstackError(f"{pom} not found")
    digest = _pom_digest(pom)
    if _artifacts_complete(lib, digest):
        return lib
    with _file_lock(kafka_dir / "target" / ".devstack.lock"):
        if _artifacts_complete(lib, digest):  # another process finished meanwhile
            return lib
        mvn = shutil.which("mvn")
        if mvn is None:
            raise DevstackError(
                "Maven (mvn) is not on PATH; it is needed once to fetch Kafka's jars"
            )
        if lib.exists():
            shutil.rmtree(lib)
        cmd = [
            mvn,
            "-B",
            "-f",
            str(pom),
            "dependency:copy-dependencies",
            f"-Dkafka.lib.dir={lib}",
        ]
        if quiet:
            cmd.insert(1, "-q")
        log.info("fetching Kafka jars: %s", " ".join(cmd))
        started = time.monotonic()
        result = subprocess.run(cmd, cwd=kafka_dir, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise DevstackError(
                f"mvn failed ({result.returncode}):\n"
                f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
            )
        (lib / _STAMP).write_text(digest + "\n")
        log.info("Kafka jars ready in %.1f s", time.monotonic() - started)
    if not _artifacts_complete(lib, digest):
        raise DevstackError(f"mvn ran but {lib} is still incomplete")
    return lib


def kafka_version(lib: Path | None = None) -> str:
    """The Kafka version of the jars in lib (e.g. "4.4.0")."""
    lib = lib or kafka_deploy_dir() / "lib"
    for jar in lib.glob("kafka_2.13-*.jar"):
        return jar.name.removeprefix("kafka_2.13-").removesuffix(".jar")
    raise DevstackError(f"no kafka_2.13 jar in {lib}")


def java_executable() -> str:
    """The java binary: $JAVA_HOME/bin/java, else java on PATH."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return str(Path(java_home) / "bin" / "java")
    found = shutil.which("java")
    if found is None:
        raise DevstackError("java (17+) is not on PATH; the Kafka broker runs on the local JDK")
    return found


# --------------------------------------------------------------------------- broker


def new_cluster_id() -> str:
    """A random KRaft cluster id (base64url of a UUID, as `kafka-storage random-uuid`)."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cid.startswith("-"):
            return cid


def render_server_properties(
    data_dir: Path,
    *,
    host: str,
    port: int,
    controller_port: int,
    node_id: int = 1,
    credentials: KafkaCredentials | None = None,
) -> str:
    """server.properties of a combined broker+controller single-node KRaft cluster.

    With `credentials`: a SASL/SCRAM listener and ACLs instead of PLAINTEXT (kafka_sasl.py).
    """
    props = {
        "process.roles": "broker,controller",
        "node.id": str(node_id),
        "controller.quorum.voters": f"{node_id}@{host}:{controller_port}",
        "listeners": f"PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://{host}:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(data_dir / "kraft-logs"),
        "num.partitions": "3",
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "10",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "5",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "auto.create.topics.enable": "false",
        "group.initial.rebalance.delay.ms": "0",
        "num.network.threads": "2",
        "num.io.threads": "4",
        "num.recovery.threads.per.data.dir": "1",
        "log.retention.hours": "168",
    }
    if credentials is not None:
        props.update(
            sasl_server_properties(
                credentials, host=host, port=port, controller_port=controller_port
            )
        )
    lines = ["# Generated by mandaact_devstack; rewritten on every start."]
    lines += [f"{k}={v}" for k, v in props.items()]
    return "\n".join(lines) + "\n"


def _jvm_args(lib: Path, logs_dir: Path, heap: str, kafka_dir: Path) -> list[str]:
    return [
        java_executable(),
        f"-Xmx{heap}",
        "-Xms64m",
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-XX:InitiatingHeapOccupancyPercent=35",
        "-XX:+ExplicitGCInvokesConcurrent",
        "-XX:+ExitOnOutOfMemoryError",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={kafka_dir / 'log4j2.yaml'}",
        f"-Dkafka.logs.dir={logs_dir}",
        "-cp",
        f"{lib}/*",
    ]


def format_storage(
    data_dir: Path, properties: Path, *, heap: str = "256m", scram: Sequence[str] = ()
) -> None:
    """Format the KRaft log dir (once; keeps the cluster id in data_dir/cluster.id).

    `scram`: `--add-scram` values, the SCRAM users written into the new metadata log.
    """
    if (data_dir / "kraft-logs" / "meta.properties").is_file():
        return
    kafka_dir = kafka_deploy_dir()
    lib = ensure_kafka_artifacts(kafka_dir)
    id_file = data_dir / "cluster.id"
    if not id_file.is_file():
        id_file.write_text(new_cluster_id() + "\n")
    cluster_id = id_file.read_text().strip()
    logs_dir = data_dir / "logs"
    logs_dir.mkdir(parents=True, exist_ok=True)
    cmd = [
        *_jvm_args(lib, logs_dir, heap, kafka_dir),
        STORAGE_TOOL_CLASS,
        "format",
        "--ignore-formatted",
        "--cluster-id",
        cluster_id,
        "--config",
        str(properties),
    ]
    for credential in scram:
        cmd += ["--add-scram", credential]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=120)
    if result.returncode != 0:
        raise DevstackError(f"kafka storage format failed:\n{result.stdout}\n{result.stderr}")


def start_kafka(
    data_dir: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 9092,
    controller_port: int | None = None,
    heap: str = "512m",
    log_path: Path | None = None,
    pid_file: Path | None = None,
    timeout: float = 90.0,
    die_with_parent: bool = False,
    wait: bool = True,
    credentials: KafkaCredentials | None = None,
) -> ManagedProcess:
    """Start a single-node KRaft Kafka (detached) on host:port; wait until it answers.

    With `credentials`, the broker takes SASL/SCRAM clients only and enforces ACLs; its SCRAM
    users are made when the storage is first formatted (a data dir keeps its mode).
    """
    kafka_dir = kafka_deploy_dir()
    lib = ensure_kafka_artifacts(kafka_dir)
    if port_open(host, port):
        raise DevstackError(f"{host}:{port} is already in use; cannot start Kafka there")
    controller_port = controller_port or free_port(host)
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    properties = data_dir / "server.properties"
    properties.touch(mode=0o600)  # with credentials it holds the admin's password
    properties.chmod(0o600)
    properties.write_text(
        render_server_properties(
            data_dir,
            host=host,
            port=port,
            controller_port=controller_port,
            credentials=credentials,
        )
    )
    scram = [
        scram_format_argument(user, password)
        for user, password in (credentials.passwords.items() if credentials else ())
    ]
    format_storage(data_dir, properties, scram=scram)
    logs_dir = data_dir / "logs"
    cmd = [*_jvm_args(lib, logs_dir, heap, kafka_dir), KAFKA_MAIN_CLASS, str(properties)]
    proc = spawn_detached(
        "kafka",
        cmd,
        log_path=log_path or logs_dir / "kafka.out",
        cwd=data_dir,
        pid_file=pid_file,
        die_with_parent=die_with_parent,
    )
    if not wait:
        return proc
    try:
        security = credentials.security() if credentials else None
        run_sync(
            lambda: wait_kafka_ready(
                f"{host}:{port}", max_wait=timeout, proc=proc, security=security
            )
        )
    except BaseException:
        proc.stop()
        raise
    return proc


async def _list_topics(
    bootstrap: str, request_timeout: float, security: Mapping[str, Any] | None = None
) -> list[str]:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap,
        request_timeout_ms=int(request_timeout * 1000),
        **(security or {}),
    )
    try:
        await admin.start()
        topics: list[str] = list(await admin.list_topics())
        return topics
    finally:
        with contextlib.suppress(Exception):
            await admin.close()


async def kafka_answers(
    bootstrap: str, max_wait: float = 5.0, *, security: Mapping[str, Any] | None = None
) -> bool:
    """Whether a Kafka broker at bootstrap answers a metadata request within max_wait seconds."""
    host, port = split_host_port(bootstrap, 9092)
    if not port_open(host, port):
        return False
    try:
        await asyncio.wait_for(_list_topics(bootstrap, max_wait, security), max_wait)
    except Exception:
        return False
    return True


async def wait_kafka_ready(
    bootstrap: str,
    *,
    max_wait: float = 90.0,
    proc: ManagedProcess | None = None,
    security: Mapping[str, Any] | None = None,
) -> None:
    """Wait until the broker lists topics through aiokafka's admin client."""
    deadline = time.monotonic() + max_wait
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive():
            raise DevstackError(f"Kafka exited during startup; log tail:\n{proc.log_tail()}")
        host, port = split_host_port(bootstrap, 9092)
        if port_open(host, port):
            try:
                await asyncio.wait_for(_list_topics(bootstrap, 5.0, security), 6.0)
            except Exception as exc:
                last_error = exc
            else:
                return
        await asyncio.sleep(0.2)
    tail = f"\nlog tail:\n{proc.log_tail()}" if proc is not None else ""
    raise DevstackError(f"Kafka at {bootstrap} not ready after {max_wait}s ({last_error!r}){tail}")


# --------------------------------------------------------------------------- topics


def default_topics() -> dict[str, int]:
    """Topic -> partitions: the contracts' event and dead-letter topics, else a built-in copy."""
    try:
        from mandaact_contracts.topics import topics_to_create
    except ImportError:
        return dict(FALLBACK_TOPICS)
    return topics_to_create()


def _leaders_ready(described: list[Any], names: set[str]) -> bool:
    seen = set()
    for topic in described:
        if topic.get("error_code", 0) != 0 or not topic.get("partitions"):
            continue
        if all(p.get("leader", -1) >= 0 for p in topic["partitions"]):
            seen.add(topic["topic"])
    return names <= seen


async def create_topics(
    bootstrap: str,
    topics: Mapping[str, int],
    *,
    replication_factor: int = 1,
    leader_wait: float = 30.0,
    security: Mapping[str, Any] | None = None,
) -> list[str]:
    """Create missing topics (existing ones are left alone), wait for leaders; return created."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    if not topics:
        return []
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, request_timeout_ms=15000, **(security or {})
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [name for name in topics if name not in existing]
        created: list[str] = []
        if missing:
            response = await admin.create_topics(
                [NewTopic(name, int(topics[name]), replication_factor) for name in missing]
            )
            for entry in response.topic_errors:
                name, code = entry[0], entry[1]
                if code == 0:
                    created.append(name)
                elif code != _TOPIC_ALREADY_EXISTS:
                    message = entry[2] if len(entry) > 2 else ""
                    raise DevstackError(f"creating topic {name!r} failed: error {code} {message}")
        deadline = time.monotonic() + leader_wait
        names = set(topics)
        while True:
            described = await admin.describe_topics(list(names))
            if _leaders_ready(described, names):
                return created
            if time.monotonic() > deadline:
                raise DevstackError(f"topics {sorted(names)} have no leaders after {leader_wait}s")
            await asyncio.sleep(0.1)
    finally:
        with contextlib.suppress(Exception):
            await admin.close()


async def warm_up_coordinators(
    bootstrap: str, *, max_wait: float = 30.0, security: Mapping[str, Any] | None = None
) -> None:
    """Make the broker create __consumer_offsets now, so the first consumer group joins fast."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, request_timeout_ms=10000, **(security or {})
    )
    await admin.start()
    try:
        deadline = time.monotonic() + max_wait
        while True:
            try:
                await admin.find_coordinator("mandaact-devstack-warmup")
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)
            else:
                return
    finally:
        with contextlib.suppress(Exception):
            await admin.close()


def create_topics_sync(
    bootstrap: str, topics: Mapping[str, int], *, replication_factor: int = 1
) -> list[str]:
    """`create_topics` for sync callers (works inside a running event loop too)."""
    return run_sync(lambda: create_topics(bootstrap, topics, replication_factor=replication_factor))


async def provision_kafka(
    bootstrap: str,
    topics: Mapping[str, int],
    *,
    credentials: KafkaCredentials | None = None,
    acls: Mapping[str, frozenset[Acl]] | None = None,
    warm_up: bool = True,
) -> list[str]:
    """Create the topics, warm up the group coordinator and, with `credentials` (a SASL broker),
    make each principal's ACLs exactly `acls`. Returns the topics created."""
    security = credentials.security() if credentials else None
    created = await create_topics(bootstrap, topics, security=security)
    if warm_up:
        await warm_up_coordinators(bootstrap, security=security)
    if credentials is not None and acls is not None:
        await sync_acls(bootstrap, credentials, acls)
    return created
