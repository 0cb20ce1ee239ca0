"""Schemathesis fuzzing of the goals OpenAPI (valid and invalid requests): never a 5xx.

The operations are driven with Hypothesis directly rather than through `schema.parametrize()`:
schemathesis' fixture-based parametrisation (needed because the server's URL comes from the
`infra` fixture) touches a pytest node attribute that pytest 9 no longer has.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from pymongo import MongoClient
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
)
from starlette.testclient import TestClient

from goals.bootstrap import build_app
from goals.settings import Settings
from mandaact_common.auth import mint_token
from mandaact_common.mongo import Doc
from mandaact_common.settings import DEV_JWT_SECRET

pytestmark = pytest.mark.integration

MAX_EXAMPLES = 40
"""Per operation and mode: 10 operations × 2 modes keep the run well under a minute."""

TOKEN = {"Authorization": f"Bearer {mint_token(DEV_JWT_SECRET, 'fuzz-tenant', 'fuzz-user')}"}
SEED_GRID = {
    "title": "Seed",
    "sub_goals": [
        {
            "position": 1,
            "title": "S1",
            "actions": [{"position": 1, "title": "A1", "type": "mission"}],
        }
    ],
}


@pytest.fixture
def fuzz_target(infra: Any, unique_db_name: str) -> Iterator[tuple[Any, str]]:
    """The app's /v1 OpenAPI operations, served in process, and the id of a seeded grid."""
    app_settings = Settings(
        env="test", mongodb_url=infra.mongodb_url, mongodb_database=unique_db_name
    )
    # No client passed: each lifespan (ours below, then schemathesis' own on its event loop
    # thread) makes its own MongoDB client on the loop it runs in.
    app = build_app(app_settings)
    with TestClient(app) as client:
        seeded = client.post("/v1/mandalarts", json=SEED_GRID, headers=TOKEN)
        assert seeded.status_code == 201, seeded.text
    schema = schemathesis.openapi.from_asgi("/openapi.json", app).include(path_regex="^/v1/")
    yield schema, seeded.json()["id"]
    cleaner: MongoClient[Doc] = MongoClient(infra.mongodb_url)
    try:
        cleaner.drop_database(unique_db_name)
    finally:
        cleaner.close()


def _is_uuid(value: object) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


def _fuzz(operation: Any, mode: GenerationMode, seed_id: str) -> None:
    deleting_grid = operation.method.upper() == "DELETE" and operation.path.endswith("{id}")

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def fuzz(case: Any) -> None:
        params = case.path_parameters or {}
        # Aim most cases at an existing grid so its rules run, not only a random id's 404;
        # the seeded grid itself is never deleted.
        if "id" in params and _is_uuid(params["id"]) and not deleting_grid:
            params["id"] = seed_id
        case.call_and_validate(
            headers=TOKEN,
            checks=[not_a_server_error, content_type_conformance, response_schema_conformance],
        )

    fuzz()


def test_no_server_error_on_any_generated_request(fuzz_target: tuple[Any, str]) -> None:
    """Whatever is sent, the answer is a documented non-5xx response."""
    schema, seed_id = fuzz_target
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _fuzz(operation, mode, seed_id)
