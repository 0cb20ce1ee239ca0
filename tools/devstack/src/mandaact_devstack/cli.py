"""`python -m mandaact_devstack up|down|status`: the local stack behind `make up` / `make down`."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from mandaact_devstack.kafka import (
    cluster_replication,
    default_topics,
    ensure_kafka_artifacts,
    kafka_answers,
    kafka_version,
    provision_kafka,
    start_kafka,
    start_kafka_cluster,
)
from mandaact_devstack.kafka_sasl import (
    ADMIN_USER,
    CREDENTIALS_FILE,
    SASL_ENV_FLAG,
    KafkaCredentials,
    sasl_wanted,
    service_principals,
    stack_acls,
)
from mandaact_devstack.mongo import SECANTUS_LAUNCHER, mongo_answers, mongodb_url, start_secantus
from mandaact_devstack.procs import (
    DevstackError,
    ManagedProcess,
    adopt_pid_file,
    default_run_dir,
    group_members,
    port_open,
    read_pid_file,
    run_sync,
    stop_process_group,
    tail_file,
)
from mandaact_devstack.prometheus import (
    MARKER as PROMETHEUS_MARKER,
)
from mandaact_devstack.prometheus import (
    PROMETHEUS_PORT,
    prometheus_wanted,
    start_prometheus,
)
from mandaact_devstack.prometheus import pid_file as prometheus_pid_file
from mandaact_devstack.services import (
    SERVICE_PORTS,
    http_status,
    kinds_of,
    log_path,
    pid_path,
    process_name,
    running_service,
    script_name,
    service_script,
    start_service,
    wait_http_ready,
    worker_instances,
    worker_metrics_port,
)

KAFKA_HOST = "127.0.0.1"
KAFKA_PORT = 9092
KAFKA_CONTROLLER_PORT = 9093
BROKERS_ENV = "MANDAACT_KAFKA_BROKERS"
# Cluster mode (MANDAACT_KAFKA_BROKERS=N): node i listens on 9092 + 100 * (i - 1) and its
# controller on 9093 + 100 * (i - 1): 9092/9093, 9192/9193, 9292/9293.
KAFKA_NODE_PORT_STEP = 100
MAX_BROKERS = 5
MONGO_HOST = "127.0.0.1"
MONGO_PORT = 27017
READY_TIMEOUT = 90.0


@dataclass(frozen=True)
class InfraSpec:
    """A piece of infrastructure `up` may start: its pid file name and command-line marker."""

    name: str
    marker: str


KAFKA = InfraSpec("kafka", "kafka.Kafka")
SECANTUS = InfraSpec("secantusdb", SECANTUS_LAUNCHER)


def _say(message: str) -> None:
    print(f"[devstack] {message}", flush=True)


def _infra_pid_file(run_dir: Path, spec: InfraSpec) -> Path:
    return run_dir / "pids" / f"{spec.name}.pid"


def _infra_log(run_dir: Path, spec: InfraSpec) -> Path:
    return run_dir / "logs" / f"{spec.name}.log"


def _running_infra(run_dir: Path, spec: InfraSpec) -> ManagedProcess | None:
    return adopt_pid_file(
        spec.name, _infra_pid_file(run_dir, spec), _infra_log(run_dir, spec), spec.marker
    )


def _state_file(run_dir: Path) -> Path:
    return run_dir / "devstack.json"


def _sasl_dir(run_dir: Path) -> Path:
    """The SASL broker's data dir: apart from the PLAINTEXT one, since a data dir keeps its
    SCRAM users from the day it was formatted."""
    return run_dir / "kafka-sasl"


def sasl_credentials(run_dir: Path) -> KafkaCredentials:
    """The SASL broker's credentials: the admin's and one per service (made on first use)."""
    return KafkaCredentials.load_or_create(
        _sasl_dir(run_dir) / CREDENTIALS_FILE, service_principals(SERVICE_PORTS)
    )


def kafka_brokers(value: str | None = None) -> int:
    """How many Kafka nodes `up` runs: MANDAACT_KAFKA_BROKERS (default 1)."""
    raw = (os.environ.get(BROKERS_ENV, "") if value is None else value).strip() or "1"
    try:
        brokers = int(raw)
    except ValueError:
        brokers = 0
    if not 1 <= brokers <= MAX_BROKERS:
        raise DevstackError(f"{BROKERS_ENV}={raw!r}: give a number of brokers from 1 to 5")
    return brokers


def cluster_ports(brokers: int) -> tuple[list[int], list[int]]:
    """The client and controller ports of `up`'s cluster nodes."""
    steps = [KAFKA_NODE_PORT_STEP * i for i in range(brokers)]
    return [KAFKA_PORT + s for s in steps], [KAFKA_CONTROLLER_PORT + s for s in steps]


