"""What every service's OpenAPI document promises, read without running anything."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from mandaact_common.openapi import PROBLEM_SCHEMA
from mandaact_common.problems import PROBLEM_JSON
from tests.openapi.harness import SERVICES, build_service_app, service_settings

pytestmark = pytest.mark.unit

PROBLEM_REF = {"$ref": f"#/components/schemas/{PROBLEM_SCHEMA}"}
CONSTRAINTS = ("format", "pattern", "enum", "minimum", "maximum", "maxLength")


def document(service: str) -> dict[str, Any]:
    settings = service_settings(
        service, mongodb_url="mongodb://127.0.0.1:1", database="unused", kafka="127.0.0.1:1"
    )
    doc: dict[str, Any] = build_service_app(service, settings).openapi()
    return doc


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in doc["paths"].items()
        for method, operation in item.items()
    ]


@pytest.mark.parametrize("service", SERVICES)
def test_every_api_operation_documents_its_problems(service: str) -> None:
    for method, path, operation in operations(document(service)):
        if not path.startswith("/v1/"):
            continue
        statuses = set(operation["responses"])
        takes_input = bool(operation.get("parameters") or operation.get("requestBody"))
        assert {"401", "503"} <= statuses, (method, path, statuses)
        assert ("422" in statuses) == takes_input, (method, path, statuses)
        assert operation.get("security"), (method, path)


@pytest.mark.parametrize("service", SERVICES)
def test_every_error_answer_is_a_problem_document(service: str) -> None:
    doc = document(service)
    for method, path, operation in operations(doc):
        for status, response in operation["responses"].items():
            if status.startswith(("4", "5")) and path.startswith("/v1/"):
                assert response["content"] == {PROBLEM_JSON: {"schema": PROBLEM_REF}}, (
                    method,
                    path,
                    status,
                )
    assert "HTTPValidationError" not in doc["components"]["schemas"]


@pytest.mark.parametrize("service", SERVICES)
def test_every_path_parameter_states_its_constraint(service: str) -> None:
    for method, path, operation in operations(document(service)):
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "path":
                schema = parameter["schema"]
                assert any(key in schema for key in CONSTRAINTS), (method, path, parameter)


@pytest.mark.parametrize("service", SERVICES)
def test_operation_ids_are_the_route_names_and_unique(service: str) -> None:
    ids = Counter(operation["operationId"] for _m, _p, operation in operations(document(service)))
    assert all(count == 1 for count in ids.values()), ids
    assert all("_v1_" not in operation_id for operation_id in ids), ids
