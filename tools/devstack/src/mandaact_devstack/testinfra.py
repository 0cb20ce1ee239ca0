"""Test infrastructure: testcontainers with a Docker engine, else local processes on free ports."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import importlib
import logging
import os
import shutil
import signal
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal
from urllib.parse import urlsplit

from pymongo import MongoClient

from mandaact_devstack.kafka import (
    KafkaCluster,
    create_topics,
    default_topics,
    provision_kafka,
    start_kafka,
    start_kafka_cluster,
    wait_kafka_ready,
    warm_up_coordinators,
)
from mandaact_devstack.kafka_sasl import (
    ADMIN_USER,
    CREDENTIALS_FILE,
    KafkaCredentials,
    service_principals,
    stack_acls,
)
from mandaact_devstack.mongo import mongodb_url, start_secantus, wait_mongo_ready
from mandaact_devstack.procs import (
    DevstackError,
    ManagedProcess,
    free_port,
    run_sync,
    split_host_port,
    wait_port_closed,
)

log = logging.getLogger(__name__)

Mode = Literal["external", "docker", "local"]

DEFAULT_KAFKA_IMAGE = "confluentinc/cp-kafka:7.9.0"
DEFAULT_MONGO_IMAGE = "mongo:7.0"


@dataclass
class InfraHandle:
    """Where the test Kafka and MongoDB-compatible server are, and how to stop them."""

    bootstrap_servers: str
    mongodb_url: str
    kafka_mode: Mode
    mongo_mode: Mode
    base_dir: Path | None = None
    processes: list[ManagedProcess] = field(default_factory=list)
    _stops: list[Callable[[], None]] = field(default_factory=list, repr=False)
    _stopped: bool = field(default=False, repr=False)
    _mongo_storage: Path | None = field(default=None, repr=False)
    kafka_cluster: KafkaCluster | None = None
    """The local multi-broker cluster (`start_test_infra(brokers=N)`, N > 1), else None."""

    @property
    def replication_factor(self) -> int:
        """The replication factor the test topics were created with."""
        return self.kafka_cluster.replication_factor if self.kafka_cluster else 1

    def cluster(self) -> KafkaCluster:
        """The multi-broker cluster, for fault tests (`kill_node`, `start_node`)."""
        if self.kafka_cluster is None:
            raise DevstackError("this test infra runs one broker: start it with brokers=3")
        return self.kafka_cluster

    def kill_broker(self, node_id: int) -> None:
        """SIGKILL one broker of the cluster (no clean shutdown)."""
        self.cluster().kill_node(node_id)

    def restart_broker(self, node_id: int, *, wait: bool = True) -> None:
        """Start a killed broker again on its port and data; call it from the thread that
        started the infra (PDEATHSIG is tied to that thread)."""
        self.cluster().start_node(node_id, wait=wait)

    def mongo_process(self) -> ManagedProcess:
        """The local SecantusDB process (fault tests stop and restart it)."""
        if self.mongo_mode != "local" or self._mongo_storage is None:
            raise DevstackError(f"the MongoDB-compatible server is {self.mongo_mode}, not local")
        for proc in reversed(self.processes):
            if proc.name == "secantusdb":
                return proc
        raise DevstackError("no SecantusDB process recorded")

    def signal_mongodb(self, sig: signal.Signals) -> None:
        """Send a signal to the local SecantusDB (SIGSTOP hangs it, SIGCONT resumes it)."""
        os.killpg(self.mongo_process().pid, sig)

    def stop_mongodb(self, timeout: float = 30.0) -> None:
        """Stop the local SecantusDB cleanly (SIGTERM; SIGKILL only past `timeout`).

        A clean stop keeps every acknowledged write. SIGKILL does not always: without
        `--sync-on-commit` SecantusDB may lose its last acknowledged commits (MongoDB's
        majority writes are journaled), which no client can make up for.
        """
        proc = self.mongo_process()
        proc.stop(timeout=timeout)
        host, port = _host_port(self.mongodb_url)
        if not wait_port_closed(host, port, timeout=10):
            raise DevstackError(f"{host}:{port} still accepts connections after the stop")

    def kill_mongodb(self) -> None:
        """SIGKILL the local SecantusDB (no clean shutdown) and wait until its port is closed."""
        proc = self.mongo_process()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        if proc.popen is not None:
            proc.popen.wait(timeout=10)
        host, port = _host_port(self.mongodb_url)
        if not wait_port_closed(host, port, timeout=10):
            raise DevstackError(f"{host}:{port} still accepts connections after SIGKILL")

    def restart_mongodb(self, *, wait: bool = True) -> ManagedProcess:
        """Start the local SecantusDB again on the same port and data directory.

        Call it from the thread that started the infra (PDEATHSIG is tied to that thread).
        """
        old = self.mongo_process()
        assert self._mongo_storage is not None
        host, port = _host_port(self.mongodb_url)
        proc = start_secantus(
            self._mongo_storage,
            host=host,
            port=port,
            log_path=old.log_path,
            die_with_parent=True,
            wait=wait,
        )
        self.processes.append(proc)
        self._stops.append(proc.stop)
        return proc

    def stop(self) -> None:
        """Stop everything this handle started (idempotent); external servers are left alone."""
        if self._stopped:
            return
        self._stopped = True
        errors: list[BaseException] = []
        for stop in reversed(self._stops):
            try:
                stop()
            except Exception as exc:
                errors.append(exc)
        self._stops.clear()
        if errors:
            raise DevstackError(f"stopping test infra failed: {errors!r}")

    def __enter__(self) -> InfraHandle:
        """Use the handle as a context manager that stops on exit."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop on exit."""
        self.stop()


