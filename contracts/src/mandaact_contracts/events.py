"""Event payload models (pydantic v2) and the topic -> CloudEvents type registry.

Payloads are frozen and ignore unknown fields, so a consumer keeps working when a producer
adds an optional field (the only allowed evolution, see ``mandaact_contracts.compat``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Annotated, Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from mandaact_contracts import topics


def _to_utc(value: datetime) -> datetime:
    """Normalise an instant to UTC; a naive value is taken as UTC (as MongoDB stores it)."""
    if value.tzinfo is None or value.utcoffset() is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _check_timezone(value: str) -> str:
    """Accept only a known IANA timezone name such as "Asia/Seoul"."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown IANA timezone: {value!r}") from None
    return value


UtcDatetime = Annotated[
    datetime,
    AfterValidator(_to_utc),
    Field(description="An instant, RFC 3339; normalised to UTC (naive values are taken as UTC)."),
]
IanaTimezone = Annotated[
    str,
    AfterValidator(_check_timezone),
    Field(description="IANA timezone name, e.g. Asia/Seoul.", examples=["Asia/Seoul"]),
]
Position = Annotated[int, Field(ge=1, le=8, description="Position in the grid, 1-8.")]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
ActionType = Literal["routine", "mission", "reference"]
CheckableActionType = Literal["routine", "mission"]
XpReason = Literal["checkin", "perfect_day", "badge"]


class EventPayload(BaseModel):
    """Base of every payload: user-scoped, frozen, tolerant of additive fields."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    tenant_id: str = Field(min_length=1)
    user_id: str = Field(min_length=1)
    source_seq: int | None = Field(
        default=None,
        ge=1,
        description="The user's event number per topic at the producing service (SPEC §12):"
        " consumers record the highest applied, for read-your-writes tokens.",
    )


class _Snapshot(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


# --- goals -----------------------------------------------------------------------------------


_ALIASED: Final = ConfigDict(
    frozen=True,
    extra="ignore",
    validate_by_name=True,
    validate_by_alias=True,
    serialize_by_alias=True,
)
"""`from` is a Python keyword: the field is `from_`, read and written as `from`."""


class PauseSnapshot(_Snapshot):
    """A vacation pause: local dates `from`..`to`, inclusive."""

    model_config = _ALIASED

    from_: date = Field(alias="from")
    to: date
    reason: str | None = None


class QuietHoursSnapshot(_Snapshot):
    """Local wall-clock hours in which no notification is sent (may wrap midnight)."""

    model_config = _ALIASED

    from_: str = Field(alias="from", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    to: str = Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")


class NotificationSettingsSnapshot(_Snapshot):
    """Which notification kinds a user wants (each defaults to true)."""

    daily_reminder: bool = True
    streak_at_risk: bool = True
    comeback: bool = True
    report_ready: bool = True
    badge_unlocked: bool = True
    level_reached: bool = True


class UserChanged(EventPayload):
    """A user's settings after a change (or at creation)."""

    version: int = Field(ge=1, description="Bumped on every change of the user's settings.")
    timezone: IanaTimezone
    locale: Literal["ko", "en"]
    display_name: str | None
    changed_at: UtcDatetime
    day_starts_at: str = Field(
        default="00:00",
        pattern=r"^(0\d|1[0-2]):[0-5]\d$",
        description="Start of the user's day (HH:MM, 00:00-12:00): local date = local time - it.",
    )
    pauses: list[PauseSnapshot] = Field(
        default_factory=list, description="The user's vacation pauses (local dates, inclusive)."
    )
    reminder_time: str = Field(
        default="20:00",
        pattern=r"^([01]\d|2[0-3]):[0-5]\d$",
        description="Local time of the daily reminder and of comeback notifications (HH:MM).",
    )
    quiet_hours: QuietHoursSnapshot | None = Field(
        default=None, description="Local hours without notifications; null = 22:00-08:00."
    )
    notifications: NotificationSettingsSnapshot | None = Field(
        default=None, description="Which notification kinds the user wants; null = all of them."
    )


