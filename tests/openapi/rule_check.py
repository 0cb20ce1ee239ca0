"""The project's own schemathesis check: a schema-valid request is refused only by a named rule.

`schemathesis.toml` lets schema-valid data get a 422 (a business rule: SPEC §4), which alone would
also let a document that lies pass. This check tells them apart: a 422 to a schema-valid request
must be a rule's problem (its `type` names the rule), or a validation problem about a field
listed in `RULES` below, one of the few rules that sit between fields and no schema can state.
Any other validation problem means the document allows what the API refuses: fix the document.

Loaded by `tests/openapi/harness.py` through SCHEMATHESIS_HOOKS, so `--checks all` includes it.
"""

from __future__ import annotations

import json
from typing import Any, Final

import schemathesis
from schemathesis.generation.meta import REQUEST_SHAPE_PROBES, coverage_scenario

RULES: Final[dict[str, frozenset[str]]] = {
    # A cursor this API did not hand out.
    "GET /v1/mandalarts": frozenset({"query.cursor"}),
    # A zone name of the right shape that the tz database does not know.
    "PUT /v1/me": frozenset({"timezone"}),
    # A body `position` other than the URL's.
    "PUT /v1/mandalarts/{id}/sub-goals/{pos}": frozenset({"position"}),
    "PUT /v1/mandalarts/{id}/sub-goals/{pos}/actions/{apos}": frozenset({"position"}),
    # `from` after `to`, or more than 92 days between them; a cursor this API did not hand out.
    "GET /v1/checkins": frozenset({"query.from", "query.to", "query.cursor"}),
    # W53 of a year that has 52 ISO weeks.
    "GET /v1/reports/weekly/{iso_week}": frozenset({"path.iso_week"}),
    "POST /v1/reports/weekly/{iso_week}/generate": frozenset({"path.iso_week"}),
    # A cursor this API did not hand out.
    "GET /v1/me/notifications": frozenset({"query.cursor"}),
    "GET /v1/admin/streak-repairs": frozenset({"query.cursor"}),
}
"""Per operation, the fields a validation problem may name for schema-valid input (docs/api.md)."""


def _problem(response: Any) -> dict[str, Any]:
    try:
        body = json.loads(response.content)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


@schemathesis.check
def refused_only_by_a_rule(ctx: Any, response: Any, case: Any) -> bool | None:
    """A 422 to a schema-valid request names a rule, never a constraint the document left out."""
    meta = case.meta
    if response.status_code != 422 or meta is None or not meta.generation.mode.is_positive:
        return None
    if coverage_scenario(case) in REQUEST_SHAPE_PROBES:
        return None
    problem = _problem(response)
    if not str(problem.get("type", "")).endswith("/validation"):
        return None  # a rule's problem: its `type` says which rule
    fields = {str(e.get("field")) for e in problem.get("errors") or [] if isinstance(e, dict)}
    allowed = RULES.get(f"{case.method.upper()} {case.operation.path}", frozenset())
    unexplained = sorted(fields - allowed) or ([] if fields else ["(no field named)"])
    if unexplained:
        raise AssertionError(
            "A schema-valid request was refused as invalid: the document should say why.\n"
            f"Fields at fault: {', '.join(unexplained)}\nDetail: {problem.get('detail')}"
        )
    return None
