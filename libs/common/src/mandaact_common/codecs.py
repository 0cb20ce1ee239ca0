"""The stored form of the shared domain values: schedules, actions (as the due rules see them),
and instants. BSON has no date-only type, so dates are kept as ISO text.

Pure (plain dicts in and out, no driver import), so a domain may use it for its snapshots too.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from mandaact_common.domain.schedule import Action, Schedule

Doc = dict[str, Any]
"""A stored document (what PyMongo reads and writes)."""


def utc(value: datetime) -> datetime:
    """An instant read back from MongoDB, in UTC (a naive value is taken as UTC)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def iso_date(value: date | None) -> str | None:
    """A date as stored, or None."""
    return value.isoformat() if value is not None else None


def date_from(value: str | None) -> date | None:
    """A stored date, or None."""
    return date.fromisoformat(value) if value else None


def schedule_doc(schedule: Schedule | None) -> Doc | None:
    """A schedule as stored: its wire form (weekday codes)."""
    if schedule is None:
        return None
    return {"frequency": schedule.frequency, "days": schedule.day_codes(), "times": schedule.times}


def schedule_from(doc: Doc | None) -> Schedule | None:
    """A stored schedule (InvalidSchedule if it breaks the rules)."""
    if doc is None:
        return None
    return Schedule.from_parts(doc["frequency"], doc.get("days"), doc.get("times"))


def action_doc(action: Action) -> Doc:
    """The due-rule fields of an action as stored (a service adds its own fields beside them)."""
    return {
        "id": action.id,
        "type": action.type,
        "schedule": schedule_doc(action.schedule),
        "added_on": action.added_on.isoformat(),
        "due_date": iso_date(action.due_date),
    }


def action_from(doc: Doc) -> Action:
    """An action, as the due rules see it, from its stored fields."""
    return Action(
        id=doc["id"],
        type=doc["type"],
        schedule=schedule_from(doc.get("schedule")),
        added_on=date.fromisoformat(doc["added_on"]),
        due_date=date_from(doc.get("due_date")),
    )
