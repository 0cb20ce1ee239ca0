"""Request and response bodies of the goals API (pydantic), and their mapping to the domain.

Inputs forbid unknown fields and take numbers, booleans and dates only in their JSON types
(no "1" for 1, no 0 for a date), so every wrong input is a 422 that names its field.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from goals.domain.errors import InvalidInput
from goals.domain.model import (
    DESCRIPTION_MAX_LENGTH,
    DISPLAY_NAME_MAX_LENGTH,
    SLOTS,
    TITLE_MAX_LENGTH,
    UNSET,
    Action,
    ActionDraft,
    Cell,
    Mandalart,
    MandalartDraft,
    SubGoal,
    SubGoalDraft,
    Unset,
    UserSettings,
    grid_layout,
)
from goals.service import ChangeSettings, EditMandalart
from mandaact_common.domain.calendar import is_valid_timezone
from mandaact_common.domain.schedule import InvalidSchedule, Schedule, shape_fault

ActionType = Literal["routine", "mission", "reference"]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
Locale = Literal["ko", "en"]


def _empty_to_none(value: str | None) -> str | None:
    return value or None


def _iana(value: str) -> str:
    if not is_valid_timezone(value):
        raise ValueError(f"{value!r} is not an IANA timezone name (e.g. Asia/Seoul)")
    return value


def _iso_date_text(value: Any) -> Any:
    # A number is not a date, although pydantic would read it as a Unix timestamp.
    if not isinstance(value, str | date):
        raise ValueError("must be a date as text, YYYY-MM-DD")
    return value


Title = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=TITLE_MAX_LENGTH),
    Field(description="1–200 characters; surrounding whitespace is dropped."),
]
Description = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=DESCRIPTION_MAX_LENGTH),
    AfterValidator(_empty_to_none),
    Field(description="Up to 2000 characters; empty means none."),
]
DisplayName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=DISPLAY_NAME_MAX_LENGTH),
    AfterValidator(_empty_to_none),
    Field(description="Up to 100 characters; empty means none."),
]
Timezone = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64),
    AfterValidator(_iana),
    Field(description="IANA timezone name.", examples=["Asia/Seoul"]),
]
Position = Annotated[StrictInt, Field(ge=1, le=SLOTS, description="Position 1–8.")]
IsoDate = Annotated[date, BeforeValidator(_iso_date_text)]


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


class ScheduleIn(_Input):
    """When a routine is due: `daily`; `weekly` on `days` or `times` a week; `monthly` `times`."""

    frequency: Literal["daily", "weekly", "monthly"]
    days: list[Weekday] | None = Field(default=None, min_length=1, max_length=7)
    times: StrictInt | None = Field(default=None, ge=1, le=31)

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


class _ActionFields(_Input):
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
    actions: list[ActionIn] = Field(default_factory=list, max_length=SLOTS)

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
    actions: list[ActionIn] | None = Field(default=None, max_length=SLOTS)

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
    sub_goals: list[SubGoalIn] = Field(default_factory=list, max_length=SLOTS)

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

    title: Title | None = None
    description: Description | None = Field(default=None, description="null clears it.")
    active: StrictBool | None = None

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


class UserSettingsUpdate(_Input):
    """The settings PUT /v1/me changes; a field left out keeps its value."""

    timezone: Timezone | None = None
    locale: Locale | None = None
    display_name: DisplayName | None = Field(default=None, description="null clears it.")

    @field_validator("timezone", "locale")
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
        )


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

    @classmethod
    def from_domain(cls, settings: UserSettings) -> UserSettingsPublic:
        """The public form of settings."""
        return cls(
            user_id=settings.owner.user_id,
            timezone=settings.timezone,
            locale=settings.locale,
            display_name=settings.display_name,
            version=settings.version,
        )
