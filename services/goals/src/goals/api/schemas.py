"""Request and response bodies of the goals API (pydantic), and their mapping to the domain.

Inputs forbid unknown fields and take numbers, booleans and dates only in their JSON types
(no "1" for 1, no 0 for a date), so every wrong input is a 422 that names its field. Their JSON
Schemas say what the validators check, the rules between fields included (a routine needs a
schedule, a weekly schedule takes days or times, positions are unique), so a client generated
from the document sends only what is accepted.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import date, datetime
from typing import Annotated, Any, Final, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.config import JsonDict

from goals.domain.deletion import Deletion
from goals.domain.errors import InvalidInput
from goals.domain.model import (
    DESCRIPTION_MAX_LENGTH,
    DISPLAY_NAME_MAX_LENGTH,
    PAUSE_REASON_MAX_LENGTH,
    SLOTS,
    TITLE_MAX_LENGTH,
    UNSET,
    Action,
    ActionDraft,
    Cell,
    Mandalart,
    MandalartDraft,
    NotificationPrefs,
    QuietHours,
    SubGoal,
    SubGoalDraft,
    Unset,
    UserSettings,
    grid_layout,
)
from goals.service import ChangeSettings, EditMandalart
from mandaact_common.domain.calendar import is_valid_timezone
from mandaact_common.domain.pauses import Pause
from mandaact_common.domain.schedule import InvalidSchedule, Schedule, shape_fault
from mandaact_common.wire import IsoDate, json_integer, left_out

ActionType = Literal["routine", "mission", "reference"]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
Locale = Literal["ko", "en"]


NOT_BLANK: Final = (
    r"[^\t\n\x0b\f\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
)
"""A character that is not whitespace as `str.strip` counts it (the pattern of a non-blank text)."""
TIMEZONE_PATTERN: Final = r"^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+)*$"
"""The shape of an IANA zone name; whether the zone exists is checked against the tz database."""


def _not_blank(value: str) -> str:
    text = value.strip()
    if not text:
        raise ValueError("must not be blank (whitespace only counts as empty)")
    return text


def _empty_to_none(value: str) -> str | None:
    return value.strip() or None


def _iana(value: str) -> str:
    if not is_valid_timezone(value):
        raise ValueError(f"{value!r} is not an IANA timezone name (e.g. Asia/Seoul)")
    return value


# Lengths count the text as sent; the stored text is stripped of surrounding whitespace.
Title = Annotated[
    str,
    StringConstraints(min_length=1, max_length=TITLE_MAX_LENGTH),
    AfterValidator(_not_blank),
    Field(
        description="1–200 characters, not all whitespace; surrounding whitespace is dropped.",
        json_schema_extra={"pattern": NOT_BLANK},
    ),
]
Description = Annotated[
    str,
    StringConstraints(max_length=DESCRIPTION_MAX_LENGTH),
    AfterValidator(_empty_to_none),
    Field(description="Up to 2000 characters; blank means none."),
]
DisplayName = Annotated[
    str,
    StringConstraints(max_length=DISPLAY_NAME_MAX_LENGTH),
    AfterValidator(_empty_to_none),
    Field(description="Up to 100 characters; blank means none."),
]
Timezone = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64),
    AfterValidator(_iana),
    Field(
        description="An IANA timezone name (a name the tz database does not know is refused).",
        examples=["Asia/Seoul"],
        json_schema_extra={"pattern": TIMEZONE_PATTERN},
    ),
]
Position = Annotated[
    int, Field(ge=1, le=SLOTS), BeforeValidator(json_integer), Field(description="Position 1–8.")
]


def _unique_positions_schema(kind: str) -> dict[str, Any]:
    """JSON Schema for "no two items share a position": each position matches at most once."""
    return {
        "description": f"At most {SLOTS} {kind}, each at its own position.",
        "allOf": [
            {
                "contains": {
                    "type": "object",
                    "required": ["position"],
                    "properties": {"position": {"const": p}},
                },
                "minContains": 0,
                "maxContains": 1,
            }
            for p in range(1, SLOTS + 1)
        ],
    }


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _check_unique_positions(items: Sequence[Any] | None) -> Sequence[Any] | None:
    if items is None:
        return None
    seen: set[int] = set()
    for item in items:
        if item.position is None:
            continue
        if item.position in seen:
            raise ValueError(f"position {item.position} appears more than once")
        seen.add(item.position)
    return items


def _refuse_null(value: Any) -> Any:
    # Runs only for fields the caller sent: leaving a field out keeps it, null is refused.
    if value is None:
        raise ValueError("must not be null (leave the field out to keep its value)")
    return value


# --- inputs ------------------------------------------------------------------------------------


_NULL: Final[JsonDict] = {"type": "null"}


def _when(field: str, value: str, then: JsonDict, otherwise: JsonDict | None = None) -> JsonDict:
    """JSON Schema `if field == value then … else …` (kept out of the client generators' way:
    they read `properties`, not conditionals)."""
    rule: JsonDict = {"if": {"properties": {field: {"const": value}}}, "then": then}
    if otherwise is not None:
        rule["else"] = otherwise
    return rule


_SCHEDULE_RULES: Final = _when(
    "frequency",
    "daily",
    {"properties": {"days": _NULL, "times": _NULL}},
    _when(
        "frequency",
        "weekly",
        {
            "if": {"required": ["days"], "properties": {"days": {"type": "array"}}},
            "then": {"properties": {"times": _NULL}},
            "else": {
                "required": ["times"],
                "properties": {"times": {"type": "integer", "maximum": 7}},
            },
        },
        {"required": ["times"], "properties": {"days": _NULL, "times": {"type": "integer"}}},
    ),
)
"""Which fields each frequency takes, for the document (`to_domain` checks the same)."""


class ScheduleIn(_Input):
    """When a routine is due: `daily`; `weekly` on `days` or `times` (1–7) a week; `monthly`
    `times` (1–31) a month."""

    model_config = ConfigDict(json_schema_extra=_SCHEDULE_RULES)

    frequency: Literal["daily", "weekly", "monthly"]
    days: list[Weekday] | None = Field(
        default=None, min_length=1, max_length=7, json_schema_extra={"uniqueItems": True}
    )
    times: Annotated[int, Field(ge=1, le=31), BeforeValidator(json_integer)] | None = None

    @model_validator(mode="after")
    def _fits_frequency(self) -> Self:
        self.to_domain()
        return self

    def to_domain(self) -> Schedule:
        """The schedule as the shared due rules know it (ValueError if it breaks them)."""
        try:
            return Schedule.from_parts(self.frequency, self.days, self.times)
        except InvalidSchedule as exc:
            raise ValueError(str(exc)) from None


def _fits_type(value: Any, info: ValidationInfo, field: str) -> Any:
    """Refuse a schedule or due date that the action's type forbids (or a missing schedule)."""
    kind = info.data.get("type")
    if kind is None:  # the type itself was invalid and is reported on its own
        return value
    if field == "schedule":
        fault = shape_fault(kind, has_schedule=value is not None, has_due_date=False)
    else:  # judged as if the schedule were right: its own fault is reported on its own
        fault = shape_fault(kind, has_schedule=kind == "routine", has_due_date=value is not None)
    if fault is not None:
        raise ValueError(f"a {kind} {fault[1]}")
    return value