def _kafka_pid_files(run_dir: Path) -> list[Path]:
    """Pid files of devstack's Kafka: kafka.pid (one broker), kafka-<i>.pid (a cluster)."""
    pids = run_dir / "pids"
    return [*sorted(pids.glob("kafka-*.pid")), _infra_pid_file(run_dir, KAFKA)]


def _ensure_kafka_cluster(run_dir: Path, started: list[ManagedProcess], brokers: int) -> str:
    ports, controllers = cluster_ports(brokers)
    bootstrap = ",".join(f"{KAFKA_HOST}:{port}" for port in ports)
    rf, isr = cluster_replication(brokers)
    what = f"{brokers} brokers, topics RF {rf}, min.insync.replicas {isr}"
    open_ports = [port for port in ports if port_open(KAFKA_HOST, port)]
    if open_ports:
        if len(open_ports) == brokers and run_sync(lambda: kafka_answers(bootstrap, max_wait=10)):
            _say(f"Kafka: already running on {bootstrap}")
            return bootstrap
        raise DevstackError(
            f"ports {open_ports} are taken by something that is not a {brokers}-broker"
            " devstack Kafka (a single-broker one? `make down` first)"
        )
    started_at = time.monotonic()
    cluster = start_kafka_cluster(
        run_dir / f"kafka-cluster-{brokers}",
        brokers=brokers,
        host=KAFKA_HOST,
        ports=ports,
        controller_ports=controllers,
        log_dir=run_dir / "logs",
        pid_dir=run_dir / "pids",
    )
    started.extend(cluster.processes.values())
    pids = ", ".join(str(proc.pid) for proc in cluster.processes.values())
    _say(
        f"Kafka {kafka_version()}: started on {bootstrap}, PLAINTEXT, {what} (pids {pids}, "
        f"{time.monotonic() - started_at:.1f}s)"
    )
    return bootstrap


def _ensure_kafka(
    run_dir: Path,
    started: list[ManagedProcess],
    credentials: KafkaCredentials | None,
    brokers: int = 1,
) -> str:
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
    if external:
        if credentials is not None:
            raise DevstackError(
                f"{SASL_ENV_FLAG}=true runs devstack's own SASL broker: unset"
                " KAFKA_BOOTSTRAP_SERVERS"
            )
        _say(f"Kafka: using KAFKA_BOOTSTRAP_SERVERS={external}")
        if not run_sync(lambda: kafka_answers(external, max_wait=10)):
            raise DevstackError(f"KAFKA_BOOTSTRAP_SERVERS={external} does not answer")
        return external
    if brokers > 1:
        if credentials is not None:
            raise DevstackError(
                f"{SASL_ENV_FLAG}=true runs one SASL broker: unset {BROKERS_ENV} or set it to 1"
            )
        return _ensure_kafka_cluster(run_dir, started, brokers)
    bootstrap = f"{KAFKA_HOST}:{KAFKA_PORT}"
    mode = "SASL/SCRAM-SHA-512 with ACLs" if credentials else "PLAINTEXT"
    security = credentials.security() if credentials else None
    if _running_infra(run_dir, KAFKA) is not None or port_open(KAFKA_HOST, KAFKA_PORT):
        if run_sync(lambda: kafka_answers(bootstrap, max_wait=10, security=security)):
            _say(f"Kafka: already running on {bootstrap} ({mode})")
            return bootstrap
        other = "PLAINTEXT" if credentials else "SASL"
        raise DevstackError(
            f"{bootstrap} is taken by something that is not a working {mode} Kafka"
            f" (a {other} devstack Kafka? `make down` first)"
        )
    started_at = time.monotonic()
    proc = start_kafka(
        _sasl_dir(run_dir) if credentials else run_dir / "kafka",
        host=KAFKA_HOST,
        port=KAFKA_PORT,
        controller_port=KAFKA_CONTROLLER_PORT,
        log_path=_infra_log(run_dir, KAFKA),
        pid_file=_infra_pid_file(run_dir, KAFKA),
        credentials=credentials,
    )
    started.append(proc)
    _say(
        f"Kafka {kafka_version()}: started on {bootstrap}, {mode} (pid {proc.pid}, "
        f"{time.monotonic() - started_at:.1f}s)"
    )
    return bootstrap


