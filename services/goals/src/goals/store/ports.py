"""The ports the use cases need: a transactional store of settings and grids, and its events."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from goals.domain.deletion import Deletion
from goals.domain.model import Mandalart, Owner, PageCursor, UserSettings
from mandaact_common import unit_of_work
from mandaact_common.lifecycle import Subject
from mandaact_contracts.events import EventPayload


class GoalsStore(Protocol):
    """What one unit of work reads and writes; every read is scoped to an owner."""

    async def get_settings(self, owner: Owner) -> UserSettings | None:
        """The owner's stored settings, or None when never saved."""
        ...

    async def save_settings(self, settings: UserSettings, *, previous_version: int) -> None:
        """Store settings if the stored version is still `previous_version` (0 = none yet)."""
        ...

    async def get_mandalart(self, owner: Owner, mandalart_id: str) -> Mandalart | None:
        """The owner's grid with this id, None if it is someone else's, deleted or unknown."""
        ...

    async def count_live_mandalarts_for_create(self, owner: Owner) -> int:
        """How many live grids the owner has, read so that two creates of one owner serialize
        (the second one's unit of work retries and sees the first one's grid)."""
        ...

    async def add_mandalart(self, mandalart: Mandalart) -> None:
        """Store a new grid."""
        ...

    async def save_mandalart(self, mandalart: Mandalart, *, previous_version: int) -> None:
        """Store a changed grid if the stored version is still `previous_version`."""
        ...

    async def list_mandalarts(
        self, owner: Owner, *, limit: int, after: PageCursor | None, active: bool | None
    ) -> list[Mandalart]:
        """The owner's live grids, newest first, starting after `after`."""
        ...

    async def get_deletion(self, deletion_id: str) -> Deletion | None:
        """The deletion record of this id (a keyed hash), None if none was asked for."""
        ...

    async def begin_deletion(self, deletion: Deletion, subject: Subject, due: datetime) -> None:
        """Store a new deletion record, the subject's tombstone and its erasure job (due at
        `due`): from this unit's commit on, the subject's writes are refused (410)."""
        ...

    async def save_deletion(self, deletion: Deletion) -> None:
        """Store a deletion record's new answers."""
        ...

    def emit(self, topic: str, payload: EventPayload, subject: str | None = None) -> None:
        """Record an event, written with this unit of work's changes."""
        ...


UnitOfWork = unit_of_work.UnitOfWork[GoalsStore]
"""Runs work against a GoalsStore: atomically (changes and events), read-only, or once per key."""