_ACTION_RULES: Final = _when(
    "type",
    "routine",
    {"required": ["schedule"], "properties": {"schedule": {"type": "object"}, "due_date": _NULL}},
    _when(
        "type",
        "mission",
        {"properties": {"schedule": _NULL}},
        {"properties": {"schedule": _NULL, "due_date": _NULL}},
    ),
)
"""What each action type takes, for the document (`_fits_type` checks the same)."""


class _ActionFields(_Input):
    model_config = ConfigDict(extra="forbid", json_schema_extra=_ACTION_RULES)

    title: Title
    type: ActionType = Field(description="routine (needs a schedule), mission or reference.")
    schedule: ScheduleIn | None = Field(
        default=None, validate_default=True, description="Routines only."
    )
    due_date: IsoDate | None = Field(
        default=None, validate_default=True, description="Missions only, optional."
    )

    @field_validator("schedule")
    @classmethod
    def _schedule_fits_type(cls, value: ScheduleIn | None, info: ValidationInfo) -> Any:
        return _fits_type(value, info, "schedule")

    @field_validator("due_date")
    @classmethod
    def _due_date_fits_type(cls, value: date | None, info: ValidationInfo) -> Any:
        return _fits_type(value, info, "due_date")

    def _draft(self, position: int) -> ActionDraft:
        return ActionDraft(
            position=position,
            title=self.title,
            type=self.type,
            schedule=self.schedule.to_domain() if self.schedule else None,
            due_date=self.due_date,
        )