def docker_available(timeout: float = 3.0) -> bool:
    """Whether a Docker engine answers a ping (the CLI alone is not enough)."""
    try:
        docker: Any = importlib.import_module("docker")
        client = docker.from_env(timeout=timeout)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


def _want_docker(use_docker: bool | None) -> bool:
    if use_docker is not None:
        return use_docker
    choice = os.environ.get("MANDAACT_TEST_INFRA", "").strip().lower()
    if choice in ("local", "docker"):
        return choice == "docker"
    return docker_available()


def _start_docker_kafka() -> tuple[str, Callable[[], None]]:
    try:
        module: Any = importlib.import_module("testcontainers.community.kafka")
    except ImportError:
        module = importlib.import_module("testcontainers.kafka")
    container = module.KafkaContainer(
        os.environ.get("MANDAACT_TEST_KAFKA_IMAGE", DEFAULT_KAFKA_IMAGE)
    ).with_kraft()
    for key, value in {
        "KAFKA_AUTO_CREATE_TOPICS_ENABLE": "false",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
        "KAFKA_MIN_INSYNC_REPLICAS": "1",
    }.items():
        container.with_env(key, value)
    container.start(timeout=180)
    return str(container.get_bootstrap_server()), container.stop


def _start_docker_mongo() -> tuple[str, Callable[[], None]]:
    try:
        module: Any = importlib.import_module("testcontainers.community.mongodb")
    except ImportError:
        module = importlib.import_module("testcontainers.mongodb")
    container = module.MongoDbContainer(
        os.environ.get("MANDAACT_TEST_MONGO_IMAGE", DEFAULT_MONGO_IMAGE)
    )
    # No root user: a replica set with auth would need a keyFile. Empty values switch auth off.
    container.username = ""
    container.password = ""
    container.with_command("--replSet rs0 --bind_ip_all")
    container.start()
    try:
        host = container.get_container_host_ip()
        port = int(container.get_exposed_port(27017))
        url = mongodb_url(host, port)
        client: MongoClient[dict[str, Any]] = MongoClient(url, serverSelectionTimeoutMS=30000)
        try:
            client.admin.command(
                "replSetInitiate",
                {"_id": "rs0", "members": [{"_id": 0, "host": "localhost:27017"}]},
            )
        finally:
            client.close()
        run_sync(lambda: wait_mongo_ready(url, max_wait=60))
    except BaseException:
        container.stop()
        raise
    return url, container.stop


