"""Property: over any sequence of edits, an action's id and added_on stay with its position."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from goals.domain.errors import NotFound
from goals.domain.model import (
    ActionDraft,
    Mandalart,
    MandalartDraft,
    Owner,
    SubGoalDraft,
)
from mandaact_common.domain.schedule import Schedule

pytestmark = pytest.mark.unit

START = datetime(2026, 11, 1, tzinfo=UTC)


@dataclass(frozen=True)
class PutAction:
    sub_goal: int
    position: int
    kind: str


@dataclass(frozen=True)
class PutSubGoal:
    sub_goal: int
    positions: tuple[int, ...] | None


@dataclass(frozen=True)
class RemoveAction:
    sub_goal: int
    position: int


slots = st.integers(1, 8)
edits = st.lists(
    st.one_of(
        st.builds(PutAction, slots, slots, st.sampled_from(["routine", "mission", "reference"])),
        st.builds(
            PutSubGoal,
            slots,
            st.none() | st.sets(slots, max_size=8).map(lambda s: tuple(sorted(s))),
        ),
        st.builds(RemoveAction, slots, slots),
    ),
    max_size=30,
)


def draft_for(position: int, kind: str, day: int) -> ActionDraft:
    if kind == "routine":
        return ActionDraft(position, f"r{day}", "routine", Schedule.daily())
    if kind == "mission":
        return ActionDraft(position, f"m{day}", "mission")
    return ActionDraft(position, f"n{day}", "reference")


@given(edits)
def test_ids_follow_positions_and_versions_count_changes(steps: list[object]) -> None:
    counter = itertools.count(1)

    def new_id() -> str:
        return f"a{next(counter)}"

    grid = Mandalart.create(
        "m",
        Owner("t", "u"),
        MandalartDraft(title="Core"),
        today=START.date(),
        now=START,
        new_id=new_id,
    )
    # The model: (sub-goal, position) -> (id, added_on) of the action living there.
    model: dict[tuple[int, int], tuple[str, date]] = {}
    ever_issued: set[str] = set()
    for day, step in enumerate(steps, start=1):
        now = START + timedelta(days=day)
        before = grid
        try:
            if isinstance(step, PutAction):
                grid = grid.put_action(
                    step.sub_goal,
                    draft_for(step.position, step.kind, day),
                    today=now.date(),
                    now=now,
                    new_id=new_id,
                )
            elif isinstance(step, PutSubGoal):
                actions = (
                    None
                    if step.positions is None
                    else tuple(draft_for(p, "mission", day) for p in step.positions)
                )
                grid = grid.put_sub_goal(
                    SubGoalDraft(step.sub_goal, f"S{day}", actions),
                    today=now.date(),
                    now=now,
                    new_id=new_id,
                )
            else:
                assert isinstance(step, RemoveAction)
                grid = grid.remove_action(step.sub_goal, step.position, now=now)
        except NotFound:
            assert grid is before
            continue
        assert grid.version == before.version + (grid is not before)

        current = {(s.position, a.position): (a.id, a.added_on) for s, a in grid.actions()}
        for key, (action_id, added_on) in current.items():
            if key in model:
                assert (action_id, added_on) == model[key]  # survived the edit
            else:
                assert action_id not in ever_issued  # a new position never reuses an id
                assert added_on == now.date()
        model = current
        ever_issued |= {action_id for action_id, _ in current.values()}

    ids = [a.id for _, a in grid.actions()]
    assert len(ids) == len(set(ids))
