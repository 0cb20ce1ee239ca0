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
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
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
    wait_port_closed,
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
        "notification.requested",
        "user.deleted",
        "user.erased",
        "tenant.deleted",
        # the consumer groups' dead-letter topics
        "goals.dlt",
        "checkins.dlt",
        "gamification.dlt",
        "reports.dlt",
        "notifications.dlt",
        "webhooks.dlt",
    ),
    3,
)
"""A copy of `mandaact_contracts.topics.topics_to_create()` for when the contracts are not
installed (tests/deploy checks that the two agree)."""


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
    voters: str | None = None,
    replication_factor: int = 1,
    min_insync_replicas: int = 1,
) -> str:
    """server.properties of a combined broker+controller KRaft node (single-node by default).

    With `credentials`: a SASL/SCRAM listener and ACLs instead of PLAINTEXT (kafka_sasl.py).
    With `voters` (`id@host:port,...`, every node's controller): one node of a cluster whose
    internal topics and default topic settings have `replication_factor` and
    `min_insync_replicas`.
    """
    rf, isr = str(replication_factor), str(min_insync_replicas)
    props = {
        "process.roles": "broker,controller",
        "node.id": str(node_id),
        "controller.quorum.voters": voters or f"{node_id}@{host}:{controller_port}",
        "listeners": f"PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://{host}:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(data_dir / "kraft-logs"),
        "num.partitions": "3",
        "default.replication.factor": rf,
        "min.insync.replicas": isr,
        "offsets.topic.replication.factor": rf,
        "offsets.topic.num.partitions": "10",
        "transaction.state.log.replication.factor": rf,
        "transaction.state.log.min.isr": isr,
        "transaction.state.log.num.partitions": "5",
        "share.coordinator.state.topic.replication.factor": rf,
        "share.coordinator.state.topic.min.isr": isr,
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
    data_dir: Path,
    properties: Path,
    *,
    heap: str = "256m",
    scram: Sequence[str] = (),
    cluster_id_file: Path | None = None,
) -> None:
    """Format the KRaft log dir (once; keeps the cluster id in data_dir/cluster.id).

    `scram`: `--add-scram` values, the SCRAM users written into the new metadata log.
    `cluster_id_file`: where the cluster id is kept instead (one file for every node of a
    cluster).
    """
    if (data_dir / "kraft-logs" / "meta.properties").is_file():
        return
    kafka_dir = kafka_deploy_dir()
    lib = ensure_kafka_artifacts(kafka_dir)
    id_file = cluster_id_file or data_dir / "cluster.id"
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


def prepare_kafka_dir(
    data_dir: Path,
    *,
    host: str,
    port: int,
    controller_port: int,
    credentials: KafkaCredentials | None = None,
    node: ClusterNode | None = None,
) -> Path:
    """Write data_dir/server.properties and format the storage (once); return the file."""
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
            **(node.properties() if node is not None else {}),
        )
    )
    scram = [
        scram_format_argument(user, password)
        for user, password in (credentials.passwords.items() if credentials else ())
    ]
    format_storage(
        data_dir,
        properties,
        scram=scram,
        cluster_id_file=node.cluster_id_file if node is not None else None,
    )
    return properties


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
    node: ClusterNode | None = None,
) -> ManagedProcess:
    """Start a single-node KRaft Kafka (detached) on host:port; wait until it answers.

    With `credentials`, the broker takes SASL/SCRAM clients only and enforces ACLs; its SCRAM
    users are made when the storage is first formatted (a data dir keeps its mode).
    With `node`, it is that node of a cluster (`start_kafka_cluster`); waiting then means this
    node answers, not that the cluster is complete.
    """
    kafka_dir = kafka_deploy_dir()
    lib = ensure_kafka_artifacts(kafka_dir)
    if port_open(host, port):
        raise DevstackError(f"{host}:{port} is already in use; cannot start Kafka there")
    controller_port = controller_port or free_port(host)
    data_dir = data_dir.resolve()
    properties = prepare_kafka_dir(
        data_dir,
        host=host,
        port=port,
        controller_port=controller_port,
        credentials=credentials,
        node=node,
    )
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
    replication_factor: int = 1,
) -> list[str]:
    """Create the topics, warm up the group coordinator and, with `credentials` (a SASL broker),
    make each principal's ACLs exactly `acls`. Returns the topics created."""
    security = credentials.security() if credentials else None
    created = await create_topics(
        bootstrap, topics, replication_factor=replication_factor, security=security
    )
    if warm_up:
        await warm_up_coordinators(bootstrap, security=security)
    if credentials is not None and acls is not None:
        await sync_acls(bootstrap, credentials, acls)
    return created


# --------------------------------------------------------------------------- cluster

CLUSTER_MIN_INSYNC = 2
"""`min.insync.replicas` of a cluster of 3+ brokers: a write survives the loss of one broker."""