def start_test_infra(
    base_dir: Path | str | None = None,
    *,
    topics: Mapping[str, int] | None = None,
    use_docker: bool | None = None,
    brokers: int = 1,
    mongo_url: str | None = None,
) -> InfraHandle:
    """Kafka + MongoDB-compatible server for tests (env, testcontainers or local processes).

    `mongo_url`: use that (running) server, as MONGODB_URL in the environment would; it is
    not stopped with the handle. A benchmark puts a cluster next to its one-broker infra so.

    `brokers` > 1: Kafka is always a local KRaft cluster of that many nodes from the jars
    (never the environment's or a container), topics at RF min(3, N) with min.insync.replicas
    2 from 3 brokers on; `handle.kill_broker(i)` / `restart_broker(i)` disturb it.
    """
    # KAFKA_BOOTSTRAP_SERVERS / MONGODB_URL (when set) are used as they are. Otherwise
    # testcontainers when a Docker engine answers (override: MANDAACT_TEST_INFRA=local|docker),
    # else local Kafka + SecantusDB processes on free ports with data under base_dir (a temp
    # dir, removed on stop, when None). topics (default: the contract topics) are created.
    # Call it from the thread that lives as long as the infra (the main thread in pytest).
    if brokers < 1:
        raise DevstackError(f"brokers must be at least 1, not {brokers}")
    external_kafka = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
    if brokers > 1:
        external_kafka = ""
    external_mongo = (mongo_url or os.environ.get("MONGODB_URL", "")).strip()
    docker = (not external_kafka or not external_mongo) and _want_docker(use_docker)
    owns_dir = base_dir is None
    root = Path(tempfile.mkdtemp(prefix="mandaact-infra-")) if base_dir is None else Path(base_dir)
    root.mkdir(parents=True, exist_ok=True)
    local_mode: Mode = "docker" if docker else "local"
    handle = InfraHandle(
        bootstrap_servers=external_kafka,
        mongodb_url=external_mongo,
        kafka_mode="external" if external_kafka else "local" if brokers > 1 else local_mode,
        mongo_mode="external" if external_mongo else local_mode,
        base_dir=root,
    )
    if owns_dir:
        handle._stops.append(lambda: shutil.rmtree(root, ignore_errors=True))
    atexit.register(_stop_quietly, handle)
    try:
        if docker:
            if not external_mongo:
                handle.mongodb_url, stop = _start_docker_mongo()
                handle._stops.append(stop)
            if brokers > 1:
                _start_local(handle, root, "", handle.mongodb_url, brokers=brokers)
            elif not external_kafka:
                handle.bootstrap_servers, stop = _start_docker_kafka()
                handle._stops.append(stop)
        else:
            _start_local(handle, root, external_kafka, external_mongo, brokers=brokers)
        wanted = default_topics() if topics is None else dict(topics)

        async def prepare_kafka() -> None:
            if wanted:
                await create_topics(
                    handle.bootstrap_servers,
                    wanted,
                    replication_factor=handle.replication_factor,
                )
            if handle.kafka_mode != "external":
                await warm_up_coordinators(handle.bootstrap_servers)

        run_sync(prepare_kafka)
    except BaseException:
        _stop_quietly(handle)
        raise
    log.info(
        "test infra: kafka=%s (%s) mongodb=%s (%s)",
        handle.bootstrap_servers,
        handle.kafka_mode,
        handle.mongodb_url,
        handle.mongo_mode,
    )
    return handle


