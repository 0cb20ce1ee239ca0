"""The Mandalart aggregate and a user's settings: pure rules, no I/O.

A mandalart (grid) has a core goal (its title), up to 8 sub-goals at positions 1–8 and up to 8
actions at positions 1–8 under each. Every change returns a new aggregate with `version` bumped;
a change that changes nothing returns the same aggregate (same version, no event).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import Enum
from types import MappingProxyType
from typing import Final, Literal, TypeGuard, get_args

from goals.domain.errors import (
    GridLimitReached,
    InvalidInput,
    NotFound,
    PauseNotAllowed,
    VersionMismatch,
)
from mandaact_common.clock import NewId
from mandaact_common.domain.calendar import (
    DEFAULT_DAY_START,
    DEFAULT_TIMEZONE,
    day_start_offset,
    is_valid_timezone,
)
from mandaact_common.domain.owner import Owner as Owner
from mandaact_common.domain.pauses import Pause
from mandaact_common.domain.schedule import Action as DueRuleAction
from mandaact_common.domain.schedule import ActionType, Schedule, shape_fault
from mandaact_common.paging import decode_cursor, encode_cursor
from mandaact_contracts.events import (
    ActionSnapshot,
    GoalChanged,
    MandalartSnapshot,
    NotificationSettingsSnapshot,
    PauseSnapshot,
    QuietHoursSnapshot,
    ScheduleSnapshot,
    SubGoalSnapshot,
    UserChanged,
)

TITLE_MAX_LENGTH: Final = 200
DESCRIPTION_MAX_LENGTH: Final = 2000
DISPLAY_NAME_MAX_LENGTH: Final = 100
MAX_GRIDS_PER_USER: Final = 20
"""Live (not deleted) grids one user may own (SPEC §11); paused grids count, deleted do not."""
SLOTS: Final = 8
"""Sub-goals per grid and actions per sub-goal."""
POSITIONS: Final = range(1, SLOTS + 1)

DEFAULT_LOCALE: Final = "ko"
Locale = Literal["ko", "en"]
LOCALES: Final[tuple[str, ...]] = get_args(Locale)


class Unset(Enum):
    """Marks an edit field the caller did not send (an explicit null means something else)."""

    UNSET = "unset"


UNSET: Final = Unset.UNSET


# --- text and position rules -------------------------------------------------------------------


def clean_title(value: str, field: str) -> str:
    """Return the stripped title, or raise InvalidInput unless it has 1–200 characters."""
    text = value.strip()
    if not text:
        raise InvalidInput(field, "must not be empty (whitespace only counts as empty)")
    if len(text) > TITLE_MAX_LENGTH:
        raise InvalidInput(field, f"must have at most {TITLE_MAX_LENGTH} characters")
    return text


def clean_optional_text(value: str | None, field: str, max_length: int) -> str | None:
    """Return the stripped text (None when empty), or raise InvalidInput when too long."""
    if value is None:
        return None
    text = value.strip()
    if len(text) > max_length:
        raise InvalidInput(field, f"must have at most {max_length} characters")
    return text or None


def check_position(position: int, field: str) -> int:
    """Return the position, or raise InvalidInput unless it is 1–8."""
    if position not in POSITIONS:
        raise InvalidInput(field, f"must be between 1 and {SLOTS}, got {position}")
    return position


def _check_unique_positions(positions: Iterable[int], field: str) -> None:
    seen: set[int] = set()
    for position in positions:
        if position in seen:
            raise InvalidInput(field, f"position {position} appears more than once")
        seen.add(position)


# --- commands ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ActionDraft:
    """An action as the caller writes it (id and added_on are the aggregate's business)."""

    position: int
    title: str
    type: ActionType
    schedule: Schedule | None = None
    due_date: date | None = None


@dataclass(frozen=True, slots=True)
class SubGoalDraft:
    """A sub-goal as the caller writes it; `actions=None` keeps the actions it already has."""

    position: int
    title: str
    actions: tuple[ActionDraft, ...] | None = None


@dataclass(frozen=True, slots=True)
class MandalartDraft:
    """A whole or partial grid as the caller writes it."""

    title: str
    description: str | None = None
    active: bool = True
    sub_goals: tuple[SubGoalDraft, ...] = ()


@dataclass(frozen=True, slots=True)
class IfMatch:
    """An If-Match precondition: the versions the caller accepts, or any version (`*`)."""

    versions: frozenset[int] = frozenset()
    any_version: bool = False

    def check(self, current: int) -> None:
        """Raise VersionMismatch unless the current version is one the caller accepts."""
        if not (self.any_version or current in self.versions):
            raise VersionMismatch(current)


def check_precondition(if_match: IfMatch | None, current: int) -> None:
    """No precondition means unconditional; otherwise the current version must match."""
    if if_match is not None:
        if_match.check(current)


# --- the aggregate -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Action:
    """An action of a sub-goal; `id` and `added_on` never change once it exists."""

    id: str
    position: int
    title: str
    type: ActionType
    schedule: Schedule | None
    due_date: date | None
    added_on: date

    @property
    def rule(self) -> DueRuleAction:
        """The action as the shared due rules see it."""
        return DueRuleAction(self.id, self.type, self.schedule, self.added_on, self.due_date)

    def snapshot(self) -> ActionSnapshot:
        """The action as `goal.changed` carries it."""
        schedule = None
        if self.schedule is not None:
            schedule = ScheduleSnapshot(
                frequency=self.schedule.frequency,
                days=self.schedule.day_codes(),
                times=self.schedule.times,
            )
        return ActionSnapshot(
            id=self.id,
            position=self.position,
            title=self.title,
            type=self.type,
            schedule=schedule,
            due_date=self.due_date,
            added_on=self.added_on,
        )


@dataclass(frozen=True, slots=True)
class SubGoal:
    """A sub-goal with its actions, ordered by position."""

    position: int
    title: str
    actions: tuple[Action, ...] = ()

    def action(self, position: int) -> Action | None:
        """The action at `position`, if any."""
        return next((a for a in self.actions if a.position == position), None)

    def snapshot(self) -> SubGoalSnapshot:
        """The sub-goal as `goal.changed` carries it."""
        return SubGoalSnapshot(
            position=self.position,
            title=self.title,
            actions=[a.snapshot() for a in self.actions],
        )


def _build_action(
    draft: ActionDraft, existing: Action | None, field: str, today: date, new_id: NewId
) -> Action:
    check_position(draft.position, f"{field}.position")
    title = clean_title(draft.title, f"{field}.title")
    fault = shape_fault(draft.type, draft.schedule is not None, draft.due_date is not None)
    if fault is not None:
        raise InvalidInput(f"{field}.{fault[0]}", f"a {draft.type} {fault[1]}")
    # The id and the date it was added survive every edit at the same position.
    return Action(
        id=existing.id if existing else new_id(),
        position=draft.position,
        title=title,
        type=draft.type,
        schedule=draft.schedule,
        due_date=draft.due_date,
        added_on=existing.added_on if existing else today,
    )


def _build_actions(
    drafts: tuple[ActionDraft, ...],
    existing: SubGoal | None,
    field: str,
    today: date,
    new_id: NewId,
) -> tuple[Action, ...]:
    if len(drafts) > SLOTS:
        raise InvalidInput(field, f"a sub-goal has at most {SLOTS} actions, got {len(drafts)}")
    _check_unique_positions((d.position for d in drafts), field)
    actions = [
        _build_action(
            draft,
            existing.action(draft.position) if existing else None,
            f"{field}.{index}",
            today,
            new_id,
        )
        for index, draft in enumerate(drafts)
    ]
    return tuple(sorted(actions, key=lambda a: a.position))


def _build_sub_goal(
    draft: SubGoalDraft, existing: SubGoal | None, field: str, today: date, new_id: NewId
) -> SubGoal:
    prefix = f"{field}." if field else ""
    check_position(draft.position, f"{prefix}position")
    title = clean_title(draft.title, f"{prefix}title")
    if draft.actions is None:
        actions = existing.actions if existing else ()
    else:
        actions = _build_actions(draft.actions, existing, f"{prefix}actions", today, new_id)
    return SubGoal(position=draft.position, title=title, actions=actions)


@dataclass(frozen=True, slots=True)
class Mandalart:
    """A grid: the core goal (title), its sub-goals and their actions, at a version."""

    id: str
    owner: Owner
    title: str
    description: str | None
    active: bool
    version: int
    sub_goals: tuple[SubGoal, ...]
    created_at: datetime
    updated_at: datetime
    deleted: bool = False

    @classmethod
    def create(
        cls,
        mandalart_id: str,
        owner: Owner,
        draft: MandalartDraft,
        *,
        today: date,
        now: datetime,
        new_id: NewId,
    ) -> Mandalart:
        """A new grid at version 1; `today` is the owner's local date (the actions' added_on)."""
        title = clean_title(draft.title, "title")
        description = clean_optional_text(draft.description, "description", DESCRIPTION_MAX_LENGTH)
        if len(draft.sub_goals) > SLOTS:
            raise InvalidInput("sub_goals", f"a grid has at most {SLOTS} sub-goals")
        _check_unique_positions((s.position for s in draft.sub_goals), "sub_goals")
        sub_goals = [
            _build_sub_goal(s, None, f"sub_goals.{i}", today, new_id)
            for i, s in enumerate(draft.sub_goals)
        ]
        return cls(
            id=mandalart_id,
            owner=owner,
            title=title,
            description=description,
            active=draft.active,
            version=1,
            sub_goals=tuple(sorted(sub_goals, key=lambda s: s.position)),
            created_at=now,
            updated_at=now,
        )

    def sub_goal(self, position: int) -> SubGoal | None:
        """The sub-goal at `position`, if any."""
        return next((s for s in self.sub_goals if s.position == position), None)

    def actions(self) -> list[tuple[SubGoal, Action]]:
        """Every action with its sub-goal, in grid order."""
        return [(s, a) for s in self.sub_goals for a in s.actions]

    def _changed(self, now: datetime, **changes: object) -> Mandalart:
        candidate = dataclasses.replace(self, **changes)  # type: ignore[arg-type]
        if candidate == self:
            return self
        return dataclasses.replace(candidate, version=self.version + 1, updated_at=now)

    def edit(
        self,
        *,
        title: str | Unset = UNSET,
        description: str | Unset | None = UNSET,
        active: bool | Unset = UNSET,
        now: datetime,
    ) -> Mandalart:
        """Change the title, description or active flag (only the fields given)."""
        changes: dict[str, object] = {}
        if not isinstance(title, Unset):
            changes["title"] = clean_title(title, "title")
        if not isinstance(description, Unset):
            changes["description"] = clean_optional_text(
                description, "description", DESCRIPTION_MAX_LENGTH
            )
        if not isinstance(active, Unset):
            changes["active"] = active
        return self._changed(now, **changes)

    def put_sub_goal(
        self, draft: SubGoalDraft, *, today: date, now: datetime, new_id: NewId
    ) -> Mandalart:
        """Create or replace the sub-goal at a position; actions keep their ids by position."""
        existing = self.sub_goal(draft.position)
        sub_goal = _build_sub_goal(draft, existing, "", today, new_id)
        others = [s for s in self.sub_goals if s.position != draft.position]
        return self._changed(
            now, sub_goals=tuple(sorted([*others, sub_goal], key=lambda s: s.position))
        )

    def _existing_sub_goal(self, position: int) -> SubGoal:
        check_position(position, "sub_goal_position")
        sub_goal = self.sub_goal(position)
        if sub_goal is None:
            raise NotFound(f"this mandalart has no sub-goal at position {position}")
        return sub_goal

    def _with_sub_goal(self, sub_goal: SubGoal, now: datetime) -> Mandalart:
        replaced = tuple(sub_goal if s.position == sub_goal.position else s for s in self.sub_goals)
        return self._changed(now, sub_goals=replaced)

    def put_action(
        self,
        sub_goal_position: int,
        draft: ActionDraft,
        *,
        today: date,
        now: datetime,
        new_id: NewId,
    ) -> Mandalart:
        """Create or replace the action at a position of an existing sub-goal (keeps its id)."""
        sub_goal = self._existing_sub_goal(sub_goal_position)
        action = _build_action(draft, sub_goal.action(draft.position), "", today, new_id)
        others = [a for a in sub_goal.actions if a.position != draft.position]
        actions = tuple(sorted([*others, action], key=lambda a: a.position))
        return self._with_sub_goal(dataclasses.replace(sub_goal, actions=actions), now)

    def remove_action(
        self, sub_goal_position: int, action_position: int, *, now: datetime
    ) -> Mandalart:
        """Remove the action at a position; NotFound when there is none."""
        sub_goal = self._existing_sub_goal(sub_goal_position)
        check_position(action_position, "action_position")
        if sub_goal.action(action_position) is None:
            raise NotFound(
                f"sub-goal {sub_goal_position} has no action at position {action_position}"
            )
        actions = tuple(a for a in sub_goal.actions if a.position != action_position)
        return self._with_sub_goal(dataclasses.replace(sub_goal, actions=actions), now)

    def archive(self, *, now: datetime) -> Mandalart:
        """Delete the grid for its owner (it is kept, marked deleted, and leaves every list)."""
        return self._changed(now, deleted=True)

    def snapshot(self) -> MandalartSnapshot:
        """The whole grid as `goal.changed` carries it."""
        return MandalartSnapshot(
            id=self.id,
            title=self.title,
            description=self.description,
            active=self.active,
            deleted=self.deleted,
            version=self.version,
            sub_goals=[s.snapshot() for s in self.sub_goals],
            created_at=self.created_at,
            updated_at=self.updated_at,
        )

    def changed_event(self, timezone: str) -> GoalChanged:
        """The `goal.changed` event for this state; `timezone` is the owner's at the change."""
        return GoalChanged(
            tenant_id=self.owner.tenant_id,
            user_id=self.owner.user_id,
            mandalart=self.snapshot(),
            timezone=timezone,
        )


# --- the 9×9 layout ----------------------------------------------------------------------------

CellKind = Literal["core", "sub_goal", "action"]

BLOCK_OFFSETS: Final[Mapping[int, tuple[int, int]]] = MappingProxyType(
    {1: (0, 0), 2: (0, 1), 3: (0, 2), 4: (1, 0), 5: (1, 2), 6: (2, 0), 7: (2, 1), 8: (2, 2)}
)
"""Where position 1–8 sits in a 3×3 block (row, column): reading order, skipping the centre."""
CENTRE: Final = (1, 1)


@dataclass(frozen=True, slots=True)
class Cell:
    """One filled cell of the 9×9 grid."""

    kind: CellKind
    title: str
    sub_goal_position: int | None = None
    action_position: int | None = None
    action_id: str | None = None
    action_type: ActionType | None = None


def grid_layout(mandalart: Mandalart) -> list[list[Cell | None]]:
    """The 9×9 matrix a client draws as is (rows top to bottom; None = empty cell).

    The matrix is 3×3 blocks of 3×3 cells. The centre block holds the core goal in its centre
    and sub-goal p at BLOCK_OFFSETS[p]; the block at BLOCK_OFFSETS[p] holds sub-goal p again in
    its centre and its action a at BLOCK_OFFSETS[a].
    """
    cells: list[list[Cell | None]] = [[None] * 9 for _ in range(9)]

    def place(block: tuple[int, int], offset: tuple[int, int], cell: Cell) -> None:
        cells[block[0] * 3 + offset[0]][block[1] * 3 + offset[1]] = cell

    place(CENTRE, CENTRE, Cell(kind="core", title=mandalart.title))
    for sub_goal in mandalart.sub_goals:
        block = BLOCK_OFFSETS[sub_goal.position]
        sub_cell = Cell(kind="sub_goal", title=sub_goal.title, sub_goal_position=sub_goal.position)
        place(CENTRE, block, sub_cell)
        place(block, CENTRE, sub_cell)
        for action in sub_goal.actions:
            place(
                block,
                BLOCK_OFFSETS[action.position],
                Cell(
                    kind="action",
                    title=action.title,
                    sub_goal_position=sub_goal.position,
                    action_position=action.position,
                    action_id=action.id,
                    action_type=action.type,
                ),
            )
    return cells


def ensure_room_for_grid(live_grids: int) -> None:
    """A user may create a grid only while they own fewer than MAX_GRIDS_PER_USER live ones."""
    if live_grids >= MAX_GRIDS_PER_USER:
        raise GridLimitReached(
            f"a user owns at most {MAX_GRIDS_PER_USER} grids and you have {live_grids};"
            " delete one to create another",
            facts={"limit": MAX_GRIDS_PER_USER, "count": live_grids},
        )


# --- listing -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PageCursor:
    """Where the next page of a newest-first list starts: after this (created_at, id)."""

    created_at: datetime
    id: str

    @classmethod
    def after(cls, mandalart: Mandalart) -> PageCursor:
        """The cursor that continues after `mandalart`."""
        return cls(mandalart.created_at, mandalart.id)

    def encode(self) -> str:
        """An opaque, URL-safe token."""
        return encode_cursor(int(self.created_at.timestamp() * 1000), self.id)

    @classmethod
    def decode(cls, token: str, field: str = "cursor") -> PageCursor:
        """Read a token made by `encode`, or raise InvalidInput naming `field`."""
        millis, mandalart_id = decode_cursor(token, (int, str), field)
        try:
            created_at = datetime.fromtimestamp(int(millis) / 1000, UTC)
        except (ValueError, OverflowError, OSError):
            raise InvalidInput(field, "is not a cursor this API returned") from None
        return cls(created_at, str(mandalart_id))


# --- user settings -----------------------------------------------------------------------------


def _is_locale(value: str) -> TypeGuard[Locale]:
    return value in LOCALES


DEFAULT_REMINDER_TIME: Final = "20:00"
MAX_PAUSE_DAYS: Final = 30
"""The longest one pause may be (dates, both ends included)."""
MAX_PAUSED_DAYS_PER_YEAR: Final = 60
PAUSE_REASON_MAX_LENGTH: Final = 200
PAUSES_KEPT_FROM_YEARS_BACK: Final = 1
"""A stored list keeps pauses that end in this calendar year or the one before (bounded)."""


def _check_clock_time(value: str, field: str) -> str:
    hours, sep, minutes = value.partition(":")
    if not (sep and len(hours) == len(minutes) == 2 and hours.isdigit() and minutes.isdigit()):
        raise InvalidInput(field, f"must be HH:MM, got {value!r}")
    if int(hours) > 23 or int(minutes) > 59:
        raise InvalidInput(field, f"must be a time of day 00:00-23:59, got {value!r}")
    return value


def _check_day_start(value: str) -> str:
    try:
        day_start_offset(value)
    except ValueError:
        message = f"must be HH:MM from 00:00 to 12:00, got {value!r}"
        raise InvalidInput("day_starts_at", message) from None
    return value


@dataclass(frozen=True, slots=True)
class QuietHours:
    """Local wall-clock hours without notifications, `start` to `end` (may wrap midnight)."""

    start: str = "22:00"
    end: str = "08:00"

    def __post_init__(self) -> None:
        _check_clock_time(self.start, "quiet_hours.from")
        _check_clock_time(self.end, "quiet_hours.to")


@dataclass(frozen=True, slots=True)
class NotificationPrefs:
    """Which notification kinds a user wants (SPEC §8); all of them by default."""

    daily_reminder: bool = True
    streak_at_risk: bool = True
    comeback: bool = True
    report_ready: bool = True
    badge_unlocked: bool = True
    level_reached: bool = True


def check_pauses(
    pauses: Iterable[Pause], *, stored: Iterable[Pause], today: date
) -> tuple[Pause, ...]:
    """Return `pauses` sorted, refusing a list that breaks a rule of SPEC §6.

    Each range is at most 30 dates and ranges do not overlap; no calendar year has more than 60
    paused dates; and the dates before yesterday are history: the new list must pause exactly
    the dates before yesterday the stored list paused (a pause that is under way may be ended
    early, not moved into the past).
    """
    ordered = tuple(sorted(pauses, key=lambda p: (p.start, p.end)))
    for index, pause in enumerate(ordered):
        field = f"items.{index}"
        if pause.end < pause.start:
            raise PauseNotAllowed(field, f"'to' {pause.end} is before 'from' {pause.start}")
        if pause.days > MAX_PAUSE_DAYS:
            raise PauseNotAllowed(field, f"a pause is at most {MAX_PAUSE_DAYS} days ({pause.days})")
        if index and ordered[index - 1].end >= pause.start:
            previous = ordered[index - 1]
            raise PauseNotAllowed(
                field, f"{pause.start}..{pause.end} overlaps {previous.start}..{previous.end}"
            )
    per_year: dict[int, int] = {}
    for pause in ordered:
        for offset in range(pause.days):
            year = (pause.start + timedelta(days=offset)).year
            per_year[year] = per_year.get(year, 0) + 1
    for year, days in sorted(per_year.items()):
        if days > MAX_PAUSED_DAYS_PER_YEAR:
            raise PauseNotAllowed(
                "items", f"{days} paused days in {year}; at most {MAX_PAUSED_DAYS_PER_YEAR} a year"
            )
    yesterday = today - timedelta(days=1)
    if _dates_before(ordered, yesterday) != _dates_before(stored, yesterday):
        raise PauseNotAllowed(
            "items", f"dates before yesterday ({yesterday}) cannot be paused or unpaused"
        )
    return ordered


def _dates_before(pauses: Iterable[Pause], limit: date) -> set[date]:
    dates: set[date] = set()
    for pause in pauses:
        last = min(pause.end, limit - timedelta(days=1))
        for offset in range((last - pause.start).days + 1):
            dates.add(pause.start + timedelta(days=offset))
    return dates


def _kept_pauses(pauses: tuple[Pause, ...], today: date) -> tuple[Pause, ...]:
    first_kept_year = today.year - PAUSES_KEPT_FROM_YEARS_BACK
    return tuple(p for p in pauses if p.end.year >= first_kept_year)


@dataclass(frozen=True, slots=True)
class UserSettings:
    """A user's settings; version 0 means never stored (the defaults apply)."""

    owner: Owner
    timezone: str = DEFAULT_TIMEZONE
    locale: Locale = DEFAULT_LOCALE
    display_name: str | None = None
    version: int = 0
    updated_at: datetime | None = None
    day_starts_at: str = DEFAULT_DAY_START
    reminder_time: str = DEFAULT_REMINDER_TIME
    quiet_hours: QuietHours = QuietHours()
    notifications: NotificationPrefs = NotificationPrefs()
    pauses: tuple[Pause, ...] = ()

    def change(
        self,
        *,
        timezone: str | Unset = UNSET,
        locale: str | Unset = UNSET,
        display_name: str | Unset | None = UNSET,
        day_starts_at: str | Unset = UNSET,
        reminder_time: str | Unset = UNSET,
        quiet_hours: QuietHours | Unset = UNSET,
        notifications: Mapping[str, bool] | Unset = UNSET,
        now: datetime,
    ) -> UserSettings:
        """Apply the given fields; the first save, or any real change, bumps the version."""
        candidate = self
        if not isinstance(timezone, Unset):
            if not is_valid_timezone(timezone):
                raise InvalidInput("timezone", f"{timezone!r} is not an IANA timezone name")
            candidate = dataclasses.replace(candidate, timezone=timezone)
        if not isinstance(locale, Unset):
            if not _is_locale(locale):
                raise InvalidInput("locale", f"must be one of {', '.join(LOCALES)}")
            candidate = dataclasses.replace(candidate, locale=locale)
        if not isinstance(display_name, Unset):
            name = clean_optional_text(display_name, "display_name", DISPLAY_NAME_MAX_LENGTH)
            candidate = dataclasses.replace(candidate, display_name=name)
        if not isinstance(day_starts_at, Unset):
            candidate = dataclasses.replace(
                candidate, day_starts_at=_check_day_start(day_starts_at)
            )
        if not isinstance(reminder_time, Unset):
            reminder = _check_clock_time(reminder_time, "reminder_time")
            candidate = dataclasses.replace(candidate, reminder_time=reminder)
        if not isinstance(quiet_hours, Unset):
            candidate = dataclasses.replace(candidate, quiet_hours=quiet_hours)
        if not isinstance(notifications, Unset):
            prefs = dataclasses.replace(candidate.notifications, **notifications)
            candidate = dataclasses.replace(candidate, notifications=prefs)
        return self._saved(candidate, now)

    def with_pauses(self, pauses: Iterable[Pause], *, today: date, now: datetime) -> UserSettings:
        """Replace the pauses (checked against the rules and the stored history)."""
        # Pauses that ended before last year are dropped (bounded), from both lists alike.
        wanted = _kept_pauses(tuple(pauses), today)
        checked = check_pauses(wanted, stored=_kept_pauses(self.pauses, today), today=today)
        return self._saved(dataclasses.replace(self, pauses=checked), now)

    def _saved(self, candidate: UserSettings, now: datetime) -> UserSettings:
        if candidate == self and self.version > 0:
            return self
        return dataclasses.replace(candidate, version=self.version + 1, updated_at=now)

    def changed_event(self) -> UserChanged:
        """The `user.changed` event for this state."""
        assert self.updated_at is not None, "only stored settings are announced"
        quiet = self.quiet_hours
        return UserChanged(
            tenant_id=self.owner.tenant_id,
            user_id=self.owner.user_id,
            version=self.version,
            timezone=self.timezone,
            locale=self.locale,
            display_name=self.display_name,
            changed_at=self.updated_at,
            day_starts_at=self.day_starts_at,
            pauses=[
                PauseSnapshot.model_validate({"from": p.start, "to": p.end, "reason": p.reason})
                for p in self.pauses
            ],
            reminder_time=self.reminder_time,
            quiet_hours=QuietHoursSnapshot.model_validate({"from": quiet.start, "to": quiet.end}),
            notifications=NotificationSettingsSnapshot(**dataclasses.asdict(self.notifications)),
        )
