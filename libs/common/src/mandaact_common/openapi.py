"""Truthful OpenAPI documents: every status an operation can answer, each with the problem schema.

What an operation can answer mostly follows from what it depends on, so it is written here once:
a dependency names the statuses it may cause with `@answers(...)` (the verified caller: 401; the
use cases over the database: 503; goals' If-Match: 412), every operation that takes input may
answer 422, and a route names only its own outcomes with `problems(404, 409, ...)`.
`install_openapi` (called by `create_app`) writes them into every operation of the generated
document, each as `application/problem+json` with the one `Problem` schema, in place of FastAPI's
default 422 (`HTTPValidationError`, which this API never sends).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final, TypeVar

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import get_flat_params
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel, Field
from starlette.applications import Starlette

from mandaact_common.problems import PROBLEM_JSON

PROBLEM_SCHEMA: Final = "Problem"

DESCRIPTIONS: Final[Mapping[int, str]] = {
    401: "No valid bearer token: missing, malformed, expired or wrongly signed.",
    403: "The token is valid but lacks the role this operation needs.",
    404: "Nothing of that id for the caller (unknown, another user's or tenant's, or deleted).",
    409: "Another request changed the same data at the same moment; retry.",
    410: "The caller (or their tenant) was erased (SPEC §9): nothing of theirs is kept any more.",
    412: "`If-Match` named a version other than the current one (`ETag` gives the current one).",
    413: "The request body is larger than the service accepts.",
    422: "Invalid input (`errors` names each field at fault) or a broken rule (`type` names it).",
    429: "A limit was reached (`limit` says how much is allowed).",
    503: "The database (or the identity provider's keys) is out of reach; retry after"
    " `Retry-After` seconds.",
}
"""What each problem status means, unless a route says it more precisely."""

_HEADERS: Final[Mapping[int, Mapping[str, dict[str, Any]]]] = {
    401: {
        "WWW-Authenticate": {
            "description": "The scheme to authenticate with: `Bearer`.",
            "required": True,
            "schema": {"type": "string"},
        }
    },
    412: {
        "ETag": {
            "description": 'The current version, quoted (e.g. `"3"`).',
            "required": True,
            "schema": {"type": "string"},
        }
    },
    429: {
        name: {"description": description, "required": False, "schema": {"type": "integer"}}
        for name, description in (
            ("Retry-After", "Seconds to wait before retrying (rate limits)."),
            ("RateLimit-Limit", "Requests the binding rate limit allows at once."),
            ("RateLimit-Remaining", "Requests left before the limit (0 here)."),
            ("RateLimit-Reset", "Seconds until the limit is whole again."),
        )
    },
    503: {
        "Retry-After": {
            "description": "Seconds to wait before retrying.",
            "required": True,
            "schema": {"type": "integer", "minimum": 1},
        }
    },
}


class FieldError(BaseModel):
    """One field at fault: where it is (`query.date`, `sub_goals.0.title`, `body`) and why."""

    field: str
    message: str


class Problem(BaseModel):
    """An RFC 9457 problem document; `type` names the kind of failure (or the rule broken)."""

    type: str = Field(examples=["https://mandaact.dev/problems/validation"])
    title: str
    status: int = Field(ge=400, le=599)
    detail: str
    instance: str | None = Field(default=None, description="The request path.")
    errors: list[FieldError] | None = Field(
        default=None, description="The fields at fault (validation and some rules)."
    )
    current_version: int | None = Field(default=None, description="412: the current version.")
    limit: int | None = Field(default=None, description="429: how much the limit allows.")


def problem_response(status: int, description: str | None = None) -> dict[str, Any]:
    """The OpenAPI response object of one problem status."""
    response: dict[str, Any] = {
        "description": description or DESCRIPTIONS[status],
        "content": {PROBLEM_JSON: {"schema": {"$ref": f"#/components/schemas/{PROBLEM_SCHEMA}"}}},
    }
    if status in _HEADERS:
        response["headers"] = {name: dict(spec) for name, spec in _HEADERS[status].items()}
    return response


def problems(
    *statuses: int, described: Mapping[int, str] | None = None
) -> dict[int | str, dict[str, Any]]:
    """A route's own problem answers (e.g. 404, 409, 429), for its `responses=`.

    The statuses its dependencies and input already imply (401, 412, 422, 503) are added by
    `install_openapi`; `described` words a status more precisely for this route.
    """
    said = described or {}
    return {status: problem_response(status, said.get(status)) for status in statuses}


CallableT = TypeVar("CallableT", bound=Callable[..., Any])
_ANSWERS_ATTR: Final = "__mandaact_answers__"


def answers(*statuses: int) -> Callable[[CallableT], CallableT]:
    """Mark a dependency with the problem statuses a route that uses it may answer."""

    def mark(dependency: CallableT) -> CallableT:
        setattr(dependency, _ANSWERS_ATTR, frozenset(statuses))
        return dependency

    return mark


def _dependants(dependant: Dependant) -> Iterator[Dependant]:
    yield dependant
    for sub in dependant.dependencies:
        yield from _dependants(sub)


def implied_statuses(route: Any) -> set[int]:
    """The problem statuses an API route can answer because of its dependencies and its input."""
    statuses: set[int] = set()
    dependant: Dependant | None = route.dependant
    if dependant is None:
        return statuses
    for each in _dependants(dependant):
        statuses |= getattr(each.call, _ANSWERS_ATTR, frozenset())
    if get_flat_params(dependant) or route.body_field is not None:
        statuses.add(422)
    if route.body_field is not None:
        statuses.add(413)  # the 64 KiB body cap (mandaact_common.limits)
    return statuses


def api_routes(app: Starlette) -> Iterator[Any]:
    """Every API route of `app` as it is served (included routers' routes with their prefix)."""
    for context in iter_route_contexts(app.routes):
        if isinstance(context.original_route, APIRoute):
            yield context


def _document_operation(operation: dict[str, Any], implied: set[int]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    validation = responses.get("422", {}).get("content", {}).get("application/json", {})
    if validation.get("schema", {}).get("$ref", "").endswith("/HTTPValidationError"):
        del responses["422"]  # FastAPI's default: this API answers a problem instead
    for status in sorted(implied):
        responses.setdefault(str(status), problem_response(status))


def _drop_unused_schemas(document: dict[str, Any], names: tuple[str, ...]) -> None:
    schemas: dict[str, Any] = document.get("components", {}).get("schemas", {})
    kept = {name: schemas.pop(name) for name in names if name in schemas}
    text = json.dumps(document)
    for name, schema in kept.items():
        if f"/schemas/{name}" in text:  # still used by some route of its own choosing
            schemas[name] = schema


def complete_document(app: Starlette, document: dict[str, Any]) -> None:
    """Write every route's problem answers into the document FastAPI generated for `app`."""
    for route in api_routes(app):
        if not route.include_in_schema:
            continue
        operations = document["paths"].get(route.path_format, {})
        for method in route.methods:
            if method.lower() in operations:
                _document_operation(operations[method.lower()], implied_statuses(route))
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    problem_schema = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(problem_schema.pop("$defs", {}))
    schemas[PROBLEM_SCHEMA] = problem_schema
    _drop_unused_schemas(document, ("HTTPValidationError", "ValidationError"))


def install_openapi(app: FastAPI) -> None:
    """Serve `app`'s document (made once, on first use) with every route's problem answers."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = FastAPI.openapi(app)  # FastAPI's own, which it also caches on the app
        try:
            complete_document(app, document)
        except BaseException:
            app.openapi_schema = None
            raise
        return document

    app.openapi = openapi  # type: ignore[method-assign]
