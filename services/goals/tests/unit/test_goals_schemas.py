"""Request validation: every bad input is refused naming its field; good input maps to commands."""

from __future__ import annotations

import contextlib
import copy
from datetime import date
from typing import Any

import jsonschema_rs
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from goals.api.deps import parse_if_match
from goals.api.schemas import (
    ActionPut,
    MandalartCreate,
    MandalartUpdate,
    SubGoalPut,
    UserSettingsUpdate,
)
from goals.domain.errors import InvalidInput
from goals.domain.model import UNSET, IfMatch
from mandaact_common.domain.schedule import Schedule

pytestmark = pytest.mark.unit

SPEC_GRID: dict[str, Any] = {
    "title": "Design an event-driven system",
    "description": "optional",
    "sub_goals": [
        {
            "position": 1,
            "title": "Event flows",
            "actions": [
                {
                    "position": 1,
                    "title": "Draw the flow",
                    "type": "routine",
                    "schedule": {"frequency": "daily"},
                },
                {
                    "position": 2,
                    "title": "Review",
                    "type": "routine",
                    "schedule": {"frequency": "weekly", "days": ["mon", "thu"]},
                },
                {
                    "position": 3,
                    "title": "Gym",
                    "type": "routine",
                    "schedule": {"frequency": "weekly", "times": 3},
                },
                {
                    "position": 4,
                    "title": "Retro",
                    "type": "routine",
                    "schedule": {"frequency": "monthly", "times": 2},
                },
                {
                    "position": 5,
                    "title": "Install Kafka",
                    "type": "mission",
                    "due_date": "2026-12-01",
                },
                {"position": 6, "title": "Stay curious", "type": "reference"},
            ],
        }
    ],
}


def fields_of(exc: ValidationError) -> set[str]:
    return {".".join(str(p) for p in e["loc"]) for e in exc.errors()}


def with_change(path: list[str | int], value: Any) -> dict[str, Any]:
    body = copy.deepcopy(SPEC_GRID)
    target: Any = body
    for key in path[:-1]:
        target = target[key]
    if value is DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return body


DELETE = object()


