"""Topics, the event registry and payload model rules."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from mandaact_contracts import topics
from mandaact_contracts.events import (
    EVENT_TYPES,
    ActionCompleted,
    EventPayload,
    GoalChanged,
    MandalartSnapshot,
    ReportGenerated,
    UserChanged,
    XpAwarded,
    XpRevoked,
    ce_type_for,
    model_for_ce_type,
)

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 20, 14, 30, tzinfo=UTC)


def _completed(**overrides: object) -> ActionCompleted:
    fields: dict[str, object] = {
        "tenant_id": "t1",
        "user_id": "u1",
        "checkin_id": "c1",
        "action_id": "a1",
        "mandalart_id": "m1",
        "sub_goal_position": 1,
        "sub_goal_title": "Event flows",
        "action_title": "Draw the flow",
        "action_type": "routine",
        "local_date": "2026-11-20",
        "timezone": "Asia/Seoul",
        "occurred_at": NOW,
        "seq": 1,
    }
    fields.update(overrides)
    return ActionCompleted.model_validate(fields)


def test_every_topic_is_registered_with_three_partitions() -> None:
    assert set(topics.TOPIC_PARTITIONS) == set(topics.ALL_TOPICS) == set(EVENT_TYPES)
    assert len(topics.ALL_TOPICS) == 14
    assert set(topics.TOPIC_PARTITIONS.values()) == {3}
    assert topics.USER_CHANGED == "user.changed"


def test_the_data_lifecycle_topics_of_spec_9() -> None:
    assert {topics.USER_DELETED, topics.USER_ERASED, topics.TENANT_DELETED} == {
        "user.deleted",
        "user.erased",
        "tenant.deleted",
    }
    assert set(topics.ALL_TOPICS) >= topics.LIFECYCLE_TOPICS
    erased = EVENT_TYPES[topics.USER_ERASED].model.model_validate(
        {
            "tenant_id": "t1",
            "user_id": "u1",
            "service": "checkins",
            "deletion_id": "u:abc",
            "erased_at": NOW,
        }
    )
    assert erased.model_dump()["scope"] == "user"
    assert "goals" in topics.CONSUMER_GROUPS
    assert set(topics.ERASING_SERVICES) <= {"goals", *topics.CONSUMER_GROUPS}


def test_dead_letter_topic() -> None:
    assert topics.dead_letter_topic("gamification") == "gamification.dlt"
    with pytest.raises(ValueError, match="consumer group"):
        topics.dead_letter_topic("")


def test_registry_lookups() -> None:
    assert ce_type_for(topics.ACTION_COMPLETED) == "mandaact.action.completed.v1"
    assert model_for_ce_type("mandaact.xp.revoked.v1") is XpRevoked
    for topic, spec in EVENT_TYPES.items():
        assert spec.topic == topic
        assert spec.ce_type == f"mandaact.{topic}.v1"
        assert model_for_ce_type(spec.ce_type) is spec.model
        assert issubclass(spec.model, EventPayload)
    with pytest.raises(KeyError, match="unknown topic"):
        ce_type_for("nope")
    with pytest.raises(KeyError, match="unknown event type"):
        model_for_ce_type("mandaact.nope.v1")


def test_payloads_are_frozen_and_ignore_unknown_fields() -> None:
    event = _completed(added_later="whatever")
    assert not hasattr(event, "added_later")
    assert event.schedule is None
    with pytest.raises(ValidationError):
        event.seq = 2  # type: ignore[misc]


def test_instants_are_normalised_to_utc() -> None:
    seoul = timezone(timedelta(hours=9))
    aware = _completed(occurred_at=datetime(2026, 11, 20, 23, 30, tzinfo=seoul))
    assert aware.occurred_at == datetime(2026, 11, 20, 14, 30, tzinfo=UTC)
    assert aware.occurred_at.utcoffset() == timedelta(0)
    naive = _completed(occurred_at=datetime(2026, 11, 20, 14, 30))
    assert naive.occurred_at == NOW
    assert aware.model_dump(mode="json")["occurred_at"] == "2026-11-20T14:30:00Z"


def test_field_rules() -> None:
    assert _completed().local_date == date(2026, 11, 20)
    with pytest.raises(ValidationError, match="unknown IANA timezone"):
        _completed(timezone="Mars/Olympus")
    with pytest.raises(ValidationError):
        _completed(action_type="reference")
    with pytest.raises(ValidationError):
        _completed(sub_goal_position=9)
    with pytest.raises(ValidationError):
        _completed(seq=0)
    with pytest.raises(ValidationError):
        _completed(tenant_id="")


def test_xp_amount_signs() -> None:
    common: dict[str, object] = {
        "tenant_id": "t1",
        "user_id": "u1",
        "entry_id": "e1",
        "reason": "checkin",
        "action_id": "a1",
        "local_date": "2026-11-20",
        "badge": None,
        "source_event_id": "ev1",
        "xp_total": 10,
        "level": 1,
        "created_at": NOW,
    }
    assert XpAwarded.model_validate({**common, "amount": 15, "multiplier": 1.5}).amount == 15
    revoked = XpRevoked.model_validate({**common, "amount": -15, "revokes_entry_id": "e0"})
    assert revoked.revokes_entry_id == "e0"
    with pytest.raises(ValidationError):
        XpAwarded.model_validate({**common, "amount": -15})
    with pytest.raises(ValidationError):
        XpRevoked.model_validate({**common, "amount": 15})
    with pytest.raises(ValidationError):
        XpAwarded.model_validate({**common, "amount": 15, "reason": "streak"})


def test_user_goal_and_report_payloads() -> None:
    user = UserChanged(
        tenant_id="t1",
        user_id="u1",
        version=1,
        timezone="Asia/Seoul",
        locale="ko",
        display_name=None,
        changed_at=NOW,
    )
    assert user.locale == "ko"
    grid = MandalartSnapshot.model_validate(
        {
            "id": "m1",
            "title": "Design an event-driven system",
            "description": None,
            "active": True,
            "version": 3,
            "sub_goals": [
                {
                    "position": 1,
                    "title": "Event flows",
                    "actions": [
                        {
                            "id": "a1",
                            "position": 2,
                            "title": "Review",
                            "type": "routine",
                            "schedule": {"frequency": "weekly", "days": ["mon", "thu"]},
                            "due_date": None,
                            "added_on": "2026-11-01",
                        }
                    ],
                }
            ],
            "created_at": NOW,
            "updated_at": NOW,
        }
    )
    goal = GoalChanged(tenant_id="t1", user_id="u1", mandalart=grid, timezone="Europe/Berlin")
    assert goal.mandalart.deleted is False
    schedule = goal.mandalart.sub_goals[0].actions[0].schedule
    assert schedule is not None
    assert schedule.days == ["mon", "thu"]
    report: dict[str, object] = {
        "tenant_id": "t1",
        "user_id": "u1",
        "report_id": "r1",
        "generator": "llm",
        "generated_at": NOW,
    }
    assert ReportGenerated.model_validate({**report, "week": "2026-W47"}).week == "2026-W47"
    with pytest.raises(ValidationError):
        ReportGenerated.model_validate({**report, "week": "2026-47"})
