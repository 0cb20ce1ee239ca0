"""Response bodies of the notifications API (pydantic), mapped from the domain."""

from __future__ import annotations

from datetime import date, datetime
from typing import Self

from pydantic import BaseModel, Field

from mandaact_contracts.events import NotificationKind
from notifications.domain.model import Locale
from notifications.domain.records import Sent
from notifications.service import SentPage


class NotificationPublic(BaseModel):
    """A notification the service decided to send the caller (`notification.requested`)."""

    id: str
    kind: NotificationKind
    locale: Locale
    title: str
    body: str
    deep_link: str = Field(examples=["mandaact://checklist"])
    local_date: date = Field(description="The caller's local date the notification is for.")
    created_at: datetime

    @classmethod
    def from_domain(cls, sent: Sent) -> Self:
        """The public form of a sent notification."""
        return cls(
            id=sent.id,
            kind=sent.kind,
            locale=sent.locale,
            title=sent.title,
            body=sent.body,
            deep_link=sent.deep_link,
            local_date=sent.local_date,
            created_at=sent.created_at,
        )


class NotificationPage(BaseModel):
    """A page of the caller's notifications, newest first."""

    items: list[NotificationPublic]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null = the end."
    )

    @classmethod
    def from_domain(cls, page: SentPage) -> Self:
        """The public form of a page."""
        return cls(
            items=[NotificationPublic.from_domain(s) for s in page.items],
            next_cursor=page.next_cursor.encode() if page.next_cursor else None,
        )