class ScheduleSnapshot(_Snapshot):
    """When a routine is due: daily; weekly on `days` or `times` a week; monthly `times` a month."""

    frequency: Literal["daily", "weekly", "monthly"]
    days: list[Weekday] | None = None
    times: int | None = Field(default=None, ge=1)


class ActionSnapshot(_Snapshot):
    """One action of a sub-goal as it is after the change."""

    id: str
    position: Position
    title: str
    type: ActionType
    schedule: ScheduleSnapshot | None
    due_date: date | None
    added_on: date = Field(description="The owner's local date the action was added.")


class SubGoalSnapshot(_Snapshot):
    """One sub-goal with its actions."""

    position: Position
    title: str
    actions: list[ActionSnapshot]


class MandalartSnapshot(_Snapshot):
    """The whole grid (mandalart) after a change."""

    id: str
    title: str
    description: str | None
    active: bool
    deleted: bool = False
    version: int = Field(ge=1, description="Bumped on every change of the grid.")
    sub_goals: list[SubGoalSnapshot]
    created_at: UtcDatetime
    updated_at: UtcDatetime


class GoalChanged(EventPayload):
    """A grid was created, changed or deleted; carries the whole grid after the change."""

    mandalart: MandalartSnapshot
    timezone: IanaTimezone = Field(description="The owner's timezone at the time of the change.")


# --- checkins --------------------------------------------------------------------------------


class _CheckinChange(EventPayload):
    checkin_id: str
    action_id: str
    mandalart_id: str
    sub_goal_position: Position
    sub_goal_title: str
    action_title: str
    action_type: CheckableActionType
    local_date: date = Field(description="The user's local date the check-in is for.")
    timezone: IanaTimezone
    occurred_at: UtcDatetime
    seq: int = Field(ge=1, description="Change sequence number per (user, action, local_date).")
    schedule: ScheduleSnapshot | None = None


class ActionCompleted(_CheckinChange):
    """An action was checked off for a local date."""


class ActionUncompleted(_CheckinChange):
    """A check-in was undone."""


# --- gamification ----------------------------------------------------------------------------


class _XpEntry(EventPayload):
    entry_id: str
    amount: int
    reason: XpReason
    action_id: str | None
    local_date: date | None
    badge: str | None
    source_event_id: str = Field(description="ce_id of the event that caused this entry.")
    xp_total: int = Field(ge=0, description="The user's XP total after this entry.")
    level: int = Field(ge=1, description="The user's level after this entry.")
    multiplier: float | None = None
    created_at: UtcDatetime


class XpAwarded(_XpEntry):
    """An XP ledger entry that adds XP."""

    amount: int = Field(gt=0, description="XP added (positive).")


class XpRevoked(_XpEntry):
    """An XP ledger entry that takes XP back."""

    amount: int = Field(lt=0, description="XP taken back (negative).")
    revokes_entry_id: str | None = None


class LevelReached(EventPayload):
    """The user reached a new level."""

    level: int = Field(ge=1)
    xp_total: int = Field(ge=0)
    reached_at: UtcDatetime


class BadgeUnlocked(EventPayload):
    """The user unlocked a badge (once per badge)."""

    badge: str = Field(description="Badge code from the catalogue.")
    xp_reward: int = Field(ge=0)
    unlocked_at: UtcDatetime


class StreakChanged(EventPayload):
    """The user's streak after a change."""

    current: int = Field(ge=0)
    longest: int = Field(ge=0)
    last_active_date: date | None
    changed_at: UtcDatetime
    freezes: int = Field(default=0, ge=0, le=2, description="Streak freezes held (0-2).")
    frozen_dates: list[date] = Field(
        default_factory=list, description="Local dates a freeze kept the streak (last 30 days)."
    )


# --- reports ---------------------------------------------------------------------------------


class ReportGenerated(EventPayload):
    """A weekly report was written."""

    report_id: str
    week: str = Field(
        pattern=r"^\d{4}-W(0[1-9]|[1-4]\d|5[0-3])$",
        description="ISO week, e.g. 2026-W47.",
        examples=["2026-W47"],
    )
    generator: Literal["llm", "fallback"]
    generated_at: UtcDatetime