class ActionIn(_ActionFields):
    """An action of a sub-goal in a grid or sub-goal body."""

    position: Position

    def to_draft(self) -> ActionDraft:
        """The domain command."""
        return self._draft(self.position)


def _path_position(sent: int | None, path: int, field: str) -> int:
    if sent is not None and sent != path:
        raise InvalidInput(field, f"is {sent} but the URL says {path} (or leave it out)")
    return path


class ActionPut(_ActionFields):
    """The body of PUT …/actions/{apos}; `position`, if sent, must equal the URL's."""

    position: Position | None = None

    def to_draft(self, position: int) -> ActionDraft:
        """The domain command for the action at `position`."""
        return self._draft(_path_position(self.position, position, "position"))


class SubGoalIn(_Input):
    """A sub-goal with its actions, in a grid body."""

    position: Position
    title: Title
    actions: list[ActionIn] = Field(
        default_factory=list,
        max_length=SLOTS,
        json_schema_extra=_unique_positions_schema("actions"),
    )

    @field_validator("actions")
    @classmethod
    def _unique_positions(cls, value: Any) -> Any:
        return _check_unique_positions(value)

    def to_draft(self) -> SubGoalDraft:
        """The domain command."""
        return SubGoalDraft(
            position=self.position,
            title=self.title,
            actions=tuple(a.to_draft() for a in self.actions),
        )


class SubGoalPut(_Input):
    """The body of PUT …/sub-goals/{pos}; leaving `actions` out keeps the current actions."""

    position: Position | None = None
    title: Title
    actions: list[ActionIn] | None = Field(
        default=None,
        max_length=SLOTS,
        description="Leave out to keep the current actions.",
        json_schema_extra=_unique_positions_schema("actions"),
    )

    @field_validator("actions")
    @classmethod
    def _unique_positions(cls, value: Any) -> Any:
        return _check_unique_positions(value)

    def to_draft(self, position: int) -> SubGoalDraft:
        """The domain command for the sub-goal at `position`."""
        return SubGoalDraft(
            position=_path_position(self.position, position, "position"),
            title=self.title,
            actions=None if self.actions is None else tuple(a.to_draft() for a in self.actions),
        )


class MandalartCreate(_Input):
    """A whole or partial grid."""

    title: Title = Field(description="The core goal, 1–200 characters.")
    description: Description | None = None
    active: StrictBool = True
    sub_goals: list[SubGoalIn] = Field(
        default_factory=list,
        max_length=SLOTS,
        json_schema_extra=_unique_positions_schema("sub-goals"),
    )

    @field_validator("sub_goals")
    @classmethod
    def _unique_positions(cls, value: Any) -> Any:
        return _check_unique_positions(value)

    def to_draft(self) -> MandalartDraft:
        """The domain command."""
        return MandalartDraft(
            title=self.title,
            description=self.description,
            active=self.active,
            sub_goals=tuple(s.to_draft() for s in self.sub_goals),
        )