def _ensure_mongo(run_dir: Path, started: list[ManagedProcess]) -> str:
    external = os.environ.get("MONGODB_URL", "").strip()
    if external:
        _say(f"MongoDB: using MONGODB_URL={external}")
        if not mongo_answers(external, timeout=10):
            raise DevstackError(f"MONGODB_URL={external} does not answer")
        return external
    url = mongodb_url(MONGO_HOST, MONGO_PORT)
    if _running_infra(run_dir, SECANTUS) is not None or port_open(MONGO_HOST, MONGO_PORT):
        if mongo_answers(url, timeout=10):
            _say(f"MongoDB: already running at {url}")
            return url
        raise DevstackError(f"{MONGO_HOST}:{MONGO_PORT} is taken by something that is not MongoDB")
    started_at = time.monotonic()
    proc = start_secantus(
        run_dir / "secantusdb",
        host=MONGO_HOST,
        port=MONGO_PORT,
        log_path=_infra_log(run_dir, SECANTUS),
        pid_file=_infra_pid_file(run_dir, SECANTUS),
    )
    started.append(proc)
    _say(f"SecantusDB: started at {url} (pid {proc.pid}, {time.monotonic() - started_at:.1f}s)")
    return url


def _start_services(
    run_dir: Path,
    bootstrap: str,
    mongo: str,
    started: list[ManagedProcess],
    only: frozenset[str] | None,
    credentials: KafkaCredentials | None,
) -> list[tuple[str, int, ManagedProcess]]:
    env = {"KAFKA_BOOTSTRAP_SERVERS": bootstrap, "MONGODB_URL": mongo}
    env["MANDAACT_ENV"] = os.environ.get("MANDAACT_ENV", "local")
    apis: list[tuple[str, int, ManagedProcess]] = []
    instances = worker_instances()
    for name, port in SERVICE_PORTS.items():
        if only is not None and name not in only:
            continue
        for kind in kinds_of(name):
            if service_script(name, kind) is None:
                label = process_name(name, kind)
                _say(f"{label}: mandaact-{label} not installed yet, skipped")
                continue
            # N instances of a worker: one consumer group, so they share the partitions.
            for instance in range(1, (instances[name] if kind == "worker" else 1) + 1):
                label = process_name(name, kind, instance)
                proc = running_service(name, kind, run_dir, instance)
                if proc is not None:
                    _say(f"{label}: already running (pid {proc.pid})")
                else:
                    if kind == "api" and port_open("127.0.0.1", port):
                        raise DevstackError(f"port {port} for {label} is taken by another process")
                    extra = {}
                    if credentials is not None:  # the service's own principal, nothing more
                        extra.update(credentials.env(service_principals([name])[0]))
                    if kind == "worker":  # Prometheus metrics on 1000 (+100 per instance) + port
                        extra["MANDAACT_WORKER_METRICS_PORT"] = str(
                            worker_metrics_port(port, instance)
                        )
                    proc = start_service(
                        name,
                        kind,
                        {**env, **extra},
                        run_dir=run_dir,
                        http_port=port,
                        instance=instance,
                    )
                    started.append(proc)
                    _say(f"{label}: started (pid {proc.pid}, log {proc.log_path})")
                if kind == "api":
                    apis.append((name, port, proc))
    return apis


