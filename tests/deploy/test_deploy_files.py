"""Static checks of the container and Kubernetes files: docker-compose.yml, the one
deploy/Dockerfile of the four services, .dockerignore, deploy/prometheus and deploy/k8s.

No Docker engine runs here, so nothing is built or started; these tests pin the structure
(see docs/deploy.md for what was validated by other means).
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml
from pydantic import SecretStr

from mandaact_common.kafka_acls import Acl, kafka_principal
from mandaact_common.settings import DEV_ERASURE_KEY, DEV_JWT_SECRET, ServiceSettings
from mandaact_contracts.asyncapi import CONSUMERS, PRODUCERS
from mandaact_contracts.topics import (
    ALL_TOPICS,
    CONSUMER_GROUPS,
    ERASING_SERVICES,
    TOPIC_PARTITIONS,
    USER_ERASED,
    dead_letter_topic,
    topics_to_create,
)
from mandaact_devstack.kafka import FALLBACK_TOPICS
from mandaact_devstack.kafka_sasl import stack_acls

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
K8S_DIR = ROOT / "deploy" / "k8s"
PROMETHEUS_FILE = ROOT / "deploy" / "prometheus" / "prometheus.yml"
KAFKA_SCRIPTS = ROOT / "deploy" / "kafka" / "compose"

PORTS = {
    "goals": 8001,
    "checkins": 8002,
    "gamification": 8003,
    "reports": 8004,
    "webhooks": 8005,
    "notifications": 8006,
}
SERVICES = tuple(PORTS)
API_ONLY = {"ops": 8007}
"""Services with an HTTP API and no worker (docs/ops.md)."""
PRINCIPALS = (*SERVICES, *API_ONLY)
"""Every service: each has its own Kafka principal."""
WORKER_METRICS_PORT = 9100
INFRA = ("kafka", "mongo")
ONE_SHOT = ("kafka-format", "kafka-init")
APP_ENV_KEYS = (
    "KAFKA_BOOTSTRAP_SERVERS",
    "MONGODB_URL",
    "MANDAACT_ENV",
    "MANDAACT_JWT_SECRET",
    "MANDAACT_JWT_JWKS_URL",
    "MANDAACT_JWT_AUDIENCE",
    "MANDAACT_JWT_ISSUER",
    "MANDAACT_ERASURE_KEY",
    "MANDAACT_ERASURE_GRACE_S",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
)
TOKEN_ENV_KEYS = APP_ENV_KEYS[3:9]
"""Passed through from the shell running compose, never given a default there: the token
settings and the erasure key (with its grace)."""
REAL_JWT_SECRET = "0123456789abcdef" * 4
REAL_ERASURE_KEY = "fedcba9876543210" * 4


def _mapping(value: Any) -> dict[str, Any]:
    assert isinstance(value, dict), f"expected a mapping, got {value!r}"
    return value


def _load_yaml(path: Path) -> dict[str, Any]:
    return _mapping(yaml.safe_load(path.read_text()))


def _load_yaml_docs(path: Path) -> list[dict[str, Any]]:
    return [_mapping(doc) for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def _env(service: dict[str, Any]) -> dict[str, Any]:
    """A compose service's environment as a mapping (compose allows a list too)."""
    env = service.get("environment", {})
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return _mapping(env)


def _healthcheck_text(service: dict[str, Any]) -> str:
    test = _mapping(service["healthcheck"])["test"]
    return test if isinstance(test, str) else " ".join(str(part) for part in test)


def _dockerfile() -> str:
    return DOCKERFILE.read_text()