def cluster_replication(brokers: int) -> tuple[int, int]:
    """(replication factor, min.insync.replicas) of topics on a cluster of `brokers` nodes:
    RF 3 and 2 in sync from 3 brokers on (SPEC's production settings), else every broker."""
    if brokers < 1:
        raise DevstackError(f"a Kafka cluster needs at least one broker, not {brokers}")
    if brokers >= 3:
        return 3, CLUSTER_MIN_INSYNC
    return brokers, 1


@dataclass(frozen=True)
class ClusterNode:
    """One combined controller+broker node of a KRaft cluster: its id, ports and data dir."""

    node_id: int
    host: str
    port: int
    controller_port: int
    data_dir: Path
    cluster_id_file: Path
    voters: str
    replication_factor: int
    min_insync_replicas: int

    @property
    def bootstrap(self) -> str:
        """host:port of this node's client listener."""
        return f"{self.host}:{self.port}"

    def properties(self) -> dict[str, Any]:
        """The cluster keywords of `render_server_properties` for this node."""
        return {
            "node_id": self.node_id,
            "voters": self.voters,
            "replication_factor": self.replication_factor,
            "min_insync_replicas": self.min_insync_replicas,
        }


@dataclass
class KafkaCluster:
    """A running N-node KRaft cluster started by `start_kafka_cluster`; nodes can be killed
    (SIGKILL, no clean shutdown) and started again on the same ports and data."""

    nodes: list[ClusterNode]
    processes: dict[int, ManagedProcess] = field(default_factory=dict)
    heap: str = "384m"
    die_with_parent: bool = False
    log_dir: Path | None = None
    pid_dir: Path | None = None

    @property
    def bootstrap_servers(self) -> str:
        """Every node's client listener, comma-separated (clients survive any one being down)."""
        return ",".join(node.bootstrap for node in self.nodes)

    @property
    def replication_factor(self) -> int:
        """The replication factor of topics on this cluster."""
        return self.nodes[0].replication_factor

    @property
    def min_insync_replicas(self) -> int:
        """`min.insync.replicas` of this cluster."""
        return self.nodes[0].min_insync_replicas

    def node(self, node_id: int) -> ClusterNode:
        """The node with this id (ids are 1..N)."""
        for node in self.nodes:
            if node.node_id == node_id:
                return node
        raise DevstackError(f"no Kafka node {node_id} (nodes: {[n.node_id for n in self.nodes]})")

    def _log_path(self, node: ClusterNode) -> Path:
        base = self.log_dir or node.data_dir / "logs"
        return base / f"kafka-{node.node_id}.log"

    def _pid_file(self, node: ClusterNode) -> Path | None:
        return None if self.pid_dir is None else self.pid_dir / f"kafka-{node.node_id}.pid"

    def start_node(self, node_id: int, *, wait: bool = True, timeout: float = 90.0) -> None:
        """Start (or start again) one node; with `wait`, until it answers clients."""
        node = self.node(node_id)
        current = self.processes.get(node_id)
        if current is not None and current.alive():
            raise DevstackError(f"Kafka node {node_id} is already running (pid {current.pid})")
        self.processes[node_id] = start_kafka(
            node.data_dir,
            host=node.host,
            port=node.port,
            controller_port=node.controller_port,
            heap=self.heap,
            log_path=self._log_path(node),
            pid_file=self._pid_file(node),
            die_with_parent=self.die_with_parent,
            wait=wait,
            timeout=timeout,
            node=node,
        )

    def kill_node(self, node_id: int) -> None:
        """SIGKILL one node (its whole process group) and wait until its port is closed."""
        node = self.node(node_id)
        proc = self.processes.pop(node_id, None)
        if proc is None:
            raise DevstackError(f"Kafka node {node_id} was not started by this cluster handle")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        if proc.popen is not None:
            proc.popen.wait(timeout=10)
        if proc.pid_file is not None:
            proc.pid_file.unlink(missing_ok=True)
        if not wait_port_closed(node.host, node.port, timeout=10):
            raise DevstackError(f"{node.bootstrap} still accepts connections after SIGKILL")

    def running(self) -> list[int]:
        """Ids of the nodes whose process is alive."""
        return [nid for nid, proc in self.processes.items() if proc.alive()]

    async def wait_ready(self, *, max_wait: float = 120.0) -> None:
        """Wait until every running node answers and the metadata lists all of them."""
        await asyncio.gather(
            *(
                wait_kafka_ready(self.node(nid).bootstrap, max_wait=max_wait, proc=proc)
                for nid, proc in self.processes.items()
            )
        )
        await wait_brokers_registered(
            self.bootstrap_servers, len(self.processes), max_wait=max_wait
        )

    def stop(self, timeout: float = 30.0) -> None:
        """Stop every node this handle runs (SIGTERM, then SIGKILL past `timeout`).

        All nodes are signalled at once: stopped one by one, the last ones would wait for a
        controller quorum that is already gone.
        """
        errors: list[BaseException] = []
        for proc in self.processes.values():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
        for nid in sorted(self.processes, reverse=True):
            try:
                self.processes[nid].stop(timeout=timeout)
            except Exception as exc:
                errors.append(exc)
        self.processes.clear()
        if errors:
            raise DevstackError(f"stopping the Kafka cluster failed: {errors!r}")


