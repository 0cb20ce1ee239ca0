"""Test support shared by unit and integration tests: a grid and check-ins as Kafka records."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

from mandaact_common.consumer import Inbound
from mandaact_common.testing import MemoryRecord, record_of
from mandaact_contracts.envelope import from_kafka, parse_payload
from mandaact_contracts.events import (
    ActionCompleted,
    ActionSnapshot,
    ActionUncompleted,
    GoalChanged,
    MandalartSnapshot,
    ScheduleSnapshot,
    SubGoalSnapshot,
)

TENANT, USER = "acme", "alice"
ADDED = date(2026, 11, 2)  # a Monday


def goal(
    version: int = 1, n_actions: int = 2, user: str = USER, tenant: str = TENANT
) -> MemoryRecord:
    now = datetime(2026, 11, 2, tzinfo=UTC)
    snapshot = MandalartSnapshot(
        id="m1",
        title="Core",
        description=None,
        active=True,
        version=version,
        created_at=now,
        updated_at=now,
        sub_goals=[
            SubGoalSnapshot(
                position=1,
                title="Sub",
                actions=[
                    ActionSnapshot(
                        id=f"a{i}",
                        position=i,
                        title=f"Action {i}",
                        type="routine",
                        schedule=ScheduleSnapshot(frequency="daily"),
                        due_date=None,
                        added_on=ADDED,
                    )
                    for i in range(1, n_actions + 1)
                ],
            )
        ],
    )
    return record_of(
        GoalChanged(tenant_id=tenant, user_id=user, mandalart=snapshot, timezone="Asia/Seoul"),
    )


def change(
    action: str,
    day: date,
    seq: int,
    done: bool = True,
    user: str = USER,
    tenant: str = TENANT,
) -> MemoryRecord:
    model = ActionCompleted if done else ActionUncompleted
    payload = model(
        tenant_id=tenant,
        user_id=user,
        checkin_id=str(uuid.uuid4()),
        action_id=action,
        mandalart_id="m1",
        sub_goal_position=1,
        sub_goal_title="Sub",
        action_title=action,
        action_type="routine",
        local_date=day,
        timezone="Asia/Seoul",
        occurred_at=datetime(day.year, day.month, day.day, 1, seq, tzinfo=UTC),
        seq=seq,
    )
    return record_of(payload)


def inbound(record: MemoryRecord) -> Inbound:
    """The record decoded as the idempotent consumer hands it to the handler."""
    envelope = from_kafka(list(record.headers), record.value or b"")
    return Inbound(envelope, parse_payload(envelope), record)
