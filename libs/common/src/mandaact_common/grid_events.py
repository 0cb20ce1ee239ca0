"""`goal.changed` → the grid's actions as the due rules see them, for every consumer of grids.

Goals validates a grid before it announces it, so a snapshot whose action breaks the due rules
(a routine without a schedule, a schedule on a mission) can only be a bad message: building the
actions raises `InvalidAction` / `InvalidSchedule`, and the consumer dead-letters the event
instead of storing something every later read would trip over.
"""

from __future__ import annotations

from dataclasses import dataclass

from mandaact_common.domain.schedule import Action, Schedule
from mandaact_contracts.events import ActionSnapshot, GoalChanged


@dataclass(frozen=True, slots=True)
class PlacedAction:
    """An action of a grid, where it sits (sub-goal and position) and its due-rule form."""

    sub_goal_position: int
    sub_goal_title: str
    position: int
    title: str
    rule: Action

    @property
    def id(self) -> str:
        """The action's stable id."""
        return self.rule.id


def action_rule(snapshot: ActionSnapshot) -> Action:
    """The due-rule form of one action of a snapshot."""
    schedule = snapshot.schedule
    return Action(
        id=snapshot.id,
        type=snapshot.type,
        schedule=(
            Schedule.from_parts(schedule.frequency, schedule.days, schedule.times)
            if schedule is not None
            else None
        ),
        added_on=snapshot.added_on,
        due_date=snapshot.due_date,
    )


def placed_actions(event: GoalChanged) -> tuple[PlacedAction, ...]:
    """Every action of the grid a `goal.changed` carries, in sub-goal then action order."""
    return tuple(
        PlacedAction(
            sub_goal_position=sub_goal.position,
            sub_goal_title=sub_goal.title,
            position=action.position,
            title=action.title,
            rule=action_rule(action),
        )
        for sub_goal in sorted(event.mandalart.sub_goals, key=lambda sg: sg.position)
        for action in sorted(sub_goal.actions, key=lambda a: a.position)
    )
