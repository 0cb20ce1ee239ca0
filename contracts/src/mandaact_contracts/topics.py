"""Kafka topic names, partition counts and dead-letter topic naming."""

from __future__ import annotations

from typing import Final

USER_CHANGED: Final = "user.changed"
GOAL_CHANGED: Final = "goal.changed"
ACTION_COMPLETED: Final = "action.completed"
ACTION_UNCOMPLETED: Final = "action.uncompleted"
XP_AWARDED: Final = "xp.awarded"
XP_REVOKED: Final = "xp.revoked"
LEVEL_REACHED: Final = "level.reached"
BADGE_UNLOCKED: Final = "badge.unlocked"
STREAK_CHANGED: Final = "streak.changed"
REPORT_GENERATED: Final = "report.generated"
NOTIFICATION_REQUESTED: Final = "notification.requested"
USER_DELETED: Final = "user.deleted"
USER_ERASED: Final = "user.erased"
TENANT_DELETED: Final = "tenant.deleted"

ALL_TOPICS: Final[tuple[str, ...]] = (
    USER_CHANGED,
    GOAL_CHANGED,
    ACTION_COMPLETED,
    ACTION_UNCOMPLETED,
    XP_AWARDED,
    XP_REVOKED,
    LEVEL_REACHED,
    BADGE_UNLOCKED,
    STREAK_CHANGED,
    REPORT_GENERATED,
    NOTIFICATION_REQUESTED,
    USER_DELETED,
    USER_ERASED,
    TENANT_DELETED,
)

TOPIC_PARTITIONS: Final[dict[str, int]] = dict.fromkeys(ALL_TOPICS, 3)

DEAD_LETTER_SUFFIX: Final = ".dlt"


def dead_letter_topic(group: str) -> str:
    """Return the dead-letter topic of a consumer group, e.g. "gamification.dlt"."""
    if not group or group != group.strip():
        raise ValueError(f"invalid consumer group name: {group!r}")
    return f"{group}{DEAD_LETTER_SUFFIX}"


LIFECYCLE_TOPICS: Final[frozenset[str]] = frozenset({USER_DELETED, USER_ERASED, TENANT_DELETED})
"""The data-lifecycle topics (SPEC §9): never dropped for an erased subject."""

ERASING_SERVICES: Final[tuple[str, ...]] = (
    "goals",
    "checkins",
    "gamification",
    "reports",
    "webhooks",
    "notifications",
)
"""The services that hold users' data and answer `user.erased` for each erasure (SPEC §9);
a deletion is complete when every one of them has answered."""

CONSUMER_GROUPS: Final[tuple[str, ...]] = (
    "goals",
    "checkins",
    "gamification",
    "reports",
    "notifications",
    "webhooks",
)
"""The services' consumer groups; each has its own dead-letter topic."""


def topics_to_create() -> dict[str, int]:
    """Every topic the stack needs, with partitions: the event topics and the dead-letter ones."""
    return {**TOPIC_PARTITIONS, **{dead_letter_topic(g): 3 for g in CONSUMER_GROUPS}}