def test_spec_example_maps_to_the_domain_draft() -> None:
    draft = MandalartCreate.model_validate(SPEC_GRID).to_draft()
    assert draft.title == "Design an event-driven system"
    actions = draft.sub_goals[0].actions
    assert actions is not None
    assert actions[1].schedule == Schedule.weekly_on("mon", "thu")
    assert actions[2].schedule == Schedule.weekly_times(3)
    assert actions[3].schedule == Schedule.monthly_times(2)
    assert actions[4].due_date == date(2026, 12, 1)
    assert actions[5].schedule is None


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (["title"], "   ", "title"),
        (["title"], "x" * 201, "title"),
        (["title"], 42, "title"),
        (["title"], DELETE, "title"),
        (["description"], "d" * 2001, "description"),
        (["active"], "yes", "active"),
        (["active"], 1, "active"),
        (["colour"], "red", "colour"),
        (["sub_goals"], {"position": 1}, "sub_goals"),
        (["sub_goals", 0, "position"], 0, "sub_goals.0.position"),
        (["sub_goals", 0, "position"], 9, "sub_goals.0.position"),
        (["sub_goals", 0, "position"], "1", "sub_goals.0.position"),
        (["sub_goals", 0, "position"], 1.5, "sub_goals.0.position"),
        (["sub_goals", 0, "position"], True, "sub_goals.0.position"),
        (["sub_goals", 0, "extra"], 1, "sub_goals.0.extra"),
        (["sub_goals", 0, "actions", 0, "id"], "x", "sub_goals.0.actions.0.id"),
        (["sub_goals", 0, "actions", 0, "type"], "habit", "sub_goals.0.actions.0.type"),
        (["sub_goals", 0, "actions", 0, "schedule"], DELETE, "sub_goals.0.actions.0.schedule"),
        (["sub_goals", 0, "actions", 0, "schedule"], None, "sub_goals.0.actions.0.schedule"),
        (
            ["sub_goals", 0, "actions", 0, "schedule", "frequency"],
            "hourly",
            "sub_goals.0.actions.0.schedule.frequency",
        ),
        (
            ["sub_goals", 0, "actions", 0, "schedule", "days"],
            ["mon"],
            "sub_goals.0.actions.0.schedule",
        ),
        (
            ["sub_goals", 0, "actions", 1, "schedule", "days"],
            ["mon", "mon"],
            "sub_goals.0.actions.1.schedule",
        ),
        (
            ["sub_goals", 0, "actions", 1, "schedule", "days"],
            ["funday"],
            "sub_goals.0.actions.1.schedule.days.0",
        ),
        (
            ["sub_goals", 0, "actions", 1, "schedule", "days"],
            [],
            "sub_goals.0.actions.1.schedule.days",
        ),
        (
            ["sub_goals", 0, "actions", 2, "schedule", "times"],
            8,
            "sub_goals.0.actions.2.schedule",
        ),
        (
            ["sub_goals", 0, "actions", 2, "schedule", "times"],
            0,
            "sub_goals.0.actions.2.schedule.times",
        ),
        (
            ["sub_goals", 0, "actions", 3, "schedule", "times"],
            32,
            "sub_goals.0.actions.3.schedule.times",
        ),
        (
            ["sub_goals", 0, "actions", 3, "schedule"],
            {"frequency": "monthly"},
            "sub_goals.0.actions.3.schedule",
        ),
        (
            ["sub_goals", 0, "actions", 4, "due_date"],
            "2026-13-01",
            "sub_goals.0.actions.4.due_date",
        ),
        (["sub_goals", 0, "actions", 4, "due_date"], 1700000000, "sub_goals.0.actions.4.due_date"),
        (
            ["sub_goals", 0, "actions", 4, "schedule"],
            {"frequency": "daily"},
            "sub_goals.0.actions.4.schedule",
        ),
        (
            ["sub_goals", 0, "actions", 5, "due_date"],
            "2026-12-01",
            "sub_goals.0.actions.5.due_date",
        ),
        (["sub_goals", 0, "actions", 5, "position"], 1, "sub_goals.0.actions"),
        (["sub_goals", 0, "actions", 5, "title"], "\n\t ", "sub_goals.0.actions.5.title"),
    ],
)
def test_bad_grid_input_names_the_field(path: list[str | int], value: Any, field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        MandalartCreate.model_validate(with_change(path, value))
    assert field in fields_of(caught.value)


def test_more_than_eight_sub_goals_or_actions() -> None:
    nine = [{"position": p % 8 + 1, "title": "s"} for p in range(9)]
    with pytest.raises(ValidationError) as caught:
        MandalartCreate.model_validate({"title": "t", "sub_goals": nine})
    assert "sub_goals" in fields_of(caught.value)
    actions = [{"position": p % 8 + 1, "title": "a", "type": "reference"} for p in range(9)]
    with pytest.raises(ValidationError) as caught:
        MandalartCreate.model_validate(
            {"title": "t", "sub_goals": [{"position": 1, "title": "s", "actions": actions}]}
        )
    assert "sub_goals.0.actions" in fields_of(caught.value)


def test_duplicate_sub_goal_positions() -> None:
    body = {
        "title": "t",
        "sub_goals": [{"position": 2, "title": "a"}, {"position": 2, "title": "b"}],
    }
    with pytest.raises(ValidationError) as caught:
        MandalartCreate.model_validate(body)
    assert fields_of(caught.value) == {"sub_goals"}


def test_update_sends_only_what_was_given_and_refuses_null_title() -> None:
    command = MandalartUpdate.model_validate({"description": None}).to_command()
    assert (command.title, command.description, command.active) == (UNSET, None, UNSET)
    command = MandalartUpdate.model_validate({"title": " T ", "active": False}).to_command()
    assert (command.title, command.description, command.active) == ("T", UNSET, False)
    for body, field in [
        ({"title": None}, "title"),
        ({"active": None}, "active"),
        ({"version": 3}, "version"),
        ({"title": ""}, "title"),
    ]:
        with pytest.raises(ValidationError) as caught:
            MandalartUpdate.model_validate(body)
        assert field in fields_of(caught.value)


def test_settings_update() -> None:
    command = UserSettingsUpdate.model_validate({"timezone": "Europe/Paris"}).to_command()
    assert (command.timezone, command.locale, command.display_name) == (
        "Europe/Paris",
        UNSET,
        UNSET,
    )
    assert (
        UserSettingsUpdate.model_validate({"display_name": " "}).to_command().display_name is None
    )
    for body, field in [
        ({"timezone": "Europe/Nowhere"}, "timezone"),
        ({"timezone": None}, "timezone"),
        ({"timezone": "x" * 65}, "timezone"),
        ({"timezone": "../../etc/passwd"}, "timezone"),
        ({"locale": "fr"}, "locale"),
        ({"locale": None}, "locale"),
        ({"display_name": "n" * 101}, "display_name"),
        ({"display_name": 5}, "display_name"),
        ({"name": "x"}, "name"),
    ]:
        with pytest.raises(ValidationError) as caught:
            UserSettingsUpdate.model_validate(body)
        assert field in fields_of(caught.value), body


def test_put_bodies_take_the_position_from_the_url() -> None:
    draft = ActionPut.model_validate({"title": "a", "type": "mission"}).to_draft(3)
    assert draft.position == 3
    assert ActionPut.model_validate({"position": 3, "title": "a", "type": "mission"}).to_draft(3)
    with pytest.raises(InvalidInput) as caught:
        ActionPut.model_validate({"position": 2, "title": "a", "type": "mission"}).to_draft(3)
    assert caught.value.field == "position"
    sub_goal = SubGoalPut.model_validate({"title": "s"}).to_draft(4)
    assert (sub_goal.position, sub_goal.actions) == (4, None)
    sub_goal = SubGoalPut.model_validate({"title": "s", "actions": []}).to_draft(4)
    assert sub_goal.actions == ()


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ('"3"', IfMatch(frozenset({3}))),
        ('W/"3"', IfMatch(frozenset({3}))),
        ("3", IfMatch(frozenset({3}))),
        ('"2", "5"', IfMatch(frozenset({2, 5}))),
        ("*", IfMatch(any_version=True)),
        ('"abc"', IfMatch()),
        ('"٣"', IfMatch()),
        ("", IfMatch()),
    ],
)
def test_if_match_header(header: str, expected: IfMatch) -> None:
    assert parse_if_match(header) == expected


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


