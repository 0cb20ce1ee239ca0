"""An in-memory adapter of the store ports, for fast unit tests of the use cases."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from goals.domain.errors import ConcurrentChange
from goals.domain.model import Mandalart, Owner, PageCursor, UserSettings
from mandaact_common.idempotency import IdempotencyKeyReused, IdempotentRequest, StoredResponse
from mandaact_contracts.events import EventPayload

T = TypeVar("T")

Emitted = tuple[str, EventPayload, str]


class InMemoryGoalsStore:
    """The GoalsStore port over dictionaries (a private copy per unit of work)."""

    def __init__(
        self, settings: dict[Owner, UserSettings], mandalarts: dict[str, Mandalart]
    ) -> None:
        self.settings = dict(settings)
        self.mandalarts = dict(mandalarts)
        self.events: list[Emitted] = []

    async def get_settings(self, owner: Owner) -> UserSettings | None:
        """The owner's stored settings, or None."""
        return self.settings.get(owner)

    async def save_settings(self, settings: UserSettings, *, previous_version: int) -> None:
        """Store settings if still at `previous_version`."""
        current = self.settings.get(settings.owner)
        if (current.version if current else 0) != previous_version:
            raise ConcurrentChange("the settings were changed by another request")
        self.settings[settings.owner] = settings

    async def get_mandalart(self, owner: Owner, mandalart_id: str) -> Mandalart | None:
        """The owner's live grid with this id."""
        found = self.mandalarts.get(mandalart_id)
        if found is None or found.owner != owner or found.deleted:
            return None
        return found

    async def add_mandalart(self, mandalart: Mandalart) -> None:
        """Store a new grid."""
        self.mandalarts[mandalart.id] = mandalart

    async def save_mandalart(self, mandalart: Mandalart, *, previous_version: int) -> None:
        """Store a changed grid if still at `previous_version`."""
        current = self.mandalarts.get(mandalart.id)
        if current is None or current.version != previous_version or current.deleted:
            raise ConcurrentChange("the mandalart was changed by another request")
        self.mandalarts[mandalart.id] = mandalart

    async def list_mandalarts(
        self, owner: Owner, *, limit: int, after: PageCursor | None, active: bool | None
    ) -> list[Mandalart]:
        """The owner's live grids, newest first."""
        live = [
            m
            for m in self.mandalarts.values()
            if m.owner == owner and not m.deleted and (active is None or m.active == active)
        ]
        live.sort(key=lambda m: (m.created_at, m.id), reverse=True)
        if after is not None:
            live = [m for m in live if (m.created_at, m.id) < (after.created_at, after.id)]
        return live[:limit]

    def emit(self, topic: str, payload: EventPayload, subject: str) -> None:
        """Record an event with this unit's changes."""
        self.events.append((topic, payload, subject))


class InMemoryUnitOfWork:
    """The UnitOfWork port in memory: a unit's changes and events apply only if it returns."""

    def __init__(self) -> None:
        self.settings: dict[Owner, UserSettings] = {}
        self.mandalarts: dict[str, Mandalart] = {}
        self.events: list[Emitted] = []
        self.keys: dict[tuple[str, str, str, str], tuple[str, StoredResponse]] = {}

    async def run(self, work: Callable[[InMemoryGoalsStore], Awaitable[T]]) -> T:
        """Run `work` on a copy; commit the copy and its events when it returns."""
        store = InMemoryGoalsStore(self.settings, self.mandalarts)
        result = await work(store)
        self.settings, self.mandalarts = store.settings, store.mandalarts
        self.events.extend(store.events)
        return result

    async def read(self, work: Callable[[InMemoryGoalsStore], Awaitable[T]]) -> T:
        """Run read-only `work`."""
        return await work(InMemoryGoalsStore(self.settings, self.mandalarts))

    async def run_once(
        self,
        request: IdempotentRequest,
        work: Callable[[InMemoryGoalsStore], Awaitable[StoredResponse]],
    ) -> StoredResponse:
        """Replay the stored response of a known key, else run `work` and remember it."""
        key = (request.tenant_id, request.user_id, request.operation, request.key)
        if key in self.keys:
            fingerprint, response = self.keys[key]
            if fingerprint != request.fingerprint:
                raise IdempotencyKeyReused("the key was already used with another body")
            return response
        response = await self.run(work)
        self.keys[key] = (request.fingerprint, response)
        return response
