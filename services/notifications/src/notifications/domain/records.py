"""What the service stores beside the user's state: grids, timers and sent notifications."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

from mandaact_common.domain.owner import Owner
from mandaact_common.domain.schedule import Action
from mandaact_common.errors import InvalidInput
from mandaact_common.keys import sub_key
from mandaact_common.paging import decode_cursor, encode_cursor
from notifications.domain.model import NEVER, EventKind, EventNotice, Kind, Locale, TimedKind


@dataclass(frozen=True, slots=True)
class Grid:
    """A grid as the newest `goal.changed` says: its actions as the due rules see them."""

    owner: Owner
    id: str
    version: int
    on_checklist: bool
    """Active and not deleted: only then are its actions due."""
    actions: tuple[Action, ...]


TimerType = Literal["schedule", "pending"]


@dataclass(frozen=True, slots=True)
class Timer:
    """A row indexed by its fire time: a timed kind's next fire, or a notification waiting
    for the end of quiet hours. Workers claim due rows with a lease."""

    owner: Owner
    kind: Kind
    type: TimerType
    fire_at: datetime
    lease_until: datetime = NEVER
    lease_token: str | None = None
    notice: EventNotice | None = None
    """The event a pending row waits to tell (None for a schedule row)."""

    @property
    def key(self) -> str:
        """The row's id: one schedule row per (user, kind), one pending row per event told."""
        return timer_key(self.owner, self.kind, self.notice.detail if self.notice else None)

    def rescheduled(self, fire_at: datetime) -> Timer:
        """The row firing next at `fire_at`, free of any lease."""
        return dataclasses.replace(self, fire_at=fire_at, lease_until=NEVER, lease_token=None)


def timer_key(owner: Owner, kind: Kind, detail: str | None = None) -> str:
    """The id of a schedule row (no detail) or a pending row (the event's detail)."""
    if detail is None:
        return sub_key(owner.key, "schedule", kind)
    return sub_key(owner.key, "pending", kind, detail)


def schedule_timer(owner: Owner, kind: TimedKind, fire_at: datetime) -> Timer:
    """A timed kind's schedule row."""
    return Timer(owner, kind, "schedule", fire_at)


def pending_timer(notice: EventNotice, fire_at: datetime) -> Timer:
    """An event-driven notification waiting until `fire_at`."""
    kind: EventKind = notice.kind
    return Timer(notice.owner, kind, "pending", fire_at, notice=notice)


@dataclass(frozen=True, slots=True)
class Sent:
    """A notification the service decided to send (what `notification.requested` carries)."""

    owner: Owner
    id: str
    dedupe_key: str
    kind: Kind
    locale: Locale
    title: str
    body: str
    deep_link: str
    local_date: date
    created_at: datetime


@dataclass(frozen=True, slots=True)
class SentCursor:
    """Where a page of sent notifications (newest first) ends."""

    created_at: datetime
    id: str

    def encode(self) -> str:
        """The opaque `next_cursor` text."""
        return encode_cursor(self.created_at.isoformat(), self.id)

    @classmethod
    def decode(cls, token: str) -> SentCursor:
        """A cursor from its text; InvalidInput (422) when this API did not make it."""
        instant, ident = decode_cursor(token, (str, str))
        try:
            created = datetime.fromisoformat(str(instant))
        except ValueError:
            raise InvalidInput("query.cursor", "is not a cursor this API returned") from None
        if created.tzinfo is None:
            raise InvalidInput("query.cursor", "is not a cursor this API returned")
        return cls(created, str(ident))

    @classmethod
    def after(cls, sent: Sent) -> SentCursor:
        """The cursor just after this notification."""
        return cls(sent.created_at, sent.id)