@given(json_values)
def test_any_json_either_validates_or_fails_with_a_validation_error(value: Any) -> None:
    models: list[type[BaseModel]] = [MandalartCreate, MandalartUpdate, SubGoalPut, ActionPut]
    for model in models:
        with contextlib.suppress(ValidationError):
            model.model_validate(value)


# --- the document says what the validators check -----------------------------------------------

titles = st.sampled_from(["Run", " Run ", "", " ", "\u3000", "\x1f", "x" * 200, " " + "x" * 200])
schedules = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {"frequency": st.sampled_from(["daily", "weekly", "monthly", "hourly"])},
        optional={
            "days": st.none() | st.lists(st.sampled_from(["mon", "thu", "sun"]), max_size=3),
            "times": st.none() | st.sampled_from([0, 1, 2.0, 7, 8, 31, 32, "3", True]),
        },
    ),
)
actions = st.fixed_dictionaries(
    {
        "position": st.sampled_from([1, 2, 8, 1.0, 1.5, 0, 9, "1", True]),
        "title": titles,
        "type": st.sampled_from(["routine", "mission", "reference", "habit"]),
    },
    optional={
        "schedule": schedules,
        "due_date": st.sampled_from(
            [None, "2026-12-01", "0001-01-01", "0000-01-01", "2026-02-30", "2026-12-1", 5]
        ),
        "id": st.just("x"),
    },
)
sub_goals = st.fixed_dictionaries(
    {"position": st.sampled_from([1, 2, 3]), "title": titles},
    optional={"actions": st.lists(actions, max_size=3)},
)


def schema_accepts(model: type[BaseModel], value: Any) -> bool:
    validator = jsonschema_rs.validator_for(model.model_json_schema(), validate_formats=True)
    return bool(validator.is_valid(value))


def model_accepts(model: type[BaseModel], value: Any) -> bool:
    try:
        model.model_validate(value)
    except (ValidationError, InvalidInput):
        return False
    return True


@given(actions)
def test_the_action_schema_accepts_exactly_what_the_model_accepts(action: dict[str, Any]) -> None:
    assert schema_accepts(ActionPut, action) == model_accepts(ActionPut, action), action


@given(st.lists(sub_goals, max_size=3), titles)
def test_the_grid_schema_accepts_exactly_what_the_model_accepts(
    subs: list[dict[str, Any]], title: str
) -> None:
    grid = {"title": title, "sub_goals": subs}
    assert schema_accepts(MandalartCreate, grid) == model_accepts(MandalartCreate, grid), grid


@pytest.mark.parametrize(
    "body",
    [{}, {"title": None}, {"active": None}, {"description": None}, {"title": " t "}, {"x": 1}],
)
def test_the_update_schema_accepts_exactly_what_the_model_accepts(body: dict[str, Any]) -> None:
    assert schema_accepts(MandalartUpdate, body) == model_accepts(MandalartUpdate, body), body