def up(
    run_dir: Path, *, keep_on_failure: bool = False, services: frozenset[str] | None = None
) -> int:
    """Start Kafka, SecantusDB and the services (all, or just `services`); wait until ready."""
    started: list[ManagedProcess] = []
    credentials: KafkaCredentials | None = None
    try:
        t0 = time.monotonic()
        ensure_kafka_artifacts(quiet=True)
        _say(f"Kafka jars ready ({time.monotonic() - t0:.1f}s)")
        if sasl_wanted():
            credentials = sasl_credentials(run_dir)
        brokers = kafka_brokers()
        worker_instances()  # a bad MANDAACT_WORKER_INSTANCES fails before anything starts
        bootstrap = _ensure_kafka(run_dir, started, credentials, brokers)
        mongo = _ensure_mongo(run_dir, started)
        topics = default_topics()
        acls = stack_acls(SERVICE_PORTS) if credentials else None
        external = bool(os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip())
        replication = 1 if external else cluster_replication(brokers)[0]
        created = run_sync(
            lambda: provision_kafka(
                bootstrap,
                topics,
                credentials=credentials,
                acls=acls,
                replication_factor=replication,
            )
        )
        _say(f"topics: {len(topics)} ensured ({len(created)} created, RF {replication})")
        if acls is not None:
            _say(f"ACLs: {', '.join(f'{user} {len(rules)}' for user, rules in acls.items())}")
        apis = _start_services(run_dir, bootstrap, mongo, started, services, credentials)
        deadline = time.monotonic() + READY_TIMEOUT
        for _name, port, proc in apis:
            url = f"http://127.0.0.1:{port}/readyz"
            wait_http_ready(url, timeout=max(1.0, deadline - time.monotonic()), proc=proc)
        if prometheus_wanted():
            started.append(start_prometheus(run_dir, [(name, port) for name, port, _ in apis]))
            wait_http_ready(f"http://127.0.0.1:{PROMETHEUS_PORT}/-/ready", timeout=60)
        for proc in started:
            if not proc.alive():
                raise DevstackError(f"{proc.name} exited; log tail:\n{proc.log_tail()}")
    except (DevstackError, OSError) as exc:
        _say(f"FAILED: {exc}")
        if keep_on_failure:
            _say("processes left running (--keep-on-failure); `down` stops them")
        else:
            for proc in reversed(started):
                _stop_quietly(proc)
        return 1
    state: dict[str, object] = {
        "kafka_bootstrap_servers": bootstrap,
        "kafka_security_protocol": "SASL_PLAINTEXT" if credentials else "PLAINTEXT",
        "mongodb_url": mongo,
        "apis": {name: f"http://127.0.0.1:{port}" for name, port, _ in apis},
    }
    if credentials is not None:
        state["kafka_credentials"] = str(_sasl_dir(run_dir) / CREDENTIALS_FILE)
    _state_file(run_dir).write_text(json.dumps(state, indent=2) + "\n")
    print()
    print(f"  KAFKA_BOOTSTRAP_SERVERS={bootstrap}")
    if credentials is not None:
        print(
            "  Kafka: SASL/SCRAM-SHA-512 with ACLs; tools (mandaact tail):"
            ' eval "$(.venv/bin/python -m mandaact_devstack kafka-env)"'
        )
    print(f"  MONGODB_URL={mongo}")
    for name, port, _ in apis:
        metrics = (
            f", worker metrics: http://127.0.0.1:{worker_metrics_port(port)}/metrics"
            if "worker" in kinds_of(name)
            else ""
        )
        print(
            f"  {name:<13} http://127.0.0.1:{port}"
            f"  (docs: /docs, AsyncAPI: /asyncapi.json{metrics})"
        )
    if prometheus_wanted():
        print(f"  prometheus    http://127.0.0.1:{PROMETHEUS_PORT}  (alerts: /alerts)")
    print(f"  logs: {run_dir / 'logs'}")
    return 0


