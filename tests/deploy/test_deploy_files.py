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

from mandaact_contracts.topics import ALL_TOPICS, TOPIC_PARTITIONS, dead_letter_topic

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
K8S_DIR = ROOT / "deploy" / "k8s"
PROMETHEUS_FILE = ROOT / "deploy" / "prometheus" / "prometheus.yml"

PORTS = {"goals": 8001, "checkins": 8002, "gamification": 8003, "reports": 8004}
SERVICES = tuple(PORTS)
CONSUMER_GROUPS = ("checkins", "gamification", "reports")
WORKER_METRICS_PORT = 9100
INFRA = ("kafka", "mongo")
ONE_SHOT = ("kafka-init",)
APP_ENV_KEYS = (
    "KAFKA_BOOTSTRAP_SERVERS",
    "MONGODB_URL",
    "MANDAACT_ENV",
    "MANDAACT_JWT_SECRET",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
)


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
    values = {"SERVICE": service, "HTTP_PORT": str(PORTS[service])}
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
def test_app_healthchecks_probe_the_api_and_the_worker_metrics(
    services: dict[str, dict[str, Any]], service: str
) -> None:
    api_check = _healthcheck_text(services[f"{service}-api"])
    assert f"http://127.0.0.1:{PORTS[service]}/readyz" in api_check
    assert "urllib.request" in api_check
    worker_check = _healthcheck_text(services[f"{service}-worker"])
    assert f"http://127.0.0.1:{WORKER_METRICS_PORT}/metrics" in worker_check
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


def test_kafka_is_a_single_kraft_node_reachable_in_the_network(
    services: dict[str, dict[str, Any]],
) -> None:
    kafka = services["kafka"]
    assert str(kafka["image"]).startswith("apache/kafka:")
    env = _env(kafka)
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["CLUSTER_ID"]
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{env['KAFKA_NODE_ID']}@kafka:9093"
    assert "PLAINTEXT://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    assert str(env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"]) == "false"
    assert "kafka-broker-api-versions.sh" in _healthcheck_text(kafka)


def test_kafka_init_creates_every_contract_topic_and_dead_letter_topic(
    services: dict[str, dict[str, Any]],
) -> None:
    init = services["kafka-init"]
    assert init["image"] == services["kafka"]["image"]
    assert _mapping(init["depends_on"]) == {"kafka": {"condition": "service_healthy"}}
    assert init.get("restart") == "no"
    env = _env(init)
    topics = str(env["TOPICS"]).split()
    assert sorted(topics) == sorted(ALL_TOPICS)
    assert len(topics) == len(set(topics))
    assert set(TOPIC_PARTITIONS.values()) == {int(env["PARTITIONS"])}
    dead_letters = str(env["DEAD_LETTER_TOPICS"]).split()
    assert sorted(dead_letters) == sorted(dead_letter_topic(g) for g in CONSUMER_GROUPS)
    script = "\n".join(init["command"])
    assert "for topic in $$TOPICS $$DEAD_LETTER_TOPICS" in script
    assert "--create --if-not-exists" in script
    assert '--partitions "$$PARTITIONS"' in script
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
    expected = {f"{svc}-api:{port}" for svc, port in PORTS.items()}
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


@pytest.mark.parametrize("service", SERVICES)
def test_dockerfile_accepts_each_service_with_its_port(service: str) -> None:
    result = _run_arg_check(service, str(PORTS[service]))
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
        ["contracts/", "/src/contracts/"],
        ["libs/common/", "/src/libs/common/"],
        [f"services/{service}/", f"/src/services/{service}/"],
    ]
    for source, _ in copies:
        assert (ROOT / source / "pyproject.toml").is_file(), source
    runs = [rest for kind, rest in build if kind == "RUN" and "pip install" in rest]
    assert runs == [
        f'/opt/venv/bin/pip install /src/contracts /src/libs/common "/src/services/{service}"'
    ]
    assert " -e " not in runs[0]
    assert "--editable" not in runs[0]
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
    assert sources == {"contracts/", "libs/common/", "services/${SERVICE}/"}
    for service in SERVICES:
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
    assert {f"{svc}.yaml" for svc in SERVICES} <= resources


def test_k8s_every_deployment_has_probes_and_runs_as_non_root(
    k8s_docs: list[dict[str, Any]],
) -> None:
    deployments = _by_kind(k8s_docs, "Deployment")
    expected = {f"{svc}-{kind}" for svc in SERVICES for kind in ("api", "worker")}
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
    assert worker["livenessProbe"]["httpGet"] == {"path": "/metrics", "port": "metrics"}
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
    assert {"MANDAACT_JWT_SECRET", "OPENAI_API_KEY"} <= set(values)
    # A placeholder the services refuse (fewer than 32 characters), never a usable secret.
    assert len(values["MANDAACT_JWT_SECRET"]) < 32
    assert values["OPENAI_API_KEY"] == ""


def test_k8s_topics_job_creates_every_contract_topic(k8s_docs: list[dict[str, Any]]) -> None:
    job = _by_kind(k8s_docs, "Job")["mandaact-kafka-topics"]
    container = _container(job)
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert sorted(str(env["TOPICS"]).split()) == sorted(ALL_TOPICS)
    assert sorted(str(env["DEAD_LETTER_TOPICS"]).split()) == sorted(
        dead_letter_topic(g) for g in CONSUMER_GROUPS
    )
    assert set(TOPIC_PARTITIONS.values()) == {int(str(env["PARTITIONS"]))}
    assert "--create --if-not-exists" in container["args"][0]
