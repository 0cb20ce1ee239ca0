"""Backward-compatibility checker for JSON Schemas of event payloads.

The only allowed change to a published event type is adding an optional property. Everything
else that changes which documents are valid breaks either old consumers reading new events or
new consumers re-reading old events, so it is reported:

- a property removed;
- a property's type changed (JSON type, format, nullability, e.g. ``str`` -> ``str | None``);
- a property newly required (a new required property, or an optional one made required);
- an enum / Literal value removed, or added (old consumers would reject it);
- a validation constraint changed (minimum, maxLength, pattern, ...).

References (``$ref`` into ``$defs``) are followed, so nested models are checked too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

Schema = Mapping[str, Any]

CONSTRAINT_KEYWORDS: Final = (
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "uniqueItems",
    "minProperties",
    "maxProperties",
)

_JSON_TYPES: Final = {
    bool: "boolean",
    int: "integer",
    float: "number",
    str: "string",
    type(None): "null",
}


def breaking_changes(old_schema: Schema, new_schema: Schema) -> list[str]:
    """List the breaking changes from `old_schema` to `new_schema` (empty if compatible)."""
    checker = _Checker(old_schema, new_schema)
    checker.compare(old_schema, new_schema, str(old_schema.get("title", "$")))
    return checker.problems


def breaking_changes_by_type(old: Mapping[str, Schema], new: Mapping[str, Schema]) -> list[str]:
    """Compare two {ce_type: schema} maps; a removed event type is breaking too."""
    problems: list[str] = []
    for ce_type in sorted(old):
        if ce_type not in new:
            problems.append(f"{ce_type}: event type removed")
            continue
        problems.extend(f"{ce_type}: {p}" for p in breaking_changes(old[ce_type], new[ce_type]))
    return problems


class _Checker:
    def __init__(self, old_root: Schema, new_root: Schema) -> None:
        self.old_root = old_root
        self.new_root = new_root
        self.problems: list[str] = []
        self._visiting: set[tuple[str, str]] = set()

    def compare(self, old: Schema, new: Schema, path: str) -> None:
        old_ref, new_ref = str(old.get("$ref", "")), str(new.get("$ref", ""))
        key = (old_ref, new_ref)
        if old_ref and new_ref:
            if key in self._visiting:
                return  # recursive model: already being compared further up
            self._visiting.add(key)
        try:
            self._compare(_resolve(self.old_root, old), _resolve(self.new_root, new), path)
        finally:
            self._visiting.discard(key)

    def _compare(self, old: Schema, new: Schema, path: str) -> None:
        old_kinds, new_kinds = self.kinds(old, self.old_root), self.kinds(new, self.new_root)
        if old_kinds != new_kinds:
            self.problems.append(
                f"{path}: type changed from {_fmt(old_kinds)} to {_fmt(new_kinds)}"
            )
            return
        old_enum, new_enum = _enum_values(old, self.old_root), _enum_values(new, self.new_root)
        if old_enum is not None and new_enum is not None:
            for value in sorted(old_enum - new_enum, key=repr):
                self.problems.append(f"{path}: enum value {value!r} removed")
            for value in sorted(new_enum - old_enum, key=repr):
                self.problems.append(f"{path}: enum value {value!r} added")
        elif old_enum != new_enum:
            self.problems.append(f"{path}: enum restriction {'added' if new_enum else 'removed'}")
        for old_branch, new_branch in self._pair_branches(old, new):
            self._compare_branch(old_branch, new_branch, path)

    def _compare_branch(self, old: Schema, new: Schema, path: str) -> None:
        for keyword in CONSTRAINT_KEYWORDS:
            if old.get(keyword) != new.get(keyword):
                self.problems.append(
                    f"{path}: constraint {keyword} changed from {old.get(keyword)!r} "
                    f"to {new.get(keyword)!r}"
                )
        old_props: Mapping[str, Schema] = old.get("properties", {})
        new_props: Mapping[str, Schema] = new.get("properties", {})
        old_required = set(old.get("required", ()))
        for name in sorted(set(new.get("required", ())) - old_required):
            what = "property" if name in old_props else "new property"
            self.problems.append(f"{path}.{name}: {what} is now required")
        for name, old_prop in old_props.items():
            if name not in new_props:
                self.problems.append(f"{path}.{name}: property removed")
            else:
                self.compare(old_prop, new_props[name], f"{path}.{name}")
        old_items, new_items = old.get("items"), new.get("items")
        if isinstance(old_items, Mapping) and isinstance(new_items, Mapping):
            self.compare(old_items, new_items, f"{path}[]")
        old_extra, new_extra = old.get("additionalProperties"), new.get("additionalProperties")
        if isinstance(old_extra, Mapping) and isinstance(new_extra, Mapping):
            self.compare(old_extra, new_extra, f"{path}{{}}")

    def _pair_branches(self, old: Schema, new: Schema) -> Iterable[tuple[Schema, Schema]]:
        """Pair the alternatives of two unions by their kind (then by title if ambiguous)."""
        old_branches = _branches(self.old_root, old)
        new_branches = _branches(self.new_root, new)
        if len(old_branches) == 1 and len(new_branches) == 1:
            yield old_branches[0], new_branches[0]
            return
        for old_branch in old_branches:
            kinds = self.kinds(old_branch, self.old_root)
            same_kind = [b for b in new_branches if self.kinds(b, self.new_root) == kinds]
            if len(same_kind) > 1:
                same_kind = [b for b in same_kind if b.get("title") == old_branch.get("title")]
            if len(same_kind) == 1:
                yield old_branch, same_kind[0]

    def kinds(self, schema: Schema, root: Schema) -> frozenset[str]:
        """The JSON types (with format) a schema admits, e.g. {"string:date", "null"}."""
        result: set[str] = set()
        for branch in _branches(root, schema):
            if "type" in branch:
                declared = branch["type"]
                names = [declared] if isinstance(declared, str) else list(declared)
            elif "const" in branch or "enum" in branch:
                values = [branch["const"]] if "const" in branch else list(branch["enum"])
                names = sorted({_JSON_TYPES.get(type(v), "object") for v in values})
            elif "properties" in branch:
                names = ["object"]
            else:
                names = ["any"]
            fmt = branch.get("format")
            result.update(f"{n}:{fmt}" if fmt and n == "string" else n for n in names)
        return frozenset(result)


def _resolve(root: Schema, schema: Schema) -> Schema:
    """Follow local ``$ref``s (``#/$defs/Name`` or any ``#/a/b`` pointer) to the target."""
    seen: set[str] = set()
    while "$ref" in schema:
        ref = str(schema["$ref"])
        if ref in seen or not ref.startswith("#/"):
            raise ValueError(f"cannot resolve $ref {ref!r}")
        seen.add(ref)
        target: Any = root
        for part in ref[2:].split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        schema = target
    return schema


def _branches(root: Schema, schema: Schema) -> list[Schema]:
    """Flatten anyOf / oneOf into resolved alternatives."""
    schema = _resolve(root, schema)
    alternatives = schema.get("anyOf") or schema.get("oneOf")
    if not alternatives:
        return [schema]
    result: list[Schema] = []
    for alternative in alternatives:
        result.extend(_branches(root, alternative))
    return result


def _enum_values(schema: Schema, root: Schema) -> frozenset[Any] | None:
    """The allowed values if every non-null alternative is an enum/const, else None."""
    values: set[Any] = set()
    for branch in _branches(root, schema):
        if "const" in branch:
            values.add(branch["const"])
        elif "enum" in branch:
            values.update(branch["enum"])
        elif branch.get("type") != "null":
            return None
    return frozenset(values)


def _fmt(kinds: frozenset[str]) -> str:
    return " | ".join(sorted(kinds))