class MandalartUpdate(_Input):
    """The fields of a grid PATCH changes; a field left out keeps its value."""

    # `left_out()`: a field left out keeps its value, but null is refused (`_not_null`).
    title: Title | None = left_out()
    description: Description | None = Field(default=None, description="null clears it.")
    active: StrictBool | None = left_out()

    @field_validator("title", "active")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        return _refuse_null(value)

    def to_command(self) -> EditMandalart:
        """The domain command (only the fields sent)."""
        sent = self.model_fields_set
        return EditMandalart(
            title=self.title if "title" in sent and self.title is not None else UNSET,
            description=self.description if "description" in sent else UNSET,
            active=self.active if "active" in sent and self.active is not None else UNSET,
        )


DAY_START_PATTERN: Final = r"^((0\d|1[01]):[0-5]\d|12:00)$"
CLOCK_TIME_PATTERN: Final = r"^([01]\d|2[0-3]):[0-5]\d$"
MAX_PAUSES: Final = 50
"""More ranges than two years' 60 paused days each could hold as separate, non-touching dates."""

DayStart = Annotated[
    str,
    StringConstraints(pattern=DAY_START_PATTERN),
    Field(
        description="When the user's day starts (HH:MM, 00:00-12:00): a check-in before it "
        "counts for the day before.",
        examples=["04:00"],
    ),
]
ClockTime = Annotated[
    str,
    StringConstraints(pattern=CLOCK_TIME_PATTERN),
    Field(description="A local wall-clock time HH:MM.", examples=["20:00"]),
]


class QuietHoursIn(_Input):
    """Local hours without notifications; `from` after `to` wraps midnight."""

    from_: ClockTime = Field(alias="from")
    to: ClockTime


class NotificationsIn(_Input):
    """Which notification kinds the user wants; a kind left out keeps its value."""

    daily_reminder: StrictBool | None = left_out()
    streak_at_risk: StrictBool | None = left_out()
    comeback: StrictBool | None = left_out()
    report_ready: StrictBool | None = left_out()
    badge_unlocked: StrictBool | None = left_out()
    level_reached: StrictBool | None = left_out()

    @field_validator("*")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        return _refuse_null(value)

    def sent(self) -> dict[str, bool]:
        """The kinds the caller sent, by name."""
        return {name: bool(getattr(self, name)) for name in self.model_fields_set}


class UserSettingsUpdate(_Input):
    """The settings PUT /v1/me changes; a field left out keeps its value."""

    timezone: Timezone | None = left_out()
    locale: Locale | None = left_out()
    display_name: DisplayName | None = Field(default=None, description="null clears it.")
    day_starts_at: DayStart | None = left_out()
    reminder_time: ClockTime | None = left_out()
    quiet_hours: QuietHoursIn | None = left_out()
    notifications: NotificationsIn | None = left_out()

    @field_validator(
        "timezone", "locale", "day_starts_at", "reminder_time", "quiet_hours", "notifications"
    )
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        return _refuse_null(value)

    def to_command(self) -> ChangeSettings:
        """The domain command (only the fields sent)."""
        sent = self.model_fields_set

        def pick(name: str, value: str | None) -> str | Unset:
            return value if name in sent and value is not None else UNSET

        return ChangeSettings(
            timezone=pick("timezone", self.timezone),
            locale=pick("locale", self.locale),
            display_name=self.display_name if "display_name" in sent else UNSET,
            day_starts_at=pick("day_starts_at", self.day_starts_at),
            reminder_time=pick("reminder_time", self.reminder_time),
            quiet_hours=(
                QuietHours(self.quiet_hours.from_, self.quiet_hours.to)
                if self.quiet_hours is not None
                else UNSET
            ),
            notifications=self.notifications.sent() if self.notifications is not None else UNSET,
        )


