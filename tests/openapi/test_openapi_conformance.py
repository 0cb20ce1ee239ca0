"""Every service passes `schemathesis run <service>/openapi.json --checks all` (issue 18).

The run is the one an outside team makes against a running service (a dev token, 25 cases per
operation and phase), with the repository's `schemathesis.toml` and the project's own check
that a schema-valid request is refused only by a named rule (`rule_check.py`).
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from mandaact_common.auth import mint_token
from mandaact_common.domain.owner import Owner
from mandaact_common.mongo import Doc
from tests.openapi.harness import (
    SERVICES,
    build_service_app,
    jwt_secret,
    run_schemathesis,
    serve,
    service_settings,
)
from tests.openapi.seeds import seed

pytestmark = pytest.mark.integration

FUZZER = Owner(tenant_id="fuzz-tenant", user_id="fuzz-user")
LEAVER = Owner(tenant_id="fuzz-tenant", user_id="fuzz-leaver")
"""Who asks to be erased: the fuzzing user would get 410 on every later write (SPEC §9)."""
DELETED_TENANT = Owner(tenant_id="fuzz-gone-tenant", user_id="fuzz-admin")
"""The admin of a tenant the fuzzing deletes, for the same reason."""


@pytest.mark.parametrize("service", SERVICES)
def test_schemathesis_finds_no_failure(service: str, infra: Any, tmp_path: Path) -> None:
    """No 5xx, no undocumented status or content type, every schema-valid request accepted
    (or refused by a named rule), every invalid one refused, 405 with `Allow`..."""
    database = f"fuzz_{service}_{uuid.uuid4().hex[:8]}"
    settings = service_settings(
        service, mongodb_url=infra.mongodb_url, database=database, kafka=infra.bootstrap_servers
    )
    seeds = seed(service, settings, FUZZER)
    token = mint_token(jwt_secret(settings), FUZZER.tenant_id, FUZZER.user_id)
    try:
        with serve(build_service_app(service, settings)) as base_url:
            secret = jwt_secret(settings)
            leaver = mint_token(secret, LEAVER.tenant_id, LEAVER.user_id)
            admin = mint_token(
                secret, DELETED_TENANT.tenant_id, DELETED_TENANT.user_id, roles=["admin"]
            )
            tokens_of = {
                ("DELETE", "/v1/me"): leaver,
                ("GET", "/v1/me/deletion"): leaver,
                ("DELETE", "/v1/admin/tenant"): admin,
                ("GET", "/v1/admin/tenant/deletion"): admin,
            }
            own = tokens_of if service == "goals" else None
            run = run_schemathesis(base_url, token, tmp_path, seeds=seeds, tokens_of=own)
    finally:
        cleaner: MongoClient[Doc] = MongoClient(infra.mongodb_url)
        try:
            cleaner.drop_database(database)
        finally:
            cleaner.close()
    assert run.returncode == 0, run.summary()
    selected = re.search(r"Selected: (\d+)/(\d+)", run.output)
    tested = re.search(r"Tested: (\d+)", run.output)
    assert selected, run.summary()
    assert tested, run.summary()
    assert int(tested[1]) == int(selected[2]) > 0, run.summary()  # every operation was run
