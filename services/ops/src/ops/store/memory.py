"""In-memory `OpsStore` for unit tests."""

from __future__ import annotations

from collections.abc import Sequence

from ops.domain.model import DeadLetter, LetterId
from ops.store.ports import AuditEntry


class MemoryOpsStore:
    """The audit log and handled letters in dictionaries."""

    def __init__(self) -> None:
        self.audit: dict[str, tuple[AuditEntry, str]] = {}
        self.handled_ids: dict[str, set[LetterId]] = {}

    async def handled(self, group: str) -> set[LetterId]:
        """The group's handled letter ids."""
        return set(self.handled_ids.get(group, set()))

    async def begin(self, entry: AuditEntry) -> None:
        """Keep the audit row, state `requested`."""
        self.audit[entry.id] = (entry, "requested")

    async def settle(self, entry: AuditEntry, letters: Sequence[DeadLetter]) -> None:
        """Mark the letters handled and the audit row done."""
        self.handled_ids.setdefault(entry.group, set()).update(d.id for d in letters)
        self.audit[entry.id] = (entry, "done")