PauseReason = Annotated[
    str,
    StringConstraints(max_length=PAUSE_REASON_MAX_LENGTH),
    AfterValidator(_empty_to_none),
    Field(description="Why (up to 200 characters; blank means none)."),
]


class PauseIn(_Input):
    """A vacation pause: local dates `from`..`to`, both included (at most 30 days)."""

    from_: IsoDate = Field(alias="from")
    to: IsoDate
    reason: PauseReason | None = None

    def to_domain(self) -> Pause:
        """The domain pause."""
        return Pause(self.from_, self.to, self.reason)


class PausesPut(_Input):
    """The whole list of the caller's pauses (it replaces the stored one)."""

    items: list[PauseIn] = Field(max_length=MAX_PAUSES)

    def to_domain(self) -> list[Pause]:
        """The domain pauses."""
        return [item.to_domain() for item in self.items]


# --- outputs -----------------------------------------------------------------------------------


class ScheduleOut(BaseModel):
    """A routine's schedule."""

    frequency: Literal["daily", "weekly", "monthly"]
    days: list[Weekday] | None
    times: int | None


class ActionPublic(BaseModel):
    """An action with its stable id and the owner's local date it was added."""

    id: str
    position: int
    title: str
    type: ActionType
    schedule: ScheduleOut | None
    due_date: date | None
    added_on: date

    @classmethod
    def from_domain(cls, action: Action) -> ActionPublic:
        """The public form of an action."""
        schedule = None
        if action.schedule is not None:
            schedule = ScheduleOut(
                frequency=action.schedule.frequency,
                days=action.schedule.day_codes(),
                times=action.schedule.times,
            )
        return cls(
            id=action.id,
            position=action.position,
            title=action.title,
            type=action.type,
            schedule=schedule,
            due_date=action.due_date,
            added_on=action.added_on,
        )


class SubGoalPublic(BaseModel):
    """A sub-goal with its actions in position order."""

    position: int
    title: str
    actions: list[ActionPublic]

    @classmethod
    def from_domain(cls, sub_goal: SubGoal) -> SubGoalPublic:
        """The public form of a sub-goal."""
        return cls(
            position=sub_goal.position,
            title=sub_goal.title,
            actions=[ActionPublic.from_domain(a) for a in sub_goal.actions],
        )


class MandalartPublic(BaseModel):
    """A grid in nested form."""

    id: str
    title: str
    description: str | None
    active: bool
    version: int
    created_at: datetime
    updated_at: datetime
    sub_goals: list[SubGoalPublic]

    @classmethod
    def fields_of(cls, grid: Mandalart) -> dict[str, Any]:
        """The nested fields of a grid."""
        return {
            "id": grid.id,
            "title": grid.title,
            "description": grid.description,
            "active": grid.active,
            "version": grid.version,
            "created_at": grid.created_at,
            "updated_at": grid.updated_at,
            "sub_goals": [SubGoalPublic.from_domain(s) for s in grid.sub_goals],
        }

    @classmethod
    def from_domain(cls, grid: Mandalart) -> MandalartPublic:
        """The public nested form of a grid."""
        return cls(**cls.fields_of(grid))


class GridCellPublic(BaseModel):
    """A filled cell of the 9×9 grid: the core goal, a sub-goal or an action."""

    kind: Literal["core", "sub_goal", "action"]
    title: str
    sub_goal_position: int | None
    action_position: int | None
    action_id: str | None
    action_type: ActionType | None

    @classmethod
    def from_domain(cls, cell: Cell | None) -> GridCellPublic | None:
        """The public form of a cell (None stays an empty cell)."""
        if cell is None:
            return None
        return cls(
            kind=cell.kind,
            title=cell.title,
            sub_goal_position=cell.sub_goal_position,
            action_position=cell.action_position,
            action_id=cell.action_id,
            action_type=cell.action_type,
        )


