"""The checked-in schemas are current, and the models stay compatible with the baseline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mandaact_contracts.compat import breaking_changes_by_type
from mandaact_contracts.events import EVENT_TYPES
from mandaact_contracts.export import (
    BASELINE_FILE,
    SCHEMA_DIR,
    dumps,
    event_schemas,
    generated_files,
    load_baseline,
    run,
)

pytestmark = pytest.mark.unit

REGENERATE = "stale; run: .venv/bin/python -m mandaact_contracts.export"


def test_checked_in_schemas_equal_the_generated_ones() -> None:
    for path, text in generated_files().items():
        assert path.exists(), f"{path} missing; {REGENERATE}"
        assert path.read_text(encoding="utf-8") == text, f"{path} {REGENERATE}"
    expected = {p.name for p in generated_files()}
    assert {p.name for p in SCHEMA_DIR.glob("*.json")} == expected


def test_models_are_backward_compatible_with_the_baseline() -> None:
    baseline = load_baseline()
    assert baseline, f"{BASELINE_FILE} missing"
    problems = breaking_changes_by_type(baseline, event_schemas())
    assert problems == [], (
        "breaking event contract change(s); evolve additively (new optional fields) or "
        "publish a new .v2 type:\n" + "\n".join(problems)
    )


def test_every_event_type_has_a_schema_and_an_asyncapi_channel() -> None:
    asyncapi = json.loads((SCHEMA_DIR / "asyncapi.json").read_text(encoding="utf-8"))
    assert asyncapi["asyncapi"] == "3.0.0"
    for topic, spec in EVENT_TYPES.items():
        assert (SCHEMA_DIR / f"{spec.ce_type}.json").exists()
        channel = asyncapi["channels"][topic]
        assert channel["address"] == topic
        message = asyncapi["components"]["messages"][spec.model.__name__]
        assert message["headers"]["properties"]["ce_type"]["const"] == spec.ce_type
        ref = message["payload"]["$ref"].rsplit("/", 1)[-1]
        assert ref in asyncapi["components"]["schemas"]


def test_export_ratchets_the_baseline_only_on_compatible_changes(tmp_path: Path) -> None:
    out, baseline = tmp_path / "schemas", tmp_path / "baseline.json"
    assert run(out, baseline, check=True) == 1  # nothing written yet
    assert run(out, baseline) == 0
    assert run(out, baseline, check=True) == 0
    assert baseline.read_text(encoding="utf-8") == dumps(event_schemas())

    published = json.loads(baseline.read_text(encoding="utf-8"))
    published["mandaact.xp.awarded.v1"]["properties"]["gone"] = {"type": "string"}
    baseline.write_text(dumps(published), encoding="utf-8")
    assert run(out, baseline, check=True) == 1
    assert run(out, baseline) == 1  # breaking: baseline left as it was
    assert json.loads(baseline.read_text(encoding="utf-8")) == published
    assert run(out, baseline, accept_breaking=True) == 0
    assert run(out, baseline, check=True) == 0