def _instructions(dockerfile: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per logical line: continuations joined, comments dropped."""
    logical: list[str] = []
    pending = ""
    for raw in dockerfile.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    result = []
    for line in logical:
        keyword, _, rest = line.partition(" ")
        result.append((keyword.upper(), rest.strip()))
    return result


def _stages(
    instructions: list[tuple[str, str]],
) -> tuple[list[tuple[str, str]], list[list[tuple[str, str]]]]:
    """The instructions before the first FROM (global ARGs) and those of each build stage."""
    preamble: list[tuple[str, str]] = []
    stages: list[list[tuple[str, str]]] = []
    for instruction in instructions:
        if instruction[0] == "FROM":
            stages.append([])
        (stages[-1] if stages else preamble).append(instruction)
    return preamble, stages


def _args(instructions: list[tuple[str, str]]) -> dict[str, str | None]:
    """ARG name -> default (None when the ARG has none and must come from --build-arg)."""
    result: dict[str, str | None] = {}
    for kind, rest in instructions:
        if kind == "ARG":
            name, sep, default = rest.partition("=")
            result[name] = default if sep else None
    return result


def _expand(text: str, values: dict[str, str]) -> str:
    """Substitutes ${NAME} / $NAME the way the Dockerfile frontend does for ARG and ENV values."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return values.get(name, match.group(0))

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", value, text)


def _service_build(service: str) -> list[tuple[str, str]]:
    """The final stage's instructions, with the build args of one service substituted."""
    values = {"SERVICE": service, "HTTP_PORT": str({**PORTS, **API_ONLY}[service])}
    _, stages = _stages(_instructions(_dockerfile()))
    return [(kind, _expand(rest, values)) for kind, rest in stages[-1]]


def _env_instructions(instructions: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for kind, rest in instructions:
        if kind == "ENV":
            for item in rest.split():
                name, _, value = item.partition("=")
                env[name] = value
    return env


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return _load_yaml(COMPOSE_FILE)


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: _mapping(spec) for name, spec in _mapping(compose["services"]).items()}


@pytest.fixture(scope="module")
def k8s_docs() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted(K8S_DIR.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            docs.extend(_load_yaml_docs(path))
    return docs


# --- docker-compose.yml ---------------------------------------------------------------------


def test_compose_has_infra_one_shot_and_an_api_and_worker_per_service(
    services: dict[str, dict[str, Any]],
) -> None:
    expected = {*INFRA, *ONE_SHOT}
    expected |= {f"{svc}-{kind}" for svc in SERVICES for kind in ("api", "worker")}
    assert expected <= set(services)


@pytest.mark.parametrize("service", SERVICES)
def test_api_and_worker_share_the_image_built_from_the_one_dockerfile(
    services: dict[str, dict[str, Any]], service: str
) -> None:
    api, worker = services[f"{service}-api"], services[f"{service}-worker"]
    for spec in (api, worker):
        build = _mapping(spec["build"])
        assert build["context"] == "."
        assert build["dockerfile"] == "deploy/Dockerfile"
        args = {name: str(value) for name, value in _mapping(build["args"]).items()}
        assert args == {"SERVICE": service, "HTTP_PORT": str(PORTS[service])}
    assert api["image"] == worker["image"]
    assert "command" not in api, "the API runs the image's default CMD"
    assert worker["command"] == [f"mandaact-{service}-worker"]


def test_every_long_running_service_has_a_healthcheck(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, spec in services.items():
        if name in ONE_SHOT:
            continue
        test = _mapping(spec.get("healthcheck", {})).get("test")
        assert test, f"{name} has no healthcheck"
        assert test not in ("NONE", ["NONE"]), f"{name} disables its healthcheck"


@pytest.mark.parametrize("service", SERVICES)
def test_app_healthchecks_probe_the_api_and_the_worker_liveness(
    services: dict[str, dict[str, Any]], service: str
) -> None:
    api_check = _healthcheck_text(services[f"{service}-api"])
    assert f"http://127.0.0.1:{PORTS[service]}/readyz" in api_check
    assert "urllib.request" in api_check
    worker_check = _healthcheck_text(services[f"{service}-worker"])
    assert f"http://127.0.0.1:{WORKER_METRICS_PORT}/livez" in worker_check
    worker_env = _env(services[f"{service}-worker"])
    assert str(worker_env["MANDAACT_WORKER_METRICS_PORT"]) == str(WORKER_METRICS_PORT)


def test_every_app_waits_for_healthy_kafka_and_mongo_and_created_topics(
    services: dict[str, dict[str, Any]],
) -> None:
    for service in SERVICES:
        for kind in ("api", "worker"):
            depends_on = _mapping(services[f"{service}-{kind}"]["depends_on"])
            conditions = {name: _mapping(dep)["condition"] for name, dep in depends_on.items()}
            assert conditions == {
                "kafka": "service_healthy",
                "mongo": "service_healthy",
                "kafka-init": "service_completed_successfully",
            }, f"{service}-{kind}"


def test_api_ports_are_8001_to_8004(services: dict[str, dict[str, Any]]) -> None:
    for service, port in PORTS.items():
        api = services[f"{service}-api"]
        assert api["ports"] == [f"{port}:{port}"]
        assert str(_env(api)["MANDAACT_HTTP_PORT"]) == str(port)
        assert "ports" not in services[f"{service}-worker"]


def test_apps_get_the_in_network_addresses_and_the_passthrough_settings(
    services: dict[str, dict[str, Any]],
) -> None:
    for service in SERVICES:
        for kind in ("api", "worker"):
            env = _env(services[f"{service}-{kind}"])
            missing = [key for key in APP_ENV_KEYS if key not in env]
            assert not missing, f"{service}-{kind} lacks {missing}"
            assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
            assert env["MONGODB_URL"] == "mongodb://mongo:27017/?replicaSet=rs0"
            # No value: compose passes the variable through from its own environment.
            assert env["OPENAI_API_KEY"] is None
            assert env["OPENAI_BASE_URL"] is None


def _interpolate(value: str, shell: dict[str, str]) -> str:
    """`${NAME}`, `${NAME:-default}` and `${NAME:?error}` substituted from the shell, as compose
    does (an unset or empty NAME with `:?` fails)."""

    def substitute(match: re.Match[str]) -> str:
        name, kind, text = match.group(1), match.group(2), match.group(3) or ""
        if kind == ":?" and not shell.get(name):
            raise ValueError(f"required variable {name} is missing a value: {text}")
        return shell.get(name) or (text if kind == ":-" else "")

    return re.sub(r"\$\{(\w+)(?:(:-|:\?)([^}]*))?\}", substitute, value)


KAFKA_PASSWORDS = {
    f"MANDAACT_KAFKA_{name}_PASSWORD": f"{name.lower()}0123456789abcdef"
    for name in ("ADMIN", *(service.upper() for service in PRINCIPALS))
}
"""What `.env` holds for compose's Kafka principals (docker-compose.yml, top)."""


def _container_env(env: dict[str, Any], shell: dict[str, str]) -> dict[str, str]:
    """A compose service's environment as its container sees it, run from `shell`."""
    resolved: dict[str, str] = {}
    for name, value in env.items():
        if value is not None:
            resolved[name] = _interpolate(str(value), shell)
        elif name in shell:  # a bare key: passed through when the shell sets it
            resolved[name] = shell[name]
    return resolved


def _settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> ServiceSettings:
    """The settings a service process builds from exactly this environment."""
    for name in list(os.environ):
        if name.startswith("MANDAACT_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return ServiceSettings()


def test_compose_ships_no_dev_secret_and_runs_in_production_unless_told(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Decision (docs/security.md): `docker compose up` with nothing set refuses to start; the
    dev secret and the dev erasure key are used only with MANDAACT_ENV=local (or test) set
    explicitly in the shell."""
    assert DEV_JWT_SECRET not in COMPOSE_FILE.read_text()
    assert DEV_ERASURE_KEY not in COMPOSE_FILE.read_text()
    env = _env(services["goals-api"])
    assert env["MANDAACT_ENV"] == "${MANDAACT_ENV:-production}"
    for service in SERVICES:
        for kind in ("api", "worker"):
            app_env = _env(services[f"{service}-{kind}"])
            assert all(app_env[key] is None for key in TOKEN_ENV_KEYS), f"{service}-{kind}"
    with pytest.raises(ValueError, match="needs MANDAACT_JWT_SECRET"):
        _settings_from(_container_env(env, KAFKA_PASSWORDS), monkeypatch)
    local_shell = {**KAFKA_PASSWORDS, "MANDAACT_ENV": "local"}
    local = _settings_from(_container_env(env, local_shell), monkeypatch)
    assert local.env == "local"
    assert local.erasure_key == SecretStr(DEV_ERASURE_KEY)
    jwt_only = {**KAFKA_PASSWORDS, "MANDAACT_JWT_SECRET": REAL_JWT_SECRET}
    with pytest.raises(ValueError, match="needs MANDAACT_ERASURE_KEY"):
        _settings_from(_container_env(env, jwt_only), monkeypatch)
    shell = {**jwt_only, "MANDAACT_ERASURE_KEY": REAL_ERASURE_KEY}
    production = _settings_from(_container_env(env, shell), monkeypatch)
    assert production.env == "production"
    assert production.jwt_secret == SecretStr(REAL_JWT_SECRET)
    assert production.erasure_key == SecretStr(REAL_ERASURE_KEY)
    assert production.erasure_grace_seconds == 40


def test_compose_passes_the_erasure_key_and_grace_to_every_app_alike(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every service's hashes of erased users must match: one key, from the shell, for all."""
    shell = {
        **KAFKA_PASSWORDS,
        "MANDAACT_JWT_SECRET": REAL_JWT_SECRET,
        "MANDAACT_ERASURE_KEY": REAL_ERASURE_KEY,
        "MANDAACT_ERASURE_GRACE_S": "5",
    }
    apps = [f"{svc}-{kind}" for svc in SERVICES for kind in ("api", "worker")]
    for app in [*apps, *(f"{svc}-api" for svc in API_ONLY)]:
        settings = _settings_from(_container_env(_env(services[app]), shell), monkeypatch)
        assert settings.erasure_key == SecretStr(REAL_ERASURE_KEY), app
        assert settings.erasure_grace_seconds == 5, app
    with pytest.raises(ValueError, match="documented development key"):
        _settings_from(
            _container_env(
                _env(services["goals-worker"]), {**shell, "MANDAACT_ERASURE_KEY": DEV_ERASURE_KEY}
            ),
            monkeypatch,
        )


def test_kafka_is_a_single_kraft_node_reachable_in_the_network(
    services: dict[str, dict[str, Any]],
) -> None:
    kafka = services["kafka"]
    assert str(kafka["image"]).startswith("apache/kafka:")
    env = _env(kafka)
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["CLUSTER_ID"]
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{env['KAFKA_NODE_ID']}@kafka:9093"
    assert "BROKER://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    assert str(env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"]) == "false"
    assert "kafka-broker-api-versions.sh" in _healthcheck_text(kafka)


def test_kafka_init_creates_every_contract_topic_and_dead_letter_topic(
    services: dict[str, dict[str, Any]],
) -> None:
    init = services["kafka-init"]
    assert init["image"] == services["kafka"]["image"]
    assert _mapping(init["depends_on"]) == {"kafka": {"condition": "service_healthy"}}
    assert init["entrypoint"] == ["/bin/bash", "/opt/mandaact/kafka/init.sh"]
    assert init.get("restart") == "no"
    env = _env(init)
    topics = str(env["TOPICS"]).split()
    assert sorted(topics) == sorted(ALL_TOPICS)
    assert len(topics) == len(set(topics))
    assert set(TOPIC_PARTITIONS.values()) == {int(env["PARTITIONS"])}
    dead_letters = str(env["DEAD_LETTER_TOPICS"]).split()
    assert sorted(dead_letters) == sorted(dead_letter_topic(g) for g in CONSUMER_GROUPS)
    script = (KAFKA_SCRIPTS / "init.sh").read_text()
    assert "for topic in $TOPICS $DEAD_LETTER_TOPICS" in script
    assert "--create --if-not-exists" in script
    assert '--partitions "$PARTITIONS"' in script
    assert env["BOOTSTRAP"] == "kafka:9092"


def test_mongo_runs_as_a_single_node_replica_set(services: dict[str, dict[str, Any]]) -> None:
    mongo = services["mongo"]
    assert str(mongo["image"]).split(":")[0] == "mongo"
    assert str(mongo["image"]).split(":")[1].startswith("7")
    command = mongo["command"]
    assert command[command.index("--replSet") + 1] == "rs0"
    check = _healthcheck_text(mongo)
    assert "rs.initiate" in check
    assert "_id: 'rs0'" in check
    assert "host: 'mongo:27017'" in check
    assert "isWritablePrimary" in check
    url = urlsplit(str(_env(services["goals-api"])["MONGODB_URL"]))
    assert url.netloc == "mongo:27017"
    assert parse_qs(url.query)["replicaSet"] == ["rs0"]


def test_prometheus_scrapes_every_api_and_worker(services: dict[str, dict[str, Any]]) -> None:
    prometheus = services["prometheus"]
    assert (
        "./deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro"
        in (prometheus["volumes"])
    )
    config = _load_yaml(PROMETHEUS_FILE)
    targets = {
        target
        for job in config["scrape_configs"]
        for group in job["static_configs"]
        for target in group["targets"]
    }
    expected = {f"{svc}-api:{port}" for svc, port in {**PORTS, **API_ONLY}.items()}
    expected |= {f"{svc}-worker:{WORKER_METRICS_PORT}" for svc in SERVICES}
    assert targets == expected
    assert all(job["metrics_path"] == "/metrics" for job in config["scrape_configs"])


def test_docker_compose_config_validates() -> None:
    """`docker compose config -q` checks the file against the Compose specification."""
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("the docker CLI is not installed")
    version = subprocess.run(
        [docker, "compose", "version"], capture_output=True, text=True, check=False, timeout=60
    )
    if version.returncode != 0:
        pytest.skip("the docker CLI has no compose plugin (see docs/deploy.md)")
    result = subprocess.run(
        [docker, "compose", "--profile", "observability", "config", "-q"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


# --- deploy/Dockerfile and .dockerignore ---------------------------------------------------


def test_the_services_share_one_dockerfile() -> None:
    assert DOCKERFILE.is_file()
    assert not sorted(ROOT.glob("services/*/Dockerfile")), "per-service copies are back"
    assert not (ROOT / "Dockerfile").exists()


def test_dockerfile_base_image_is_pinned_to_an_exact_tag() -> None:
    preamble, stages = _stages(_instructions(_dockerfile()))
    image = _args(preamble)["PYTHON_IMAGE"]
    assert image is not None
    # An exact patch release and Debian release, not a moving tag like python:3.11-slim.
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", image), image
    assert [stage[0] for stage in stages] == [
        ("FROM", "${PYTHON_IMAGE} AS build"),
        ("FROM", "${PYTHON_IMAGE}"),
    ]


def test_dockerfile_takes_service_and_port_as_build_args_with_no_default() -> None:
    preamble, stages = _stages(_instructions(_dockerfile()))
    assert not {"SERVICE", "HTTP_PORT"} & set(_args(preamble))
    for stage in stages:
        # No default: a build without --build-arg SERVICE fails instead of building goals.
        args = _args(stage)
        assert args["SERVICE"] is None
        assert args["HTTP_PORT"] is None


def _run_arg_check(service: str, port: str) -> subprocess.CompletedProcess[str]:
    """Runs the build stage's SERVICE/HTTP_PORT check as `docker build` would: /bin/sh -c."""
    _, stages = _stages(_instructions(_dockerfile()))
    checks = [rest for kind, rest in stages[0] if kind == "RUN" and "${SERVICE}:" in rest]
    assert len(checks) == 1
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "SERVICE": service, "HTTP_PORT": port}
    return subprocess.run(
        ["/bin/sh", "-c", checks[0]], env=env, capture_output=True, text=True, timeout=30
    )


@pytest.mark.parametrize("service", PRINCIPALS)
def test_dockerfile_accepts_each_service_with_its_port(service: str) -> None:
    result = _run_arg_check(service, str({**PORTS, **API_ONLY}[service]))
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("service", "port"),
    [("", ""), ("goals", ""), ("", "8001"), ("goals", "8002"), ("reports", "8001"), ("x", "8001")],
)
def test_dockerfile_refuses_a_missing_or_unknown_service_or_a_wrong_port(
    service: str, port: str
) -> None:
    result = _run_arg_check(service, port)
    assert result.returncode != 0
    assert "--build-arg SERVICE=" in result.stderr


@pytest.mark.parametrize("service", SERVICES)
def test_dockerfile_builds_each_service_by_arg(service: str) -> None:
    _, stages = _stages(_instructions(_dockerfile()))
    values = {"SERVICE": service, "HTTP_PORT": str(PORTS[service])}
    build = [(kind, _expand(rest, values)) for kind, rest in stages[0]]
    copies = [rest.split() for kind, rest in build if kind == "COPY"]
    assert copies == [
        ["requirements-runtime.lock", "/src/requirements-runtime.lock"],
        ["contracts/", "/src/contracts/"],
        ["libs/common/", "/src/libs/common/"],
        [f"services/{service}/", f"/src/services/{service}/"],
    ]
    assert (ROOT / "requirements-runtime.lock").is_file()
    for source, _ in copies[1:]:
        assert (ROOT / source / "pyproject.toml").is_file(), source
    runs = [rest for kind, rest in build if kind == "RUN" and "pip install" in rest]
    # third-party packages only from the lock, hash-checked; then the local packages, no deps
    assert runs == [
        "/opt/venv/bin/pip install --require-hashes --no-deps -r /src/requirements-runtime.lock",
        "/opt/venv/bin/pip install --no-deps --no-build-isolation /src/contracts"
        f' /src/libs/common "/src/services/{service}"  && /opt/venv/bin/pip check',
    ]
    assert all(" -e " not in run and "--editable" not in run for run in runs)
    scripts = tomllib.loads((ROOT / "services" / service / "pyproject.toml").read_text())[
        "project"
    ]["scripts"]
    assert {f"mandaact-{service}-api", f"mandaact-{service}-worker"} <= set(scripts)
    final = _service_build(service)
    labels = " ".join(rest for kind, rest in final if kind == "LABEL")
    assert f'org.opencontainers.image.title="mandaact-{service}"' in labels
    assert f'io.mandaact.api-command="mandaact-{service}-api"' in labels
    assert f'io.mandaact.worker-command="mandaact-{service}-worker"' in labels
    env = _env_instructions(final)
    assert env["MANDAACT_SERVICE"] == service
    assert env["MANDAACT_HTTP_HOST"] == "0.0.0.0"
    assert env["MANDAACT_HTTP_PORT"] == str(PORTS[service])
    assert ("EXPOSE", str(PORTS[service])) in final


@pytest.mark.parametrize("service", SERVICES)
def test_dockerfile_default_command_execs_the_service_api(service: str, tmp_path: Path) -> None:
    """The CMD, run as the container would with the image's ENV, execs mandaact-<svc>-api."""
    final = _service_build(service)
    assert final[-1][0] == "CMD"
    argv = json.loads(final[-1][1])
    assert argv[:2] == ["/bin/sh", "-c"]
    assert argv[2].startswith("exec "), "the API must be PID 1 to get the container's signals"
    for name in (f"mandaact-{s}-api" for s in SERVICES):
        fake = tmp_path / name
        fake.write_text(f"#!/bin/sh\necho {name}\n")
        fake.chmod(0o755)
    env = {**_env_instructions(final), "PATH": f"{tmp_path}:/usr/bin:/bin"}
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"mandaact-{service}-api"


def test_dockerfile_runs_as_non_root_with_a_healthz_healthcheck() -> None:
    instructions = _instructions(_dockerfile())
    users = [rest for kind, rest in instructions if kind == "USER"]
    assert users, "no USER instruction: the image would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    final_stage = max(i for i, (kind, _) in enumerate(instructions) if kind == "FROM")
    assert instructions.index(("USER", users[-1])) > final_stage
    checks = [rest for kind, rest in instructions if kind == "HEALTHCHECK"]
    assert len(checks) == 1
    assert "urllib.request" in checks[0]
    assert "/healthz" in checks[0]
    assert "MANDAACT_HTTP_PORT" in checks[0]
    assert "curl" not in checks[0]


def test_dockerignore_sends_only_the_installed_packages() -> None:
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "the build context is the repo root: allow-list it"
    included = {line[1:] for line in lines if line.startswith("!")}
    assert {"contracts/src", "libs/common/src", "services/*/src"} <= included
    assert {"**/*.egg-info", "**/__pycache__"} <= set(lines)
    copies = [rest for kind, rest in _instructions(_dockerfile()) if kind == "COPY"]
    sources = {rest.split()[0] for rest in copies if not rest.startswith("--from")}
    assert sources == {
        "requirements-runtime.lock",
        "contracts/",
        "libs/common/",
        "services/${SERVICE}/",
    }
    for service in PRINCIPALS:
        for part in ("pyproject.toml", "src"):
            path = f"services/{service}/{part}"
            assert any(fnmatch.fnmatch(path, pattern) for pattern in included), path


# --- deploy/k8s -----------------------------------------------------------------------------


def _by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == kind}


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return _mapping(containers[0])


def test_k8s_manifests_parse_and_are_listed_in_the_kustomization(
    k8s_docs: list[dict[str, Any]],
) -> None:
    for doc in k8s_docs:
        assert {"apiVersion", "kind", "metadata"} <= set(doc)
    kustomization = _load_yaml(K8S_DIR / "kustomization.yaml")
    resources = set(kustomization["resources"])
    files = {p.name for p in K8S_DIR.glob("*.yaml")} - {"kustomization.yaml"}
    assert resources == files - {"secret.example.yaml"}
    assert {f"{svc}.yaml" for svc in PRINCIPALS} <= resources


def test_k8s_every_deployment_has_probes_and_runs_as_non_root(
    k8s_docs: list[dict[str, Any]],
) -> None:
    deployments = _by_kind(k8s_docs, "Deployment")
    expected = {f"{svc}-{kind}" for svc in SERVICES for kind in ("api", "worker")}
    expected |= {f"{svc}-api" for svc in API_ONLY}
    assert set(deployments) == expected
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        container = _container(deployment)
        assert container["livenessProbe"]["httpGet"]["path"], name
        assert container["readinessProbe"]["httpGet"]["path"], name
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()


@pytest.mark.parametrize("service", SERVICES)
def test_k8s_api_and_worker_of_each_service(k8s_docs: list[dict[str, Any]], service: str) -> None:
    deployments = _by_kind(k8s_docs, "Deployment")
    port = PORTS[service]
    api = _container(deployments[f"{service}-api"])
    assert api["command"] == [f"mandaact-{service}-api"]
    assert api["ports"] == [{"name": "http", "containerPort": port}]
    assert api["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert api["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert {"name": "MANDAACT_HTTP_PORT", "value": str(port)} in api["env"]
    worker = _container(deployments[f"{service}-worker"])
    assert worker["command"] == [f"mandaact-{service}-worker"]
    assert worker["image"] == api["image"]
    assert worker["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "metrics"}
    assert worker["readinessProbe"]["httpGet"] == {"path": "/livez", "port": "metrics"}
    # restarted within about a minute of a stall: 30 s stale heartbeat + 3 failed probes
    assert (
        worker["livenessProbe"]["periodSeconds"] * worker["livenessProbe"]["failureThreshold"] <= 30
    )
    assert worker["ports"] == [{"name": "metrics", "containerPort": WORKER_METRICS_PORT}]
    for container in (api, worker):
        sources = [next(iter(ref.values()))["name"] for ref in container["envFrom"]]
        assert sources == ["mandaact-config", "mandaact-secrets"]
    svc = _by_kind(k8s_docs, "Service")[f"{service}-api"]
    assert (
        svc["spec"]["selector"] == deployments[f"{service}-api"]["spec"]["selector"]["matchLabels"]
    )
    assert svc["spec"]["ports"] == [{"name": "http", "port": port, "targetPort": "http"}]


def test_k8s_config_and_secret_template(k8s_docs: list[dict[str, Any]]) -> None:
    config = _by_kind(k8s_docs, "ConfigMap")["mandaact-config"]["data"]
    assert {"KAFKA_BOOTSTRAP_SERVERS", "MONGODB_URL", "MANDAACT_ENV"} <= set(config)
    assert config["MANDAACT_WORKER_METRICS_PORT"] == str(WORKER_METRICS_PORT)
    assert all(isinstance(value, str) for value in config.values())
    secret = _by_kind(k8s_docs, "Secret")["mandaact-secrets"]
    assert "data" not in secret
    values = secret["stringData"]
    assert {"MANDAACT_JWT_SECRET", "MANDAACT_ERASURE_KEY", "OPENAI_API_KEY"} <= set(values)
    # Placeholders the services refuse (fewer than 32 characters), never a usable secret.
    assert len(values["MANDAACT_JWT_SECRET"]) < 32
    assert len(values["MANDAACT_ERASURE_KEY"]) < 32
    assert values["OPENAI_API_KEY"] == ""
    # One Secret for every pod: the same erasure key in every service.
    for deployment in _by_kind(k8s_docs, "Deployment").values():
        env_names = {item["name"] for item in _container(deployment)["env"]}
        assert not {"MANDAACT_ERASURE_KEY", "MANDAACT_JWT_SECRET"} & env_names


def test_k8s_pods_refuse_to_start_until_the_real_secret_is_made(
    k8s_docs: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _by_kind(k8s_docs, "ConfigMap")["mandaact-config"]["data"]
    # Each pod adds its Kafka principal; the operator makes the password (kafka-users.yaml).
    pod = _pod_kafka_env(_container(_by_kind(k8s_docs, "Deployment")["goals-api"]))
    secret = {**_by_kind(k8s_docs, "Secret")["mandaact-secrets"]["stringData"], **pod}
    assert config["MANDAACT_ENV"] == "production"
    with pytest.raises(ValueError, match="MANDAACT_JWT_SECRET must be at least 32 characters"):
        _settings_from({**config, **secret}, monkeypatch)
    with pytest.raises(ValueError, match="documented development secret"):
        _settings_from({**config, **secret, "MANDAACT_JWT_SECRET": DEV_JWT_SECRET}, monkeypatch)
    jwt_made = {**config, **secret, "MANDAACT_JWT_SECRET": REAL_JWT_SECRET}
    with pytest.raises(ValueError, match="MANDAACT_ERASURE_KEY must be at least 32 characters"):
        _settings_from(jwt_made, monkeypatch)
    with pytest.raises(ValueError, match="documented development key"):
        _settings_from({**jwt_made, "MANDAACT_ERASURE_KEY": DEV_ERASURE_KEY}, monkeypatch)
    without_key = {k: v for k, v in jwt_made.items() if k != "MANDAACT_ERASURE_KEY"}
    with pytest.raises(ValueError, match="needs MANDAACT_ERASURE_KEY"):
        _settings_from(without_key, monkeypatch)
    made = {**jwt_made, "MANDAACT_ERASURE_KEY": REAL_ERASURE_KEY}
    assert _settings_from(made, monkeypatch).env == "production"
    for path in K8S_DIR.glob("*.yaml"):
        assert DEV_JWT_SECRET not in path.read_text(), path
        assert DEV_ERASURE_KEY not in path.read_text(), path


def test_k8s_kafka_topics_are_every_contract_and_dead_letter_topic(
    k8s_docs: list[dict[str, Any]],
) -> None:
    topics = _by_kind(k8s_docs, "KafkaTopic")
    assert {name: doc["spec"]["partitions"] for name, doc in topics.items()} == topics_to_create()
    for doc in topics.values():
        assert doc["apiVersion"] == "kafka.strimzi.io/v1"
        assert doc["metadata"]["labels"]["strimzi.io/cluster"] == "mandaact"


def test_devstack_fallback_topics_are_the_contract_ones() -> None:
    """devstack's built-in copy (used when the contracts are not installed) has not drifted."""
    assert topics_to_create() == FALLBACK_TOPICS


# --- Kafka: SASL/SCRAM principals and ACLs (SPEC §11) ---------------------------------------


def _declared_acls() -> dict[str, frozenset[Acl]]:
    """Principal -> ACLs, derived from each service's WorkerSpec (the one source of truth)."""
    acls = stack_acls(PRINCIPALS)
    assert set(acls) == {kafka_principal(s) for s in PRINCIPALS}, "a service is not installed"
    return acls


def _pod_kafka_env(container: dict[str, Any]) -> dict[str, str]:
    """A pod's Kafka principal env, the operator-made password stood in for by a value."""
    env: dict[str, str] = {}
    for item in container["env"]:
        if item["name"] == "MANDAACT_KAFKA_SASL_USERNAME":
            env[item["name"]] = item["value"]
        elif item["name"] == "MANDAACT_KAFKA_SASL_PASSWORD":
            ref = item["valueFrom"]["secretKeyRef"]
            env[item["name"]] = f"made-by-operator-{ref['name']}-{ref['key']}"
    return env


def test_each_service_can_write_only_what_it_publishes_and_read_only_what_it_consumes() -> None:
    acls = _declared_acls()
    checkins = acls[kafka_principal("checkins")]
    assert Acl("topic", "xp.awarded", "Write") not in checkins
    assert Acl("topic", "action.completed", "Write") in checkins
    assert Acl("topic", "checkins.dlt", "Write") in checkins
    assert Acl("group", "checkins", "Read") in checkins
    for principal, rules in acls.items():
        writes = {a.name for a in rules if a.operation == "Write"}
        assert all(a.resource == "topic" for a in rules if a.operation == "Write"), principal
        groups = {a.name for a in rules if a.resource == "group"}
        assert writes - {dead_letter_topic(g) for g in groups} <= set(ALL_TOPICS), principal


def _services_named(text: str) -> set[str]:
    """`PRODUCERS` values name one service or several ("a, b and c")."""
    return {
        name.strip() for part in text.split(",") for name in part.split(" and ") if name.strip()
    }


def test_the_workers_declare_what_the_asyncapi_document_says() -> None:
    """Who may write and read each topic (the ACLs, from the WorkerSpecs) is who the contract
    says produces and consumes it (ops, which re-publishes and reads everything, aside)."""
    acls = _declared_acls()
    for topic in ALL_TOPICS:
        writers = {
            principal.removeprefix("mandaact-")
            for principal, rules in acls.items()
            if Acl("topic", topic, "Write") in rules
        }
        readers = {
            principal.removeprefix("mandaact-")
            for principal, rules in acls.items()
            if Acl("topic", topic, "Read") in rules
        }
        assert writers - set(API_ONLY) == _services_named(PRODUCERS[topic]), topic
        assert readers - set(API_ONLY) == set(CONSUMERS[topic]), topic


def test_every_erasing_service_answers_on_user_erased_and_has_a_dead_letter_topic() -> None:
    acls = _declared_acls()
    for service in ERASING_SERVICES:
        assert Acl("topic", USER_ERASED, "Write") in acls[kafka_principal(service)], service
    for group in CONSUMER_GROUPS:
        assert dead_letter_topic(group) in topics_to_create()
    groups = {a.name for rules in acls.values() for a in rules if a.resource == "group"}
    assert groups == set(CONSUMER_GROUPS)


def test_compose_kafka_init_creates_exactly_the_declared_acls(
    services: dict[str, dict[str, Any]],
) -> None:
    init_env = _env(services["kafka-init"])
    found: dict[str, set[Acl]] = {}
    for rule in str(init_env["ACLS"]).split():
        principal, resource, operation, names = rule.split(":")
        for name in names.split(","):
            found.setdefault(principal, set()).add(Acl(resource, name, operation))  # type: ignore[arg-type]
    assert found == {p: set(a) for p, a in _declared_acls().items()}


def test_compose_init_script_turns_acl_rules_into_kafka_acls_calls(
    services: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    """init.sh, run against stand-in Kafka tools, adds every declared ACL as the super user."""
    calls = tmp_path / "calls"
    for tool in ("kafka-topics.sh", "kafka-acls.sh", "kafka-consumer-groups.sh"):
        fake = tmp_path / tool
        fake.write_text(f'#!/bin/sh\necho "{tool} $*" >> {calls}\n')
        fake.chmod(0o755)
    env = {
        **{k: str(v) for k, v in _env(services["kafka-init"]).items()},
        "MANDAACT_KAFKA_ADMIN_PASSWORD": KAFKA_PASSWORDS["MANDAACT_KAFKA_ADMIN_PASSWORD"],
        "KAFKA_BIN": str(tmp_path),
        "PATH": "/usr/bin:/bin",
    }
    result = subprocess.run(
        ["/bin/bash", str(KAFKA_SCRIPTS / "init.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    lines = calls.read_text().splitlines()
    created = {line.split("--topic ")[1].split()[0] for line in lines if "--create" in line}
    assert created == set(topics_to_create())
    added: dict[str, set[Acl]] = {}
    for line in (line for line in lines if line.startswith("kafka-acls.sh")):
        words = line.split()
        assert "--add" in words
        assert "--command-config" in words, "ACLs must be added as the super user"
        principal = words[words.index("--allow-principal") + 1].removeprefix("User:")
        operation = words[words.index("--operation") + 1]
        for i, word in enumerate(words):
            if word in ("--topic", "--group"):
                acl = Acl(word[2:], words[i + 1], operation)  # type: ignore[arg-type]
                added.setdefault(principal, set()).add(acl)
    assert added == {p: set(a) for p, a in _declared_acls().items()}


def test_compose_formats_kafka_with_a_scram_user_per_principal(
    services: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    fmt = services["kafka-format"]
    assert fmt["image"] == services["kafka"]["image"]
    assert _mapping(services["kafka"]["depends_on"]) == {
        "kafka-format": {"condition": "service_completed_successfully"}
    }
    fake = tmp_path / "kafka-storage.sh"
    fake.write_text(f'#!/bin/sh\nfor a in "$@"; do echo "$a"; done > {tmp_path / "args"}\n')
    fake.chmod(0o755)
    env = _container_env(_env(fmt), KAFKA_PASSWORDS)
    result = subprocess.run(
        ["/bin/bash", str(KAFKA_SCRIPTS / "format.sh")],
        env={**env, "KAFKA_BIN": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    args = (tmp_path / "args").read_text().splitlines()
    scram = [args[i + 1] for i, a in enumerate(args) if a == "--add-scram"]
    users = {entry.split("name=")[1].split(",")[0] for entry in scram}
    assert users == {"mandaact-admin", *_declared_acls()}
    assert all(entry.startswith("SCRAM-SHA-512=[") for entry in scram)
    weak = {**env, "MANDAACT_KAFKA_GOALS_PASSWORD": "short", "KAFKA_BIN": str(tmp_path)}
    refused = subprocess.run(
        ["/bin/bash", str(KAFKA_SCRIPTS / "format.sh")],
        env={**weak, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 1
    assert "MANDAACT_KAFKA_GOALS_PASSWORD" in refused.stderr


def test_compose_kafka_takes_only_sasl_clients_and_enforces_acls(
    services: dict[str, dict[str, Any]],
) -> None:
    env = _env(services["kafka"])
    protocols = dict(p.split(":") for p in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert set(protocols.values()) == {"SASL_PLAINTEXT"}
    assert env["KAFKA_SASL_ENABLED_MECHANISMS"] == "SCRAM-SHA-512"
    assert env["KAFKA_AUTHORIZER_CLASS_NAME"].endswith("StandardAuthorizer")
    assert env["KAFKA_SUPER_USERS"] == "User:mandaact-admin"
    assert str(env["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"]) == "false"
    with pytest.raises(ValueError, match="MANDAACT_KAFKA_ADMIN_PASSWORD"):
        _container_env(env, {})
    for service in SERVICES:
        for kind in ("api", "worker"):
            app = _container_env(_env(services[f"{service}-{kind}"]), KAFKA_PASSWORDS)
            assert app["MANDAACT_KAFKA_SASL_USERNAME"] == kafka_principal(service)
            key = f"MANDAACT_KAFKA_{service.upper()}_PASSWORD"
            assert app["MANDAACT_KAFKA_SASL_PASSWORD"] == KAFKA_PASSWORDS[key]


def test_k8s_kafka_users_hold_exactly_the_declared_acls(k8s_docs: list[dict[str, Any]]) -> None:
    users = _by_kind(k8s_docs, "KafkaUser")
    found: dict[str, set[Acl]] = {}
    for name, user in users.items():
        assert user["metadata"]["labels"]["strimzi.io/cluster"] == "mandaact"
        assert user["spec"]["authentication"] == {"type": "scram-sha-512"}
        authorization = user["spec"]["authorization"]
        assert authorization["type"] == "simple"
        for rule in authorization["acls"]:
            assert rule.get("type", "allow") == "allow"
            assert rule["resource"]["patternType"] == "literal"
            for operation in rule["operations"]:
                acl = Acl(rule["resource"]["type"], rule["resource"]["name"], operation)
                found.setdefault(name, set()).add(acl)
    assert found == {p: set(a) for p, a in _declared_acls().items()}


def test_k8s_kafka_is_scram_over_tls_with_simple_authorization(
    k8s_docs: list[dict[str, Any]],
) -> None:
    kafka = _by_kind(k8s_docs, "Kafka")["mandaact"]["spec"]["kafka"]
    (listener,) = kafka["listeners"]
    assert listener["tls"] is True
    assert listener["authentication"] == {"type": "scram-sha-512"}
    assert kafka["authorization"]["type"] == "simple"
    config = _by_kind(k8s_docs, "ConfigMap")["mandaact-config"]["data"]
    assert config["KAFKA_BOOTSTRAP_SERVERS"] == f"mandaact-kafka-bootstrap:{listener['port']}"
    assert config["MANDAACT_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    for name, deployment in _by_kind(k8s_docs, "Deployment").items():
        service = name.rsplit("-", 1)[0]
        container = _container(deployment)
        pod = _pod_kafka_env(container)
        assert pod["MANDAACT_KAFKA_SASL_USERNAME"] == kafka_principal(service), name
        assert f"-{kafka_principal(service)}-password" in pod["MANDAACT_KAFKA_SASL_PASSWORD"]
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        assert config["MANDAACT_KAFKA_SSL_CAFILE"].startswith(mounts["kafka-ca"] + "/"), name
        volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
        assert volumes["kafka-ca"]["secret"]["secretName"] == "mandaact-cluster-ca-cert"


# --- the API-only service (ops) -------------------------------------------------------------


@pytest.mark.parametrize("service", API_ONLY)
def test_compose_runs_the_api_only_service_as_its_own_principal(
    services: dict[str, dict[str, Any]], service: str
) -> None:
    port = API_ONLY[service]
    api = services[f"{service}-api"]
    assert f"{service}-worker" not in services
    build = _mapping(api["build"])
    assert (build["context"], build["dockerfile"]) == (".", "deploy/Dockerfile")
    assert {k: str(v) for k, v in _mapping(build["args"]).items()} == {
        "SERVICE": service,
        "HTTP_PORT": str(port),
    }
    assert "command" not in api, "the API runs the image's default CMD"
    assert api["ports"] == [f"{port}:{port}"]
    assert f"http://127.0.0.1:{port}/readyz" in _healthcheck_text(api)
    conditions = {n: _mapping(d)["condition"] for n, d in _mapping(api["depends_on"]).items()}
    assert conditions == {
        "kafka": "service_healthy",
        "mongo": "service_healthy",
        "kafka-init": "service_completed_successfully",
    }
    env = _container_env(_env(api), KAFKA_PASSWORDS)
    assert env["MANDAACT_HTTP_PORT"] == str(port)
    assert env["MANDAACT_KAFKA_SASL_USERNAME"] == kafka_principal(service)
    key = f"MANDAACT_KAFKA_{service.upper()}_PASSWORD"
    assert env["MANDAACT_KAFKA_SASL_PASSWORD"] == KAFKA_PASSWORDS[key]
    assert not [key for key in APP_ENV_KEYS if key not in _env(api)]
    watched = env["MANDAACT_OPS_SERVICE_URLS"]
    for other, other_port in PORTS.items():
        assert f"{other}=http://{other}-api:{other_port}" in watched


@pytest.mark.parametrize("service", API_ONLY)
def test_dockerfile_builds_the_api_only_service(service: str) -> None:
    scripts = tomllib.loads((ROOT / "services" / service / "pyproject.toml").read_text())[
        "project"
    ]["scripts"]
    assert set(scripts) == {f"mandaact-{service}-api"}
    env = _env_instructions(_service_build(service))
    assert env["MANDAACT_SERVICE"] == service
    assert env["MANDAACT_HTTP_PORT"] == str(API_ONLY[service])


@pytest.mark.parametrize("service", API_ONLY)
def test_k8s_api_only_service(k8s_docs: list[dict[str, Any]], service: str) -> None:
    deployments = _by_kind(k8s_docs, "Deployment")
    port = API_ONLY[service]
    assert f"{service}-worker" not in deployments
    api = _container(deployments[f"{service}-api"])
    assert api["command"] == [f"mandaact-{service}-api"]
    assert api["ports"] == [{"name": "http", "containerPort": port}]
    assert api["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert api["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert {"name": "MANDAACT_HTTP_PORT", "value": str(port)} in api["env"]
    assert _pod_kafka_env(api)["MANDAACT_KAFKA_SASL_USERNAME"] == kafka_principal(service)
    sources = [next(iter(ref.values()))["name"] for ref in api["envFrom"]]
    assert sources == ["mandaact-config", "mandaact-secrets"]
    svc = _by_kind(k8s_docs, "Service")[f"{service}-api"]
    assert svc["spec"]["ports"] == [{"name": "http", "port": port, "targetPort": "http"}]
