"""An outside team's typed client, generated from goals' OpenAPI document, works against goals.

`openapi-python-client generate` (docs/api.md) writes the client into a temporary directory;
the test imports it and creates, reads and fails to read a grid through it against the real app
served over HTTP on the test MongoDB-compatible server.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo import MongoClient

from mandaact_common.auth import mint_token
from mandaact_common.mongo import Doc
from tests.openapi.harness import build_service_app, jwt_secret, serve, service_settings

pytestmark = pytest.mark.integration

PACKAGE = "mandaact_goals_client"
GENERATOR = Path(sys.executable).with_name("openapi-python-client")


@pytest.fixture
def goals_url(infra: Any) -> Iterator[tuple[str, str]]:
    """The goals app served over HTTP, and a token of a user of its own."""
    database = f"client_{uuid.uuid4().hex[:8]}"
    settings = service_settings(
        "goals", mongodb_url=infra.mongodb_url, database=database, kafka=infra.bootstrap_servers
    )
    token = mint_token(jwt_secret(settings), "client-tenant", f"user-{uuid.uuid4().hex[:6]}")
    try:
        with serve(build_service_app("goals", settings)) as base_url:
            yield base_url, token
    finally:
        cleaner: MongoClient[Doc] = MongoClient(infra.mongodb_url)
        try:
            cleaner.drop_database(database)
        finally:
            cleaner.close()


def generate_client(base_url: str, out: Path) -> Path:
    """Run the generator on the served document, as docs/api.md tells an outside team to."""
    document = out / "goals-openapi.json"
    document.write_text(httpx.get(f"{base_url}/openapi.json").text, encoding="utf-8")
    config = out / "client-config.json"
    config.write_text(json.dumps({"package_name_override": PACKAGE, "post_hooks": []}))
    target = out / "client"
    done = subprocess.run(
        [
            str(GENERATOR),
            "generate",
            "--path",
            str(document),
            "--config",
            str(config),
            "--meta",
            "none",
            "--output-path",
            str(target / PACKAGE),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "PATH": f"{GENERATOR.parent}{os.pathsep}{os.environ.get('PATH', '')}"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # Anything the generator could not turn into code is a document a client cannot use.
    assert "Unable to" not in done.stdout + done.stderr, done.stdout + done.stderr
    return target


def test_a_generated_client_creates_and_reads_a_grid(
    goals_url: tuple[str, str], tmp_path: Path
) -> None:
    base_url, token = goals_url
    sys.path.insert(0, str(generate_client(base_url, tmp_path)))
    try:
        client_module: Any = importlib.import_module(PACKAGE)
        create: Any = importlib.import_module(f"{PACKAGE}.api.goals.create_mandalart")
        read: Any = importlib.import_module(f"{PACKAGE}.api.goals.get_mandalart")
        models: Any = importlib.import_module(f"{PACKAGE}.models")

        client = client_module.AuthenticatedClient(base_url=base_url, token=token)
        body = models.MandalartCreate.from_dict(
            {
                "title": "Ship it",
                "sub_goals": [
                    {
                        "position": 1,
                        "title": "Code",
                        "actions": [
                            {
                                "position": 1,
                                "title": "Write tests",
                                "type": "routine",
                                "schedule": {"frequency": "weekly", "days": ["mon", "thu"]},
                            }
                        ],
                    }
                ],
            }
        )
        with client as http:
            created = create.sync_detailed(client=http, body=body)
            assert created.status_code == 201
            grid = created.parsed
            assert isinstance(grid, models.MandalartDetail)
            assert grid.sub_goals[0].actions[0].schedule.days[0].value == "mon"

            again = read.sync(id=uuid.UUID(grid.id), client=http)
            assert isinstance(again, models.MandalartDetail)
            assert again.title == "Ship it"

            missing = read.sync(id=uuid.uuid4(), client=http)
            assert isinstance(missing, models.Problem)
            assert missing.status == 404
    finally:
        sys.path.remove(str(tmp_path / "client"))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]
