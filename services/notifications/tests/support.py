"""Test support shared by unit and integration tests: event builders and times in Seoul."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from mandaact_contracts.events import (
    ActionCompleted,
    ActionUncompleted,
    BadgeUnlocked,
    GoalChanged,
    LevelReached,
    ReportGenerated,
    ScheduleSnapshot,
    StreakChanged,
    UserChanged,
)

SEOUL = ZoneInfo("Asia/Seoul")
TODAY = date(2026, 11, 20)
"""A Friday; the tests' "today" in Seoul."""
CREATED_AT = datetime(2026, 11, 1, tzinfo=UTC)


def seoul(day: date, hour: int, minute: int = 0, second: int = 0) -> datetime:
    """The UTC instant of a Seoul wall-clock time."""
    return datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=SEOUL).astimezone(
        UTC
    )


def new_id() -> str:
    """A fresh UUID text."""
    return str(uuid.uuid4())


def user_changed(
    user: str, version: int = 1, *, tenant: str = "acme", **settings: Any
) -> UserChanged:
    """A user.changed with these settings (the rest at their defaults)."""
    return UserChanged.model_validate(
        {
            "tenant_id": tenant,
            "user_id": user,
            "version": version,
            "timezone": settings.pop("timezone", "Asia/Seoul"),
            "locale": settings.pop("locale", "ko"),
            "display_name": None,
            "changed_at": CREATED_AT + timedelta(minutes=version),
            **settings,
        }
    )


def goal_changed(
    user: str, actions: list[dict[str, Any]], *, tenant: str = "acme", version: int = 1
) -> GoalChanged:
    """A goal.changed with one sub-goal holding these actions (added on Nov 1)."""
    return GoalChanged.model_validate(
        {
            "tenant_id": tenant,
            "user_id": user,
            "timezone": "Asia/Seoul",
            "mandalart": {
                "id": f"grid-{user}",
                "title": "Core goal",
                "description": None,
                "active": True,
                "version": version,
                "created_at": CREATED_AT,
                "updated_at": CREATED_AT,
                "sub_goals": [
                    {
                        "position": 1,
                        "title": "Body",
                        "actions": [
                            {
                                "id": a["id"],
                                "position": n,
                                "title": f"Action {n}",
                                "type": a.get("type", "routine"),
                                "schedule": a.get("schedule", {"frequency": "daily"}),
                                "due_date": None,
                                "added_on": "2026-11-01",
                            }
                            for n, a in enumerate(actions, start=1)
                        ],
                    }
                ],
            },
        }
    )


def checkin(
    user: str, action_id: str, day: date, *, seq: int = 1, done: bool = True, tenant: str = "acme"
) -> ActionCompleted | ActionUncompleted:
    """An action.completed (or, with done=False, action.uncompleted) for a local date."""
    model = ActionCompleted if done else ActionUncompleted
    return model(
        tenant_id=tenant,
        user_id=user,
        checkin_id=new_id(),
        action_id=action_id,
        mandalart_id=f"grid-{user}",
        sub_goal_position=1,
        sub_goal_title="Body",
        action_title="Action",
        action_type="routine",
        local_date=day,
        timezone="Asia/Seoul",
        occurred_at=seoul(day, 9),
        seq=seq,
        schedule=ScheduleSnapshot(frequency="daily"),
    )


def streak_changed(
    user: str, current: int, last_active: date | None, *, at: datetime, tenant: str = "acme"
) -> StreakChanged:
    """A streak.changed."""
    return StreakChanged(
        tenant_id=tenant,
        user_id=user,
        current=current,
        longest=current,
        last_active_date=last_active,
        changed_at=at,
    )


def badge_unlocked(user: str, badge: str, at: datetime, *, tenant: str = "acme") -> BadgeUnlocked:
    """A badge.unlocked."""
    return BadgeUnlocked(tenant_id=tenant, user_id=user, badge=badge, xp_reward=10, unlocked_at=at)


def level_reached(user: str, level: int, at: datetime, *, tenant: str = "acme") -> LevelReached:
    """A level.reached."""
    return LevelReached(tenant_id=tenant, user_id=user, level=level, xp_total=100, reached_at=at)


def report_generated(
    user: str, week: str, at: datetime, *, tenant: str = "acme"
) -> ReportGenerated:
    """A report.generated."""
    return ReportGenerated(
        tenant_id=tenant,
        user_id=user,
        report_id=new_id(),
        week=week,
        generator="fallback",
        generated_at=at,
    )
