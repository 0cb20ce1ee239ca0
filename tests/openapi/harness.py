"""Serve a service's real app over HTTP and judge its OpenAPI document the way an outside team does.

`serve` runs the app (its real bootstrap, the test MongoDB-compatible server) under uvicorn in a
thread of the test process, so its code counts for coverage; `run_schemathesis` runs the
`schemathesis run <url>/openapi.json --checks all` command line against it with the repository's
`schemathesis.toml`, as an outside team's run from the repository does.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import uvicorn
from fastapi import FastAPI

from mandaact_common.settings import ServiceSettings
from mandaact_devstack import SERVICE_PORTS, free_port, repo_root

SERVICES: Final = tuple(SERVICE_PORTS)
"""Every service `make up` runs: a new one is fuzzed as soon as the devstack knows it."""

MAX_EXAMPLES: Final = 25
"""Cases per operation and phase, as in the issue that set the bar (issue 18)."""

SCHEMATHESIS: Final = Path(sys.executable).with_name("schemathesis")
RULE_CHECK: Final = Path(__file__).with_name("rule_check.py")

SETTINGS_FOR: Final[Mapping[str, Mapping[str, Any]]] = {
    "reports": {"openai_api_key": None},  # the deterministic summary: no LLM call from a test
}
"""What a service's test settings set besides the database and the broker."""


def service_settings(
    service: str, *, mongodb_url: str, database: str, kafka: str
) -> ServiceSettings:
    """A service's own settings class, in test mode, on the test servers."""
    settings_class = importlib.import_module(f"{service}.settings").Settings
    settings: ServiceSettings = settings_class(
        env="test",
        mongodb_url=mongodb_url,
        mongodb_database=database,
        kafka_bootstrap_servers=kafka,
        **SETTINGS_FOR.get(service, {}),
    )
    return settings


def build_service_app(service: str, settings: ServiceSettings) -> FastAPI:
    """The app a service's `mandaact-<service>-api` serves, from its own bootstrap."""
    app: FastAPI = importlib.import_module(f"{service}.bootstrap").build_app(settings)
    return app


@contextmanager
def serve(app: FastAPI, *, timeout: float = 30.0) -> Iterator[str]:
    """Serve `app` on a free local port for the duration of the block; yields its base URL."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the app did not start on port {port}")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout)


@dataclass(frozen=True)
class Seeds:
    """Ids that exist for the fuzzing user: schemathesis draws a path parameter from them often."""

    path_parameters: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    probability: float = 0.7

    def config(self) -> str:
        """The schemathesis.toml tables that bind each path parameter to its seeded ids."""
        if not self.path_parameters:
            return ""
        lines = ["", "# Added by tests/openapi/harness.py for this run only.", "[parameters]"]
        for name in self.path_parameters:
            binding = f'{{ dictionary = "seeded_{name}", probability = {self.probability} }}'
            lines.append(f'"path.{name}" = {binding}')
        for name, values in self.path_parameters.items():
            lines += ["", f"[dictionaries.seeded_{name}]", f"values = {list(values)!r}"]
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Run:
    """One schemathesis run: what was run, its exit code and what it printed."""

    command: list[str]
    returncode: int
    output: str

    def summary(self) -> str:
        """The command and the report from its first failure on (or its tail)."""
        at = self.output.find("=== FAILURES ===")
        report = self.output[at - 30 :] if at >= 0 else self.output[-6000:]
        return "$ " + " ".join(self.command) + "\n" + report[-20000:]


def jwt_secret(settings: ServiceSettings) -> str:
    """The HS256 secret the app verifies tokens with (to mint the fuzzing user's token)."""
    value: object = settings.jwt_secret
    reveal = getattr(value, "get_secret_value", None)
    return str(reveal() if callable(reveal) else value)


def run_schemathesis(
    base_url: str,
    token: str,
    work_dir: Path,
    *,
    seeds: Seeds | None = None,
    max_examples: int = MAX_EXAMPLES,
    seed: str | None = None,
    tokens_of: Mapping[tuple[str, str], str] | None = None,
) -> Run:
    """`schemathesis run <base_url>/openapi.json --checks all` as a subprocess.

    The repository's `schemathesis.toml` is used as it is, plus this run's seeds; the project's
    own check (`rule_check.py`) joins `--checks all` through SCHEMATHESIS_HOOKS. A fixed
    `--seed` keeps CI reproducible: MANDAACT_FUZZ_SEED picks another, `random` none.
    `tokens_of` gives some operations (method, path) a caller of their own: those that erase
    their caller (`DELETE /v1/me`) would otherwise leave every later case a 410.
    """
    root = repo_root()
    config_text = (root / "schemathesis.toml").read_text(encoding="utf-8")
    repo_config = tomllib.loads(config_text)
    clash = {"parameters", "dictionaries"} & set(repo_config)
    assert not clash, f"schemathesis.toml defines {clash}, which the harness adds per run"
    config = work_dir / "schemathesis.toml"
    head = f'headers = {{ Authorization = "Bearer {token}" }}\n\n'
    own = "".join(
        # One filter, the operation's name: `include-method` and `include-path` would each
        # match on their own (schemathesis ORs the includes of an entry).
        f'\n[[operations]]\ninclude-name = "{method} {path}"\n'
        f'headers = {{ Authorization = "Bearer {other}" }}\n'
        for (method, path), other in (tokens_of or {}).items()
    )
    config.write_text(
        head + config_text + (seeds.config() if seeds else "") + own, encoding="utf-8"
    )
    run_seed = seed or os.environ.get("MANDAACT_FUZZ_SEED", "18")
    command = [
        str(SCHEMATHESIS),
        "--config-file",
        str(config),
        "--no-color",
        "run",
        f"{base_url}/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        str(max_examples),
        "--report",
        "junit",
        "--report-dir",
        str(work_dir / "report"),
    ]
    if run_seed != "random":
        command += ["--seed", run_seed]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": str(RULE_CHECK), "PYTHONPATH": str(root)}
    done = subprocess.run(
        command,
        cwd=work_dir,  # its cache (.schemathesis/) stays out of the repository
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return Run(command, done.returncode, done.stdout + done.stderr)
