"""Builders of the events reports folds, shared by the unit and integration tests."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from mandaact_contracts.events import (
    ActionCompleted,
    ActionSnapshot,
    ActionUncompleted,
    GoalChanged,
    MandalartSnapshot,
    ScheduleSnapshot,
    SubGoalSnapshot,
    UserChanged,
)


@dataclass
class Users:
    """Builds one user's events: settings, a grid, check-ins."""

    tenant: str = "acme"
    user: str = "alice"
    timezone: str = "Asia/Seoul"
    locale: str = "en"
    seqs: dict[tuple[str, date], int] = field(default_factory=dict)

    def settings(self, version: int = 1) -> UserChanged:
        return UserChanged(
            tenant_id=self.tenant,
            user_id=self.user,
            version=version,
            timezone=self.timezone,
            locale="ko" if self.locale == "ko" else "en",
            display_name=None,
            changed_at=datetime(2026, 11, 1, tzinfo=UTC),
        )

    def grid(
        self, sub_goals: list[tuple[str, list[tuple[str, ScheduleSnapshot | None]]]], added: date
    ) -> GoalChanged:
        """A grid: sub-goal titles with (action id, schedule or None for a mission)."""
        at = datetime.combine(added, datetime.min.time(), UTC)
        return GoalChanged(
            tenant_id=self.tenant,
            user_id=self.user,
            timezone=self.timezone,
            mandalart=MandalartSnapshot(
                id=f"grid-{self.user}",
                title="Core goal",
                description=None,
                active=True,
                version=1,
                created_at=at,
                updated_at=at,
                sub_goals=[
                    SubGoalSnapshot(
                        position=p,
                        title=title,
                        actions=[
                            ActionSnapshot(
                                id=action_id,
                                position=i,
                                title=f"Action {action_id}",
                                type="routine" if schedule else "mission",
                                schedule=schedule,
                                due_date=None,
                                added_on=added,
                            )
                            for i, (action_id, schedule) in enumerate(actions, 1)
                        ],
                    )
                    for p, (title, actions) in enumerate(sub_goals, 1)
                ],
            ),
        )

    def check(
        self,
        action_id: str,
        day: date,
        *,
        hour: int = 8,
        sub_goal: int = 1,
        mission: bool = False,
        undo: bool = False,
        seq: int | None = None,
    ) -> ActionCompleted | ActionUncompleted:
        """A check-in (or undo) at a local hour; seq counts up per (action, day) unless given."""
        key = (action_id, day)
        if seq is None:
            seq = self.seqs.get(key, 0) + 1
        self.seqs[key] = max(seq, self.seqs.get(key, 0))
        local = datetime(day.year, day.month, day.day, hour, tzinfo=ZoneInfo(self.timezone))
        cls = ActionUncompleted if undo else ActionCompleted
        return cls(
            tenant_id=self.tenant,
            user_id=self.user,
            checkin_id=str(uuid.uuid4()),
            action_id=action_id,
            mandalart_id=f"grid-{self.user}",
            sub_goal_position=sub_goal,
            sub_goal_title="sub",
            action_title=f"Action {action_id}",
            action_type="mission" if mission else "routine",
            local_date=day,
            timezone=self.timezone,
            occurred_at=local.astimezone(UTC) + timedelta(seconds=seq),
            seq=seq,
        )


DAILY = ScheduleSnapshot(frequency="daily")
