"""Write (or check) the JSON Schemas, the AsyncAPI document and the compatibility baseline.

    python -m mandaact_contracts.export            # regenerate contracts/schemas, ratchet baseline
    python -m mandaact_contracts.export --check    # exit 1 if anything is stale or breaking

The baseline (``contracts/compat/baseline.json``) is only moved forward when the new schemas
are backward compatible with it; ``--accept-breaking`` overrides that (needs the lead's OK).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from mandaact_contracts.asyncapi import asyncapi_document
from mandaact_contracts.compat import breaking_changes_by_type
from mandaact_contracts.events import EVENT_TYPES

CONTRACTS_DIR: Final = Path(__file__).resolve().parents[2]
SCHEMA_DIR: Final = CONTRACTS_DIR / "schemas"
BASELINE_FILE: Final = CONTRACTS_DIR / "compat" / "baseline.json"
ASYNCAPI_FILE_NAME: Final = "asyncapi.json"
JSON_SCHEMA_DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"


def event_schemas() -> dict[str, dict[str, Any]]:
    """Return {ce_type: JSON Schema} of every registered payload model."""
    return {
        spec.ce_type: {
            "$schema": JSON_SCHEMA_DIALECT,
            "$id": f"urn:mandaact:event:{spec.ce_type}",
            "x-topic": spec.topic,
            **spec.model.model_json_schema(),
        }
        for spec in EVENT_TYPES.values()
    }


def dumps(document: Any) -> str:
    """Serialise a document the way the checked-in files are written (stable, indented)."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def generated_files(schema_dir: Path = SCHEMA_DIR) -> dict[Path, str]:
    """Return {path: content} of every file the export writes under `schema_dir`."""
    files = {schema_dir / f"{t}.json": dumps(s) for t, s in event_schemas().items()}
    files[schema_dir / ASYNCAPI_FILE_NAME] = dumps(asyncapi_document())
    return files


def load_baseline(path: Path = BASELINE_FILE) -> dict[str, Any]:
    """Load the checked-in compatibility baseline ({ce_type: schema}); empty if absent."""
    if not path.exists():
        return {}
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


def run(
    schema_dir: Path = SCHEMA_DIR,
    baseline_file: Path = BASELINE_FILE,
    *,
    check: bool = False,
    accept_breaking: bool = False,
) -> int:
    """Write or check the generated files; return a process exit code."""
    current = event_schemas()
    problems = breaking_changes_by_type(load_baseline(baseline_file), current)
    for problem in problems:
        print(f"BREAKING: {problem}", file=sys.stderr)
    files = generated_files(schema_dir)
    stale = [p for p in schema_dir.glob("mandaact.*.json") if p not in files]
    if check:
        changed = [p for p, text in files.items() if _read(p) != text] + stale
        changed += [baseline_file] if _read(baseline_file) != dumps(current) else []
        for path in changed:
            print(f"STALE: {path} (run python -m mandaact_contracts.export)", file=sys.stderr)
        return 1 if problems or changed else 0
    schema_dir.mkdir(parents=True, exist_ok=True)
    for path, text in files.items():
        if _read(path) != text:
            path.write_text(text, encoding="utf-8")
    for path in stale:
        path.unlink()
    if problems and not accept_breaking:
        print(
            "baseline NOT updated: evolution must be additive (new optional fields)",
            file=sys.stderr,
        )
        return 1
    baseline_file.parent.mkdir(parents=True, exist_ok=True)
    baseline_file.write_text(dumps(current), encoding="utf-8")
    print(f"wrote {len(files)} files to {schema_dir} and the baseline {baseline_file}")
    return 0


def _read(path: Path) -> str | None:
    return path.read_text(encoding="utf-8") if path.exists() else None


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m mandaact_contracts.export")
    parser.add_argument("--out", type=Path, default=SCHEMA_DIR, help="schema directory")
    parser.add_argument("--baseline", type=Path, default=BASELINE_FILE, help="baseline file")
    parser.add_argument("--check", action="store_true", help="only check, write nothing")
    parser.add_argument(
        "--accept-breaking", action="store_true", help="move the baseline despite breaking changes"
    )
    args = parser.parse_args(argv)
    return run(args.out, args.baseline, check=args.check, accept_breaking=args.accept_breaking)


if __name__ == "__main__":
    raise SystemExit(main())