def _start_local(
    handle: InfraHandle, root: Path, external_kafka: str, external_mongo: str, *, brokers: int = 1
) -> None:
    # Spawn both (from this thread: die_with_parent is tied to the spawning thread), then
    # wait for both at once.
    mongo_proc: ManagedProcess | None = None
    kafka_proc: ManagedProcess | None = None
    if not external_mongo:
        mongo_port = free_port()
        mongo_proc = start_secantus(
            root / "secantusdb",
            port=mongo_port,
            log_path=root / "secantusdb.log",
            die_with_parent=True,
            wait=False,
        )
        handle.processes.append(mongo_proc)
        handle._stops.append(mongo_proc.stop)
        handle.mongodb_url = mongodb_url("127.0.0.1", mongo_port)
        handle._mongo_storage = root / "secantusdb"
    cluster: KafkaCluster | None = None
    if not external_kafka and brokers > 1:
        cluster = start_kafka_cluster(
            root / "kafka-cluster",
            brokers=brokers,
            log_dir=root,
            die_with_parent=True,
            wait=False,
        )
        handle.kafka_cluster = cluster
        handle.processes.extend(cluster.processes.values())
        handle._stops.append(cluster.stop)
        handle.bootstrap_servers = cluster.bootstrap_servers
    elif not external_kafka:
        kafka_port = free_port()
        kafka_proc = start_kafka(
            root / "kafka",
            port=kafka_port,
            controller_port=free_port(),
            log_path=root / "kafka.log",
            die_with_parent=True,
            wait=False,
        )
        handle.processes.append(kafka_proc)
        handle._stops.append(kafka_proc.stop)
        handle.bootstrap_servers = f"127.0.0.1:{kafka_port}"

    async def wait_all() -> None:
        waits = []
        if cluster is not None:
            waits.append(cluster.wait_ready(max_wait=120))
        if kafka_proc is not None:
            waits.append(wait_kafka_ready(handle.bootstrap_servers, max_wait=90, proc=kafka_proc))
        if mongo_proc is not None:
            waits.append(wait_mongo_ready(handle.mongodb_url, max_wait=60, proc=mongo_proc))
        await asyncio.gather(*waits)

    run_sync(wait_all)


def _host_port(url: str) -> tuple[str, int]:
    netloc = urlsplit(url).netloc.rsplit("@", 1)[-1].split(",")[0]
    return split_host_port(netloc, 27017)


def _stop_quietly(handle: InfraHandle) -> None:
    with contextlib.suppress(Exception):
        handle.stop()


@dataclass
class SaslKafka:
    """A local Kafka that takes SASL/SCRAM-SHA-512 clients only and enforces the services' ACLs."""

    bootstrap_servers: str
    credentials: KafkaCredentials
    process: ManagedProcess

    def security(self, user: str = ADMIN_USER) -> dict[str, Any]:
        """aiokafka keyword arguments authenticating as `user` (default: the super user)."""
        return self.credentials.security(user)

    def env(self, user: str) -> dict[str, str]:
        """The environment of a service process running as principal `user`."""
        return {"KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers, **self.credentials.env(user)}

    def stop(self) -> None:
        """Stop the broker."""
        self.process.stop()


def start_sasl_kafka(
    base_dir: Path, *, topics: Mapping[str, int] | None = None, services: Iterable[str] = ()
) -> SaslKafka:
    """A SASL Kafka on free ports with data in base_dir: topics created, the ACLs of the installed
    `services` (default: all of devstack's) applied, dying with this thread (PDEATHSIG)."""
    from mandaact_devstack.services import SERVICE_PORTS

    names = tuple(services) or tuple(SERVICE_PORTS)
    data_dir = Path(base_dir) / "kafka-sasl"
    credentials = KafkaCredentials.load_or_create(
        data_dir / CREDENTIALS_FILE, service_principals(SERVICE_PORTS)
    )
    port = free_port()
    proc = start_kafka(
        data_dir,
        port=port,
        controller_port=free_port(),
        log_path=Path(base_dir) / "kafka-sasl.log",
        die_with_parent=True,
        credentials=credentials,
    )
    handle = SaslKafka(f"127.0.0.1:{port}", credentials, proc)
    try:
        wanted = default_topics() if topics is None else dict(topics)
        run_sync(
            lambda: provision_kafka(
                handle.bootstrap_servers,
                wanted,
                credentials=credentials,
                acls=stack_acls(names),
            )
        )
    except BaseException:
        proc.stop()
        raise
    return handle