def plan_cluster(
    data_dir: Path,
    brokers: int,
    *,
    host: str = "127.0.0.1",
    ports: Sequence[int] | None = None,
    controller_ports: Sequence[int] | None = None,
) -> list[ClusterNode]:
    """The nodes of an N-broker cluster: ids 1..N, given or free ports, data in node-<id>/."""
    rf, isr = cluster_replication(brokers)
    ports = list(ports) if ports is not None else [free_port(host) for _ in range(brokers)]
    controllers = (
        list(controller_ports)
        if controller_ports is not None
        else [free_port(host) for _ in range(brokers)]
    )
    if len(ports) != brokers or len(controllers) != brokers:
        raise DevstackError(f"{brokers} brokers need {brokers} client and controller ports")
    if len(set(ports) | set(controllers)) != 2 * brokers:
        raise DevstackError(f"the ports of a Kafka cluster must differ: {ports} {controllers}")
    data_dir = data_dir.resolve()
    voters = ",".join(f"{i + 1}@{host}:{controllers[i]}" for i in range(brokers))
    return [
        ClusterNode(
            node_id=i + 1,
            host=host,
            port=ports[i],
            controller_port=controllers[i],
            data_dir=data_dir / f"node-{i + 1}",
            cluster_id_file=data_dir / "cluster.id",
            voters=voters,
            replication_factor=rf,
            min_insync_replicas=isr,
        )
        for i in range(brokers)
    ]


def start_kafka_cluster(
    data_dir: Path,
    *,
    brokers: int = 3,
    host: str = "127.0.0.1",
    ports: Sequence[int] | None = None,
    controller_ports: Sequence[int] | None = None,
    heap: str = "384m",
    log_dir: Path | None = None,
    pid_dir: Path | None = None,
    die_with_parent: bool = False,
    wait: bool = True,
    timeout: float = 120.0,
) -> KafkaCluster:
    """Start an N-node KRaft cluster from the same jars: every node a controller and a broker,
    topics by default at RF min(3, N) with `min.insync.replicas` 2 from 3 nodes on.

    With `wait`, returns once every node answers and all are registered brokers.
    """
    nodes = plan_cluster(
        data_dir, brokers, host=host, ports=ports, controller_ports=controller_ports
    )
    for node in nodes:
        if port_open(host, node.port):
            raise DevstackError(f"{node.bootstrap} is already in use; cannot start Kafka there")
    cluster = KafkaCluster(
        nodes, heap=heap, die_with_parent=die_with_parent, log_dir=log_dir, pid_dir=pid_dir
    )
    id_file = nodes[0].cluster_id_file  # one id for all nodes, made before they format
    id_file.parent.mkdir(parents=True, exist_ok=True)
    if not id_file.is_file():
        id_file.write_text(new_cluster_id() + "\n")
    with ThreadPoolExecutor(max_workers=len(nodes), thread_name_prefix="kafka-format") as pool:
        # Formatting is a JVM run per node: in parallel. Spawning stays on this thread
        # (die_with_parent is tied to the spawning thread).
        list(
            pool.map(
                lambda n: prepare_kafka_dir(
                    n.data_dir,
                    host=n.host,
                    port=n.port,
                    controller_port=n.controller_port,
                    node=n,
                ),
                nodes,
            )
        )
    try:
        for node in nodes:  # spawn all first: a KRaft quorum needs a majority to elect
            cluster.start_node(node.node_id, wait=False)
        if wait:
            run_sync(lambda: cluster.wait_ready(max_wait=timeout))
    except BaseException:
        with contextlib.suppress(Exception):
            cluster.stop()
        raise
    return cluster


async def wait_brokers_registered(
    bootstrap: str,
    brokers: int,
    *,
    max_wait: float = 60.0,
    security: Mapping[str, Any] | None = None,
) -> None:
    """Wait until the cluster's metadata lists `brokers` brokers."""
    from aiokafka.admin import AIOKafkaAdminClient

    deadline = time.monotonic() + max_wait
    seen = 0
    while time.monotonic() < deadline:
        admin = AIOKafkaAdminClient(
            bootstrap_servers=bootstrap, request_timeout_ms=5000, **(security or {})
        )
        try:
            await admin.start()
            described = await admin.describe_cluster()
            seen = len(described.get("brokers", []))
            if seen >= brokers:
                return
        except Exception:
            pass
        finally:
            with contextlib.suppress(Exception):
                await admin.close()
        await asyncio.sleep(0.3)
    raise DevstackError(f"Kafka at {bootstrap}: {seen} of {brokers} brokers after {max_wait}s")