def fetch() -> int:
    """Make sure Kafka's jars are in deploy/kafka/lib (runs Maven only when needed)."""
    started_at = time.monotonic()
    try:
        lib = ensure_kafka_artifacts(quiet=True)
    except DevstackError as exc:
        _say(f"FAILED: {exc}")
        return 1
    _say(f"Kafka {kafka_version(lib)} jars in {lib} ({time.monotonic() - started_at:.1f}s)")
    return 0


def _stop_quietly(proc: ManagedProcess) -> None:
    try:
        proc.stop()
    except DevstackError as exc:
        _say(f"could not stop {proc.name}: {exc}")


def down(run_dir: Path) -> int:
    """Stop the services, then Kafka and SecantusDB (only what `up` started)."""
    leftovers: list[str] = []
    targets: list[tuple[str, Path, str]] = [
        (PROMETHEUS_MARKER, prometheus_pid_file(run_dir), PROMETHEUS_MARKER)
    ]
    for name in reversed(list(SERVICE_PORTS)):
        for kind in ("worker", "api"):
            # every instance `up` may have started (MANDAACT_WORKER_INSTANCES)
            extra = sorted(
                (run_dir / "pids").glob(f"{process_name(name, kind)}-*.pid"), reverse=True
            )
            for pid_file in [*extra, pid_path(name, kind, run_dir)]:
                targets.append((pid_file.stem, pid_file, f"mandaact-{name}-{kind}"))
    for pid_file in _kafka_pid_files(run_dir):
        targets.append((pid_file.stem, pid_file, KAFKA.marker))
    targets.append((SECANTUS.name, _infra_pid_file(run_dir, SECANTUS), SECANTUS.marker))
    kafka_signalled = False
    for label, pid_file, marker in targets:
        if marker == KAFKA.marker and not kafka_signalled:
            # All nodes of a cluster at once: one by one, the last would wait for a quorum.
            kafka_signalled = True
            _terminate(_kafka_pid_files(run_dir), KAFKA.marker)
        pid = read_pid_file(pid_file)
        if pid is None:
            continue
        proc = adopt_pid_file(label, pid_file, pid_file, marker)
        if proc is None:
            _say(f"{label}: not running (stale pid file removed)")
            pid_file.unlink(missing_ok=True)
            continue
        started_at = time.monotonic()
        try:
            stop_process_group(proc.pid, timeout=30)
        except DevstackError as exc:
            leftovers.append(f"{label}: {exc}")
            continue
        pid_file.unlink(missing_ok=True)
        _say(f"{label}: stopped (pid {pid}, {time.monotonic() - started_at:.1f}s)")
        if group_members(pid):
            leftovers.append(f"{label}: processes {group_members(pid)} still alive")
    _state_file(run_dir).unlink(missing_ok=True)
    if leftovers:
        for line in leftovers:
            _say(f"LEFT BEHIND: {line}")
        return 1
    _say("all stopped")
    return 0


def _terminate(pid_files: list[Path], marker: str) -> None:
    for pid_file in pid_files:
        proc = adopt_pid_file(pid_file.stem, pid_file, pid_file, marker)
        if proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)