class MandalartDetail(MandalartPublic):
    """A grid in nested form plus `grid`, the 9×9 matrix a client draws as is."""

    grid: list[list[GridCellPublic | None]] = Field(
        description=(
            "9 rows of 9 cells, top to bottom, left to right; null = empty. The centre 3×3 block"
            " holds the core goal in its centre and sub-goal p around it; the block in sub-goal"
            " p's place holds sub-goal p in its centre and its action a around it. Place p (or a)"
            " in a 3×3 block, reading order skipping the centre: 1 2 3 / 4 · 5 / 6 7 8."
        )
    )

    @classmethod
    def from_domain(cls, grid: Mandalart) -> MandalartDetail:
        """The public nested form of a grid with its 9×9 layout."""
        layout = [[GridCellPublic.from_domain(c) for c in row] for row in grid_layout(grid)]
        return cls(**cls.fields_of(grid), grid=layout)


class MandalartPage(BaseModel):
    """One page of the caller's grids, newest first."""

    items: list[MandalartPublic]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null = end.")


class UserSettingsPublic(BaseModel):
    """The caller's settings (the defaults until first saved, at version 0)."""

    user_id: str
    timezone: str
    locale: Locale
    display_name: str | None
    version: int
    day_starts_at: str
    reminder_time: str
    quiet_hours: QuietHoursOut
    notifications: NotificationsOut

    @classmethod
    def from_domain(cls, settings: UserSettings) -> UserSettingsPublic:
        """The public form of settings."""
        quiet = settings.quiet_hours
        return cls(
            user_id=settings.owner.user_id,
            timezone=settings.timezone,
            locale=settings.locale,
            display_name=settings.display_name,
            version=settings.version,
            day_starts_at=settings.day_starts_at,
            reminder_time=settings.reminder_time,
            quiet_hours=QuietHoursOut.model_validate({"from": quiet.start, "to": quiet.end}),
            notifications=NotificationsOut.from_domain(settings.notifications),
        )


class QuietHoursOut(BaseModel):
    """Local hours without notifications."""

    model_config = ConfigDict(serialize_by_alias=True, validate_by_name=True)

    from_: str = Field(alias="from")
    to: str


class NotificationsOut(BaseModel):
    """Which notification kinds the user wants."""

    daily_reminder: bool
    streak_at_risk: bool
    comeback: bool
    report_ready: bool
    badge_unlocked: bool
    level_reached: bool

    @classmethod
    def from_domain(cls, prefs: NotificationPrefs) -> NotificationsOut:
        """The public form."""
        return cls(**dataclasses.asdict(prefs))


class PauseOut(BaseModel):
    """A stored vacation pause."""

    model_config = ConfigDict(serialize_by_alias=True, validate_by_name=True)

    from_: date = Field(alias="from")
    to: date
    reason: str | None


class PausesPublic(BaseModel):
    """The caller's pauses, oldest first, and the settings version they belong to."""

    items: list[PauseOut]
    version: int

    @classmethod
    def from_domain(cls, settings: UserSettings) -> PausesPublic:
        """The public form of a user's pauses."""
        return cls(
            items=[PauseOut(from_=p.start, to=p.end, reason=p.reason) for p in settings.pauses],
            version=settings.version,
        )


class DeletionPublic(BaseModel):
    """A deletion (SPEC §9): `complete` once every service has erased its documents."""

    status: Literal["pending", "complete"]
    scope: Literal["user", "tenant"]
    requested_at: datetime
    completed_at: datetime | None
    services: dict[str, datetime | None] = Field(
        description="Each service that holds users' data: when it erased them (null: not yet)."
    )

    @classmethod
    def from_domain(cls, deletion: Deletion) -> DeletionPublic:
        """The public form of a deletion record."""
        return cls(
            status=deletion.status,
            scope=deletion.scope,
            requested_at=deletion.requested_at,
            completed_at=deletion.completed_at,
            services=dict(deletion.services),
        )
