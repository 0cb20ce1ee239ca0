"""The breaking-change checker flags every kind of breaking change and accepts additions."""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

import pytest
from pydantic import BaseModel, Field

from mandaact_contracts.compat import breaking_changes, breaking_changes_by_type

pytestmark = pytest.mark.unit


class Schedule(BaseModel):
    frequency: Literal["daily", "weekly"]
    days: list[Literal["mon", "tue"]] | None = None


class Item(BaseModel):
    id: str
    count: int = Field(ge=1, le=8)
    schedule: Schedule | None
    on: date


class Event(BaseModel):
    tenant_id: str
    kind: Literal["a", "b"]
    items: list[Item]
    note: str | None = None


def _schema(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema()
    schema["title"] = "Event"  # versions of the same event, defined under different names
    return schema


def _changes(new: type[BaseModel]) -> list[str]:
    return breaking_changes(_schema(Event), _schema(new))


def test_identical_schemas_are_compatible() -> None:
    assert _changes(Event) == []


def test_adding_an_optional_field_is_compatible() -> None:
    class Schedule2(Schedule):
        until: date | None = None

    class Item2(BaseModel):
        id: str
        count: int = Field(ge=1, le=8)
        schedule: Schedule2 | None
        on: date
        label: str = "x"

    class Event2(BaseModel):
        tenant_id: str
        kind: Literal["a", "b"]
        items: list[Item2]
        note: str | None = None
        extra: int | None = None

    assert _changes(Event2) == []


def test_removed_property() -> None:
    class Event2(BaseModel):
        tenant_id: str
        kind: Literal["a", "b"]
        items: list[Item]

    assert _changes(Event2) == ["Event.note: property removed"]


def test_changed_type() -> None:
    class Event2(Event):
        tenant_id: int  # type: ignore[assignment]

    assert _changes(Event2) == ["Event.tenant_id: type changed from string to integer"]


def test_changed_format_and_nullability_are_type_changes() -> None:
    class Item2(BaseModel):
        id: str | None
        count: int = Field(ge=1, le=8)
        schedule: Schedule | None
        on: str

    class Event2(BaseModel):
        tenant_id: str
        kind: Literal["a", "b"]
        items: list[Item2]
        note: str | None = None

    assert _changes(Event2) == [
        "Event.items[].id: type changed from string to null | string",
        "Event.items[].on: type changed from string:date to string",
    ]


def test_newly_required_property() -> None:
    class Event2(Event):
        note: str | None
        source: str

    assert _changes(Event2) == [
        "Event.note: property is now required",
        "Event.source: new property is now required",
    ]


def test_removed_enum_value() -> None:
    class Event2(Event):
        kind: Literal["a"]

    assert _changes(Event2) == ["Event.kind: enum value 'b' removed"]


def test_added_enum_value_is_breaking_for_old_consumers() -> None:
    class Event2(Event):
        kind: Literal["a", "b", "c"]  # type: ignore[assignment]

    assert _changes(Event2) == ["Event.kind: enum value 'c' added"]


def test_changes_inside_defs_are_found() -> None:
    class Schedule2(BaseModel):
        frequency: Literal["daily"]
        days: list[Literal["mon", "tue", "wed"]] | None = None

    class Item2(BaseModel):
        id: str
        count: int = Field(ge=1, le=9)
        schedule: Schedule2 | None
        on: date

    class Event2(BaseModel):
        tenant_id: str
        kind: Literal["a", "b"]
        items: list[Item2]
        note: str | None = None

    assert _changes(Event2) == [
        "Event.items[].count: constraint maximum changed from 8 to 9",
        "Event.items[].schedule.frequency: enum value 'weekly' removed",
        "Event.items[].schedule.days[]: enum value 'wed' added",
    ]


def test_raw_schemas_with_recursive_refs() -> None:
    old = {
        "title": "Tree",
        "$ref": "#/$defs/Node",
        "$defs": {
            "Node": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}},
                },
                "required": ["name"],
            }
        },
    }
    new = {
        "title": "Tree",
        "$ref": "#/$defs/Node",
        "$defs": {
            "Node": {
                "type": "object",
                "properties": {"children": {"type": "array", "items": {"$ref": "#/$defs/Node"}}},
            }
        },
    }
    assert breaking_changes(old, old) == []
    assert breaking_changes(old, new) == ["Tree.name: property removed"]


def test_by_type_reports_removed_event_types() -> None:
    schemas = {"mandaact.x.v1": _schema(Event), "mandaact.y.v1": _schema(Event)}
    assert breaking_changes_by_type(schemas, {"mandaact.x.v1": _schema(Event)}) == [
        "mandaact.y.v1: event type removed"
    ]
    assert breaking_changes_by_type({}, schemas) == []
