"""Builders of the events reports folds and of sample folds, for unit and integration tests."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
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
from reports.domain.stats import SubGoalStat, WeeklyStats


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


def sub_goal(title: str, due: int, done: int, position: int = 1) -> SubGoalStat:
    """A sub-goal's line of a fold."""
    return SubGoalStat(
        mandalart_id="m1",
        position=position,
        title=title,
        due=due,
        done=done,
        rate=round(done / due, 4) if due else None,
    )


def stats(**overrides: Any) -> WeeklyStats:
    """A sample fold (two sub-goals), with fields replaced by `overrides`."""
    best = sub_goal("Run 5km", 7, 6)
    worst = sub_goal("Read", 7, 2, 2)
    base: dict[str, Any] = {
        "days_active": 5,
        "checkins_total": 12,
        "checkins_by_weekday": {"mon": 3, "tue": 2, "wed": 2, "thu": 2, "fri": 3},
        "due_total": 14,
        "done_total": 8,
        "completion_rate": 0.5714,
        "by_sub_goal": [best, worst],
        "best_sub_goal": best,
        "worst_sub_goal": worst,
        "best_day": "mon",
        "worst_day": "sat",
        "time_of_day": {"morning": 6, "afternoon": 3, "evening": 2, "night": 1},
        "routine_checkins": 11,
        "mission_checkins": 1,
        "streak_current": 4,
        "streak_best": 9,
        "xp_gained": 1250,
        "levels_gained": 1,
        "badges_unlocked": ["streak_3"],
        "vs_previous_week": {"checkins_total": -3, "completion_rate": -0.1, "xp_gained": 40},
    }
    base.update(overrides)
    return WeeklyStats.model_validate(base)
