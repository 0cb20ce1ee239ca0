"""The 9×9 layout: where the core goal, the sub-goals and the actions are drawn."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from goals.domain.model import (
    BLOCK_OFFSETS,
    ActionDraft,
    Mandalart,
    MandalartDraft,
    Owner,
    SubGoalDraft,
    grid_layout,
)
from mandaact_common.domain.schedule import Schedule

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 24, tzinfo=UTC)


def build(sub_goals: dict[int, list[int]]) -> Mandalart:
    counter = iter(range(1, 10_000))
    drafts = tuple(
        SubGoalDraft(
            position,
            f"S{position}",
            tuple(ActionDraft(a, f"A{position}.{a}", "routine", Schedule.daily()) for a in actions),
        )
        for position, actions in sub_goals.items()
    )
    return Mandalart.create(
        "m",
        Owner("t", "u"),
        MandalartDraft(title="Core", sub_goals=drafts),
        today=date(2026, 11, 24),
        now=NOW,
        new_id=lambda: f"a{next(counter)}",
    )


def test_documented_example_cells() -> None:
    cells = grid_layout(build({1: [1, 8], 5: [2]}))
    assert len(cells) == 9
    assert all(len(row) == 9 for row in cells)
    core = cells[4][4]
    assert core is not None
    assert (core.kind, core.title) == ("core", "Core")
    # Sub-goal 1: top-left of the centre block, and centre of the top-left block.
    for r, c in [(3, 3), (1, 1)]:
        cell = cells[r][c]
        assert cell is not None
        assert (cell.kind, cell.title, cell.sub_goal_position) == ("sub_goal", "S1", 1)
    # Its action 1 at the top-left of the top-left block, action 8 at its bottom-right.
    a11, a18 = cells[0][0], cells[2][2]
    assert a11 is not None
    assert a18 is not None
    assert (a11.title, a11.action_position, a11.action_id) == ("A1.1", 1, "a1")
    assert (a18.title, a18.action_position) == ("A1.8", 8)
    # Sub-goal 5: right of the centre (row 4, col 5) and centre of the middle-right block.
    s5a, s5b = cells[4][5], cells[4][7]
    assert s5a is not None
    assert s5b is not None
    assert s5a.title == s5b.title == "S5"
    a52 = cells[3][7]
    assert a52 is not None
    assert (a52.title, a52.sub_goal_position, a52.action_type) == ("A5.2", 5, "routine")
    assert cells[0][4] is None


def test_empty_grid_has_only_the_core() -> None:
    cells = grid_layout(build({}))
    filled = [(r, c) for r in range(9) for c in range(9) if cells[r][c] is not None]
    assert filled == [(4, 4)]


@given(st.dictionaries(st.integers(1, 8), st.lists(st.integers(1, 8), unique=True, max_size=8)))
def test_every_part_is_drawn_where_the_layout_says(shape: dict[int, list[int]]) -> None:
    grid = build(shape)
    cells = grid_layout(grid)
    filled = sum(1 for row in cells for cell in row if cell is not None)
    assert filled == 1 + 2 * len(shape) + sum(len(a) for a in shape.values())
    for sub_goal in grid.sub_goals:
        br, bc = BLOCK_OFFSETS[sub_goal.position]
        centre_cell = cells[3 + br][3 + bc]
        own_centre = cells[br * 3 + 1][bc * 3 + 1]
        assert centre_cell is not None
        assert own_centre is not None
        assert centre_cell == own_centre
        assert centre_cell.sub_goal_position == sub_goal.position
        for action in sub_goal.actions:
            ar, ac = BLOCK_OFFSETS[action.position]
            cell = cells[br * 3 + ar][bc * 3 + ac]
            assert cell is not None
            assert (cell.kind, cell.action_id) == ("action", action.id)
