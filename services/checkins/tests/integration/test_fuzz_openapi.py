"""Schemathesis fuzzing of the checkins OpenAPI (valid and invalid requests): never a 5xx.

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

from checkins.bootstrap import build_app
from checkins.consumers.handler import grid_of
from checkins.service import project
from checkins.settings import Settings
from checkins.store.mongo import MongoCheckinsStore
from mandaact_common.auth import mint_token
from mandaact_common.http import AppState
from mandaact_common.mongo import Doc
from mandaact_common.outbox import Transaction, transact
from mandaact_common.settings import DEV_JWT_SECRET
from services.checkins.tests.support import (
    MON_THU,
    TWICE_A_MONTH,
    TWICE_A_WEEK,
    action,
    goal_changed,
    new_id,
)

pytestmark = pytest.mark.integration

MAX_EXAMPLES = 40
"""Per operation and mode: 4 operations × 2 modes keep the run well under a minute."""

TOKEN = {"Authorization": f"Bearer {mint_token(DEV_JWT_SECRET, 'fuzz-tenant', 'fuzz-user')}"}
SEED_ACTIONS = [
    action("Run"),
    action("Review", schedule=MON_THU),
    action("Gym", schedule=TWICE_A_WEEK),
    action("Retro", schedule=TWICE_A_MONTH),
    action("Ship", "mission"),
    action("Note", "reference"),
]


@pytest.fixture
def fuzz_target(infra: Any, unique_db_name: str) -> Iterator[tuple[Any, list[str]]]:
    """The app's /v1 OpenAPI operations, served in process, and the ids of seeded actions."""
    app_settings = Settings(
        env="test", mongodb_url=infra.mongodb_url, mongodb_database=unique_db_name
    )
    grid = grid_of(goal_changed("fuzz-tenant", "fuzz-user", new_id(), 1, [("S", SEED_ACTIONS)]))
    # No client passed: each lifespan (ours below, then schemathesis' own on its event loop
    # thread) makes its own MongoDB client on the loop it runs in.
    app = build_app(app_settings)

    async def seed() -> None:
        state: AppState = app.state.mandaact

        async def work(tx: Transaction) -> None:
            await project(MongoCheckinsStore(tx.db, tx), [grid], [])

        await transact(state.client, state.db, "test", work)

    with TestClient(app) as client:
        assert client.portal is not None  # set while the client's lifespan runs
        client.portal.call(seed)
        assert client.get("/v1/checklist", headers=TOKEN).json()["due_count"] >= 4
    schema = schemathesis.openapi.from_asgi("/openapi.json", app).include(path_regex="^/v1/")
    yield schema, [a["id"] for a in SEED_ACTIONS]
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


def _fuzz(operation: Any, mode: GenerationMode, seeded: list[str]) -> None:
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
        # Aim most cases at a seeded action so the check-in rules run, not only a random 404.
        if "action_id" in params and _is_uuid(params["action_id"]):
            params["action_id"] = seeded[uuid.UUID(str(params["action_id"])).int % len(seeded)]
        case.call_and_validate(
            headers=TOKEN,
            checks=[not_a_server_error, content_type_conformance, response_schema_conformance],
        )

    fuzz()


def test_no_server_error_on_any_generated_request(fuzz_target: tuple[Any, list[str]]) -> None:
    """Whatever is sent, the answer is a documented non-5xx response."""
    schema, seeded = fuzz_target
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 4
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _fuzz(operation, mode, seeded)