# --- notifications ---------------------------------------------------------------------------

NotificationKind = Literal[
    "daily_reminder",
    "streak_at_risk",
    "comeback",
    "report_ready",
    "badge_unlocked",
    "level_reached",
]


class NotificationRequested(EventPayload):
    """The notifications service decided to tell a user something (a push gateway sends it)."""

    notification_id: str
    kind: NotificationKind
    locale: Literal["ko", "en"]
    title: str
    body: str
    deep_link: str
    local_date: date = Field(description="The user's local date the notification is for.")
    created_at: UtcDatetime


# --- data lifecycle (SPEC §9) ---------------------------------------------------------------

ErasureScope = Literal["user", "tenant"]


class UserDeleted(EventPayload):
    """The user asked to be forgotten (`DELETE /v1/me`): every service erases what it holds."""

    deletion_id: str = Field(description="A keyed hash of tenant and user: the deletion record.")
    requested_at: UtcDatetime


class TenantDeleted(EventPayload):
    """A tenant admin deleted the whole tenant (`DELETE /v1/admin/tenant`); `user_id` is the
    admin who asked."""

    deletion_id: str = Field(description="A keyed hash of the tenant: the deletion record.")
    requested_at: UtcDatetime


class UserErased(EventPayload):
    """One service has erased a user's (scope `user`) or a whole tenant's (scope `tenant`)
    documents; a tenant's erasure names nobody: its `user_id` is the tenant id."""

    service: str = Field(min_length=1)
    scope: ErasureScope = "user"
    deletion_id: str
    erased_at: UtcDatetime


# --- registry --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EventSpec:
    """What travels on a topic: its CloudEvents type and payload model."""

    topic: str
    ce_type: str
    model: type[EventPayload]


def _spec(topic: str, model: type[EventPayload], version: int = 1) -> tuple[str, EventSpec]:
    return topic, EventSpec(topic=topic, ce_type=f"mandaact.{topic}.v{version}", model=model)


EVENT_TYPES: Final[dict[str, EventSpec]] = dict(
    [
        _spec(topics.USER_CHANGED, UserChanged),
        _spec(topics.GOAL_CHANGED, GoalChanged),
        _spec(topics.ACTION_COMPLETED, ActionCompleted),
        _spec(topics.ACTION_UNCOMPLETED, ActionUncompleted),
        _spec(topics.XP_AWARDED, XpAwarded),
        _spec(topics.XP_REVOKED, XpRevoked),
        _spec(topics.LEVEL_REACHED, LevelReached),
        _spec(topics.BADGE_UNLOCKED, BadgeUnlocked),
        _spec(topics.STREAK_CHANGED, StreakChanged),
        _spec(topics.REPORT_GENERATED, ReportGenerated),
        _spec(topics.NOTIFICATION_REQUESTED, NotificationRequested),
        _spec(topics.USER_DELETED, UserDeleted),
        _spec(topics.USER_ERASED, UserErased),
        _spec(topics.TENANT_DELETED, TenantDeleted),
    ]
)

_BY_CE_TYPE: Final[dict[str, EventSpec]] = {spec.ce_type: spec for spec in EVENT_TYPES.values()}


def ce_type_for(topic: str) -> str:
    """Return the CloudEvents type of a topic's events; KeyError for an unknown topic."""
    try:
        return EVENT_TYPES[topic].ce_type
    except KeyError:
        raise KeyError(f"unknown topic: {topic!r}") from None


def model_for_ce_type(ce_type: str) -> type[EventPayload]:
    """Return the payload model of a CloudEvents type; KeyError for an unknown type."""
    return spec_for_ce_type(ce_type).model


def spec_for_ce_type(ce_type: str) -> EventSpec:
    """Return the registry entry of a CloudEvents type; KeyError for an unknown type."""
    try:
        return _BY_CE_TYPE[ce_type]
    except KeyError:
        raise KeyError(f"unknown event type: {ce_type!r}") from None