def status(run_dir: Path) -> int:
    """Print what runs (pid files, ports, readiness)."""
    rows: list[tuple[str, str, str]] = []
    for pid_file in sorted((run_dir / "pids").glob("kafka-*.pid")):
        node = adopt_pid_file(pid_file.stem, pid_file, pid_file, KAFKA.marker)
        rows.append((pid_file.stem, f"pid {node.pid}" if node else "not running", "cluster node"))
    for spec, host, port in ((KAFKA, KAFKA_HOST, KAFKA_PORT), (SECANTUS, MONGO_HOST, MONGO_PORT)):
        if spec is KAFKA and rows:  # a cluster's nodes are listed above
            continue
        proc = _running_infra(run_dir, spec)
        where = f"{host}:{port} {'open' if port_open(host, port) else 'closed'}"
        rows.append((spec.name, f"pid {proc.pid}" if proc else "not started by devstack", where))
    for name, port in SERVICE_PORTS.items():
        for kind in kinds_of(name):
            label = process_name(name, kind)
            proc = running_service(name, kind, run_dir)
            if kind == "worker":
                more = [
                    f.stem
                    for f in (run_dir / "pids").glob(f"{label}-*.pid")
                    if adopt_pid_file(f.stem, f, f, script_name(name, kind))
                ]
                label += f" (+{len(more)})" if more else ""
            installed = service_script(name, kind) is not None
            if proc is None:
                what = "not running" if installed else "not installed"
            else:
                what = f"pid {proc.pid}"
            detail = ""
            if kind == "api":
                code = http_status(f"http://127.0.0.1:{port}/readyz", timeout=1.0)
                detail = f":{port} readyz={code if code is not None else '-'}"
            if installed:
                detail = f"{detail} log {log_path(name, kind, run_dir)}".strip()
            rows.append((label, what, detail))
    width = max(len(r[0]) for r in rows)
    for label, what, detail in rows:
        print(f"{label:<{width}}  {what:<26} {detail}")
    state = _state_file(run_dir)
    if state.is_file():
        print(state.read_text().strip())
    return 0


def kafka_env(run_dir: Path, user: str = ADMIN_USER) -> int:
    """Print `export` lines that make a tool authenticate to the SASL broker as `user`."""
    path = _sasl_dir(run_dir) / CREDENTIALS_FILE
    if not path.is_file():
        _say(f"no {path}: start the SASL broker with `{SASL_ENV_FLAG}=true make up`")
        return 1
    credentials = KafkaCredentials.load_or_create(path, ())
    if user not in credentials.passwords:
        _say(f"unknown user {user!r}; known: {', '.join(sorted(credentials.passwords))}")
        return 1
    env = {"KAFKA_BOOTSTRAP_SERVERS": f"{KAFKA_HOST}:{KAFKA_PORT}", **credentials.env(user)}
    for name, value in env.items():
        print(f"export {name}={shlex.quote(value)}")
    return 0


def _tail(run_dir: Path, name: str) -> int:
    print(tail_file(run_dir / "logs" / f"{name}.log", 60))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m mandaact_devstack`."""
    parser = argparse.ArgumentParser(prog="python -m mandaact_devstack", description=__doc__)
    parser.add_argument(
        "--run-dir", type=Path, default=None, help="state dir (default <repo>/.run)"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    up_parser = sub.add_parser("up", help="start Kafka, SecantusDB, the services; wait until ready")
    up_parser.add_argument(
        "--keep-on-failure", action="store_true", help="do not stop what was started on failure"
    )
    up_parser.add_argument(
        "--services",
        default=None,
        help=f"comma-separated subset of {','.join(SERVICE_PORTS)} ('' = infrastructure only)",
    )
    sub.add_parser("fetch", help="fetch Kafka's jars into deploy/kafka/lib (Maven) if missing")
    sub.add_parser("down", help="stop what `up` started")
    sub.add_parser("status", help="show what runs")
    env_parser = sub.add_parser(
        "kafka-env", help="print `export` lines for tools against the SASL Kafka (eval them)"
    )
    env_parser.add_argument(
        "--user", default=ADMIN_USER, help=f"principal (default {ADMIN_USER}, the super user)"
    )
    logs_parser = sub.add_parser("logs", help="tail the log of a process, e.g. goals-api")
    logs_parser.add_argument("name")
    args = parser.parse_args(argv)
    run_dir: Path = (args.run_dir or default_run_dir()).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    if args.command == "up":
        services = None
        if args.services is not None:
            services = frozenset(s.strip() for s in args.services.split(",") if s.strip())
            unknown = services - set(SERVICE_PORTS)
            if unknown:
                parser.error(f"unknown services: {', '.join(sorted(unknown))}")
        return up(run_dir, keep_on_failure=args.keep_on_failure, services=services)
    if args.command == "down":
        return down(run_dir)
    if args.command == "fetch":
        return fetch()
    if args.command == "logs":
        return _tail(run_dir, args.name)
    if args.command == "kafka-env":
        return kafka_env(run_dir, args.user)
    return status(run_dir)


if __name__ == "__main__":
    sys.exit(main())
