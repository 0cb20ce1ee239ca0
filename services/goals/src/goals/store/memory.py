"""An in-memory adapter of the store ports, for fast unit tests of the use cases."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from goals.domain.deletion import Deletion
from goals.domain.errors import ConcurrentChange
from goals.domain.model import Mandalart, Owner, PageCursor, UserSettings
from mandaact_common import unit_of_work
from mandaact_common.lifecycle import Subject


@dataclass
class Tables(unit_of_work.MemoryTables):
    """Everything the in-memory store holds."""

    settings: dict[Owner, UserSettings] = field(default_factory=dict)
    mandalarts: dict[str, Mandalart] = field(default_factory=dict)
    deletions: dict[str, Deletion] = field(default_factory=dict)
    erasures: dict[str, tuple[Subject, datetime]] = field(default_factory=dict)
    """Scheduled erasures (tombstone and job) by deletion id, with their due time."""


class InMemoryGoalsStore(unit_of_work.InMemoryStore[Tables]):
    """The GoalsStore port over dictionaries (a private copy per unit of work)."""

    async def get_settings(self, owner: Owner) -> UserSettings | None:
        """The owner's stored settings, or None."""
        return self.tables.settings.get(owner)

    async def save_settings(self, settings: UserSettings, *, previous_version: int) -> None:
        """Store settings if still at `previous_version`."""
        current = self.tables.settings.get(settings.owner)
        if (current.version if current else 0) != previous_version:
            raise ConcurrentChange("the settings were changed by another request")
        self.tables.settings[settings.owner] = settings

    async def get_mandalart(self, owner: Owner, mandalart_id: str) -> Mandalart | None:
        """The owner's live grid with this id."""
        found = self.tables.mandalarts.get(mandalart_id)
        if found is None or found.owner != owner or found.deleted:
            return None
        return found

    async def count_live_mandalarts_for_create(self, owner: Owner) -> int:
        """How many live grids the owner has (units of work here run one at a time)."""
        return sum(1 for m in self.tables.mandalarts.values() if m.owner == owner and not m.deleted)

    async def add_mandalart(self, mandalart: Mandalart) -> None:
        """Store a new grid."""
        self.tables.mandalarts[mandalart.id] = mandalart

    async def save_mandalart(self, mandalart: Mandalart, *, previous_version: int) -> None:
        """Store a changed grid if still at `previous_version`."""
        current = self.tables.mandalarts.get(mandalart.id)
        if current is None or current.version != previous_version or current.deleted:
            raise ConcurrentChange("the mandalart was changed by another request")
        self.tables.mandalarts[mandalart.id] = mandalart

    async def list_mandalarts(
        self, owner: Owner, *, limit: int, after: PageCursor | None, active: bool | None
    ) -> list[Mandalart]:
        """The owner's live grids, newest first."""
        live = [
            m
            for m in self.tables.mandalarts.values()
            if m.owner == owner and not m.deleted and (active is None or m.active == active)
        ]
        live.sort(key=lambda m: (m.created_at, m.id), reverse=True)
        if after is not None:
            live = [m for m in live if (m.created_at, m.id) < (after.created_at, after.id)]
        return live[:limit]

    async def get_deletion(self, deletion_id: str) -> Deletion | None:
        """The deletion record of this id."""
        return self.tables.deletions.get(deletion_id)

    async def begin_deletion(self, deletion: Deletion, subject: Subject, due: datetime) -> None:
        """Store the record and schedule the erasure (first one kept)."""
        self.tables.deletions.setdefault(deletion.id, deletion)
        self.tables.erasures.setdefault(deletion.id, (subject, due))

    async def save_deletion(self, deletion: Deletion) -> None:
        """Store the record's answers."""
        self.tables.deletions[deletion.id] = deletion


class InMemoryUnitOfWork(unit_of_work.InMemoryUnitOfWork[Tables, InMemoryGoalsStore]):
    """The goals unit of work in memory (for unit tests of the use cases)."""

    def __init__(self, tables: Tables | None = None) -> None:
        super().__init__(tables or Tables(), InMemoryGoalsStore)

    @property
    def mandalarts(self) -> dict[str, Mandalart]:
        """The committed grids by id."""
        return self.tables.mandalarts
