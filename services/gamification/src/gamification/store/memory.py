"""An in-memory adapter of the store port, for fast unit tests of the use cases."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from gamification.store.ports import PROGRESS_FIELDS
from mandaact_common.errors import Conflict
from mandaact_common.mongo import Doc
from mandaact_common.unit_of_work import InMemoryStore, InMemoryUnitOfWork, MemoryTables


@dataclass
class Tables(MemoryTables):
    """The user states by owner key and the ledger entries by id (as MongoDB would hold them)."""

    states: dict[str, Doc] = field(default_factory=dict)
    ledger: dict[str, Doc] = field(default_factory=dict)


def _projection(doc: Doc) -> Doc:
    return {f: copy.deepcopy(doc[f]) for f in PROGRESS_FIELDS if f in doc}


class InMemoryGamificationStore(InMemoryStore[Tables]):
    """The GamificationStore port over dictionaries; documents go in and out as copies."""

    async def states(self, keys: Iterable[str]) -> dict[str, Doc]:
        """The state documents of these users (missing ones are absent)."""
        found = {k: self.tables.states[k] for k in keys if k in self.tables.states}
        return copy.deepcopy(found)

    async def save_states(self, docs: Sequence[Doc]) -> None:
        """Replace (or insert) whole state documents."""
        for doc in docs:
            self.tables.states[doc["_id"]] = copy.deepcopy(doc)

    async def insert_ledger(self, docs: Sequence[Doc]) -> None:
        """Append ledger entries; an id or (owner, key, n) already there is a conflict."""
        taken = {(e["uk"], e["key"], e["n"]) for e in self.tables.ledger.values()}
        for doc in docs:
            if doc["_id"] in self.tables.ledger or (doc["uk"], doc["key"], doc["n"]) in taken:
                raise Conflict(f"ledger entry {doc['_id']} is already stored")
            taken.add((doc["uk"], doc["key"], doc["n"]))
            self.tables.ledger[doc["_id"]] = copy.deepcopy(doc)

    async def progress(self, key: str) -> Doc | None:
        """One user's progress projection."""
        doc = self.tables.states.get(key)
        return _projection(doc) if doc is not None else None

    async def ledger_page(self, key: str, limit: int, before: int | None) -> list[Doc]:
        """A user's ledger entries, newest first."""
        mine = [
            e
            for e in self.tables.ledger.values()
            if e["uk"] == key and (before is None or e["ord"] < before)
        ]
        mine.sort(key=lambda e: e["ord"], reverse=True)
        return copy.deepcopy(mine[:limit])

    async def leaderboard(self, tenant_id: str, week: str | None, limit: int) -> list[Doc]:
        """The tenant's users by XP (all time or one week), ties by user id."""

        def xp(doc: Doc) -> int:
            return int(doc.get("xp_by_week", {}).get(week, 0) if week else doc.get("xp_total", 0))

        mine = [d for d in self.tables.states.values() if d["tenant_id"] == tenant_id]
        ranked = [d for d in mine if xp(d) > 0]
        ranked.sort(key=lambda d: (-xp(d), d["user_id"]))
        return [_projection(d) for d in ranked[:limit]]


def in_memory_unit_of_work(
    tables: Tables | None = None,
) -> InMemoryUnitOfWork[Tables, InMemoryGamificationStore]:
    """A unit of work over in-memory tables (fresh ones unless given)."""
    return InMemoryUnitOfWork(tables or Tables(), InMemoryGamificationStore)
