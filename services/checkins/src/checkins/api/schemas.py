"""Request parameters and response bodies of the checkins API (pydantic), mapped from the domain.

Dates are taken only as `YYYY-MM-DD` text (no Unix timestamps, no times), so every wrong input
is a 422 problem that names its parameter.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Final, Literal, Self

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from checkins.domain.model import (
    EARLIEST_DATE,
    LATEST_DATE,
    ChecklistEntry,
    DayChecklist,
    DaySlot,
    GridAction,
)
from checkins.service import CheckinRange
from mandaact_common.wire import date_schema, date_text

CheckableType = Literal["routine", "mission"]

DATE_PATTERN: Final = r"^(19[7-9][0-9]|2[0-9]{3})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"
"""Dates of years 1970–2999 as YYYY-MM-DD (`EARLIEST_DATE`..`LATEST_DATE`)."""


def _in_bounds(value: date) -> date:
    if not EARLIEST_DATE <= value <= LATEST_DATE:
        raise ValueError(f"must be between {EARLIEST_DATE} and {LATEST_DATE}")
    return value


IsoDate = Annotated[
    date,
    BeforeValidator(date_text),
    AfterValidator(_in_bounds),
    date_schema(DATE_PATTERN, "A local calendar date, YYYY-MM-DD, from 1970 to 2999."),
]


def _checkable(action: GridAction) -> CheckableType:
    # Only routines and missions are ever on a checklist or checked.
    return "mission" if action.type == "mission" else "routine"


class ChecklistItemPublic(BaseModel):
    """A due action and whether it is done that day."""

    action_id: str
    mandalart_id: str
    sub_goal_position: int = Field(ge=1, le=8)
    title: str
    type: CheckableType
    done: bool

    @classmethod
    def from_domain(cls, entry: ChecklistEntry) -> Self:
        """The public form of a checklist entry."""
        action = entry.action
        return cls(
            action_id=action.id,
            mandalart_id=action.mandalart_id,
            sub_goal_position=action.sub_goal_position,
            title=action.title,
            type=_checkable(action),
            done=entry.done,
        )


class ChecklistPublic(BaseModel):
    """A local date's checklist: due actions with done flags, and the day's counts."""

    date: date
    items: list[ChecklistItemPublic]
    due_count: int = Field(ge=0)
    done_count: int = Field(ge=0)
    perfect: bool = Field(description="Something was due and everything due is done.")
    paused: bool = Field(
        description="A vacation pause covers the date: nothing is due (the items can still be "
        "checked)."
    )

    @classmethod
    def from_domain(cls, checklist: DayChecklist) -> Self:
        """The public form of a day's checklist."""
        return cls(
            date=checklist.day,
            items=[ChecklistItemPublic.from_domain(e) for e in checklist.entries],
            due_count=checklist.due_count,
            done_count=checklist.done_count,
            perfect=checklist.perfect,
            paused=checklist.paused,
        )


class CheckinPublic(BaseModel):
    """A check-in: an action marked done for a local date (titles as at the check-in)."""

    id: str = Field(description="The check-in's id (a new one after an undo and a re-check).")
    action_id: str
    mandalart_id: str
    sub_goal_position: int = Field(ge=1, le=8)
    sub_goal_title: str
    title: str
    type: CheckableType
    local_date: date
    checked_at: datetime
    changes_left: int = Field(
        ge=0, description="Check/undo changes still allowed for this action on this date."
    )

    @classmethod
    def from_domain(cls, slot: DaySlot, max_changes: int) -> Self:
        """The public form of a done slot."""
        assert slot.checkin_id is not None
        assert slot.checked_at is not None
        action = slot.action
        return cls(
            id=slot.checkin_id,
            action_id=action.id,
            mandalart_id=action.mandalart_id,
            sub_goal_position=action.sub_goal_position,
            sub_goal_title=action.sub_goal_title,
            title=action.title,
            type=_checkable(action),
            local_date=slot.day,
            checked_at=slot.checked_at,
            changes_left=max(0, max_changes - slot.changes),
        )


class CheckinPage(BaseModel):
    """The caller's check-ins between two local dates (both included), by date and time."""

    model_config = ConfigDict(populate_by_name=True)

    from_: date = Field(alias="from")
    to: date
    items: list[CheckinPublic]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null = end.")

    @classmethod
    def from_domain(cls, found: CheckinRange, max_changes: int) -> Self:
        """The public form of a range of check-ins."""
        return cls(
            from_=found.since,
            to=found.until,
            items=[CheckinPublic.from_domain(s, max_changes) for s in found.items],
            next_cursor=found.next_cursor.encode() if found.next_cursor else None,
        )
