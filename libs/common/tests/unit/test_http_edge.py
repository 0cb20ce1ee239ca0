"""The HTTP edge every service shares: 405 with `Allow`, unreadable bodies, an unreachable
database, and the OpenAPI document that says all of it."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI
from pydantic import BaseModel
from pymongo.errors import AutoReconnect, ServerSelectionTimeoutError

from mandaact_common.openapi import PROBLEM_SCHEMA, answers, install_openapi, problems
from mandaact_common.problems import (
    PROBLEM_JSON,
    UNAVAILABLE_RETRY_AFTER_S,
    install_problem_handlers,
)
from mandaact_common.wire import DATE_PATTERN, IsoDate, date_text, json_integer, left_out

pytestmark = pytest.mark.unit


class Thing(BaseModel):
    name: str
    size: int | None = left_out()


@answers(401)
def caller() -> str:
    return "alice"


@answers(503)
def use_cases() -> str:
    return "cases"


Caller = Annotated[str, Depends(caller)]
UseCases = Annotated[str, Depends(use_cases)]


def edge_app() -> FastAPI:
    app = FastAPI(title="edge")
    install_problem_handlers(app)
    install_openapi(app)
    router = APIRouter(prefix="/v1")

    @router.get("/thing")
    async def get_thing(who: Caller, cases: UseCases) -> Thing:
        return Thing(name=who)

    @router.put("/thing", responses=problems(409, described={409: "Raced."}))
    async def put_thing(body: Thing, who: Caller, cases: UseCases) -> Thing:
        return body

    @router.get("/down")
    async def down() -> None:
        raise ServerSelectionTimeoutError("no primary")

    @router.get("/flaky")
    async def flaky() -> None:
        raise AutoReconnect("connection reset")

    app.include_router(router)
    return app


async def call(app: FastAPI, method: str, path: str, **kwargs: Any) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://edge") as client:
        return await client.request(method, path, **kwargs)


@pytest.mark.parametrize("method", ["TRACE", "DELETE", "PATCH", "POST"])
async def test_an_undeclared_method_answers_405_with_every_method_of_the_path(method: str) -> None:
    response = await call(edge_app(), method, "/v1/thing")
    assert response.status_code == 405
    assert response.headers["content-type"] == PROBLEM_JSON
    # GET and PUT are two routes: Starlette alone would name only the first one's methods.
    assert response.headers["allow"] == "GET, PUT"
    assert response.json()["type"].endswith("/method-not-allowed")


async def test_an_unknown_path_is_a_404_problem() -> None:
    response = await call(edge_app(), "GET", "/v1/nothing")
    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM_JSON


@pytest.mark.parametrize("body", [b"\xff\xfe{", b'{"name": "x"', b"[1,"])
async def test_a_body_that_is_not_json_text_is_a_422_naming_the_body(body: bytes) -> None:
    response = await call(
        edge_app(), "PUT", "/v1/thing", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM_JSON
    assert [e["field"] for e in response.json()["errors"]] == ["body"]


@pytest.mark.parametrize("path", ["/v1/down", "/v1/flaky"])
async def test_an_unreachable_database_is_a_503_with_retry_after(path: str) -> None:
    response = await call(edge_app(), "GET", path)
    assert response.status_code == 503
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.headers["retry-after"] == str(UNAVAILABLE_RETRY_AFTER_S)
    assert response.json()["type"].endswith("/unavailable")


def test_the_document_names_every_answer_with_the_problem_schema() -> None:
    document = edge_app().openapi()
    get = document["paths"]["/v1/thing"]["get"]["responses"]
    put = document["paths"]["/v1/thing"]["put"]["responses"]
    assert sorted(get) == ["200", "401", "503"]  # no input, so no 422
    assert sorted(put) == ["200", "401", "409", "413", "422", "503"]  # a body may be too large
    assert put["409"]["description"] == "Raced."
    for status, response in {**get, **put}.items():
        if status.startswith(("4", "5")):
            schema = response["content"][PROBLEM_JSON]["schema"]
            assert schema == {"$ref": f"#/components/schemas/{PROBLEM_SCHEMA}"}
    assert put["401"]["headers"]["WWW-Authenticate"]["required"] is True
    assert get["503"]["headers"]["Retry-After"]["required"] is True
    schemas = document["components"]["schemas"]
    assert PROBLEM_SCHEMA in schemas
    assert "HTTPValidationError" not in json.dumps(document)


def test_a_field_left_out_but_never_null_is_documented_without_null() -> None:
    schema = Thing.model_json_schema()["properties"]["size"]
    assert schema == {"title": "Size", "type": "integer"}


@pytest.mark.parametrize(("value", "taken"), [(1, 1), (1.0, 1), (-3, -3)])
def test_a_json_integer_is_taken_with_or_without_a_zero_fraction(value: Any, taken: int) -> None:
    assert json_integer(value) == taken


@pytest.mark.parametrize("value", [1.5, "1", True, None, [1]])
def test_anything_else_is_no_json_integer(value: Any) -> None:
    with pytest.raises(ValueError, match="integer"):
        json_integer(value)


@pytest.mark.parametrize("value", ["0000-01-01", "2026-13-01", "2026-1-01", "1700000000", 0])
def test_a_date_is_only_yyyy_mm_dd_text_from_year_one(value: Any) -> None:
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        date_text(value)


def test_the_date_schema_says_format_and_pattern() -> None:
    class Day(BaseModel):
        day: IsoDate

    schema = Day.model_json_schema()["properties"]["day"]
    assert schema["format"] == "date"
    assert schema["pattern"] == DATE_PATTERN
    assert re.fullmatch(DATE_PATTERN, "0001-01-01")
    assert not re.fullmatch(DATE_PATTERN, "0000-01-01")
