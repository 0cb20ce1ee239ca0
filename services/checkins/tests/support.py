"""Test support shared by unit and integration tests: event builders, fake records, a clock."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from mandaact_contracts.envelope import Envelope, new_envelope
from mandaact_contracts.events import EVENT_TYPES, EventPayload, GoalChanged, UserChanged

CREATED_AT = datetime(2026, 11, 1, 0, 0, tzinfo=UTC)
NOW = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)
"""Friday 2026-11-20, noon in Seoul (03:00 UTC); still Thursday 22:00 in New York."""

DAILY: dict[str, Any] = {"frequency": "daily"}
MON_THU: dict[str, Any] = {"frequency": "weekly", "days": ["mon", "thu"]}
TWICE_A_WEEK: dict[str, Any] = {"frequency": "weekly", "times": 2}
TWICE_A_MONTH: dict[str, Any] = {"frequency": "monthly", "times": 2}


def new_id() -> str:
    """A fresh UUID as text (what goals uses for grid and action ids)."""
    return str(uuid.uuid4())


def action(
    title: str,
    type_: str = "routine",
    schedule: dict[str, Any] | None = None,
    *,
    id: str | None = None,
    position: int = 1,
    added_on: str = "2026-11-01",
    due_date: str | None = None,
) -> dict[str, Any]:
    """An ActionSnapshot as JSON (a routine defaults to daily)."""
    if type_ == "routine" and schedule is None:
        schedule = DAILY
    return {
        "id": id or new_id(),
        "position": position,
        "title": title,
        "type": type_,
        "schedule": schedule,
        "due_date": due_date,
        "added_on": added_on,
    }


def goal_changed(
    tenant: str,
    user: str,
    grid_id: str,
    version: int,
    sub_goals: Sequence[tuple[str, Sequence[dict[str, Any]]]],
    *,
    active: bool = True,
    deleted: bool = False,
    timezone: str = "Asia/Seoul",
    title: str = "Core goal",
    created_at: datetime = CREATED_AT,
) -> GoalChanged:
    """A goal.changed with the whole grid: sub-goals at positions 1.. each with its actions."""
    grid = {
        "id": grid_id,
        "title": title,
        "description": None,
        "active": active,
        "deleted": deleted,
        "version": version,
        "created_at": created_at,
        "updated_at": created_at + timedelta(minutes=version),
        "sub_goals": [
            {
                "position": pos,
                "title": sub_title,
                "actions": [{**a, "position": n} for n, a in enumerate(actions, start=1)],
            }
            for pos, (sub_title, actions) in enumerate(sub_goals, start=1)
        ],
    }
    return GoalChanged.model_validate(
        {"tenant_id": tenant, "user_id": user, "timezone": timezone, "mandalart": grid}
    )


def user_changed(
    tenant: str, user: str, version: int, timezone: str, locale: str = "ko"
) -> UserChanged:
    """A user.changed with these settings."""
    return UserChanged.model_validate(
        {
            "tenant_id": tenant,
            "user_id": user,
            "version": version,
            "timezone": timezone,
            "locale": locale,
            "display_name": None,
            "changed_at": CREATED_AT + timedelta(minutes=version),
        }
    )


_TOPIC_OF = {spec.model: topic for topic, spec in EVENT_TYPES.items()}


def envelope_of(payload: EventPayload) -> Envelope:
    """A new CloudEvent from goals for a payload on its topic (user.changed, goal.changed,
    user.deleted, tenant.deleted)."""
    return new_envelope(_TOPIC_OF[type(payload)], payload, "goals", subject="test")


Feed = Callable[..., Awaitable[list[Envelope]]]
"""Delivers payloads (new envelopes) or envelopes (as they are) as one batch to the consumer."""
