"""Ops' MongoDB adapter: the audit log and the handled letters (bounded by a TTL)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from pymongo import ASCENDING, AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from mandaact_common.mongo import Doc, in_transaction
from ops.domain.model import DeadLetter, LetterId
from ops.store.ports import AuditEntry

AUDIT = "audit_log"
HANDLED = "handled_letters"


async def ensure_indexes(db: AsyncDatabase[Doc], *, handled_ttl_seconds: int) -> None:
    """The listing filter reads handled letters by group; both collections expire."""
    await db[HANDLED].create_index([("group", ASCENDING), ("partition", ASCENDING)])
    await db[HANDLED].create_index("at", name="at_ttl", expireAfterSeconds=handled_ttl_seconds)
    await db[AUDIT].create_index([("at", ASCENDING)])
    await db[AUDIT].create_index([("tenant_id", ASCENDING), ("at", ASCENDING)])


class MongoOpsStore:
    """`OpsStore` over ops' own database."""

    def __init__(self, client: AsyncMongoClient[Doc], db: AsyncDatabase[Doc]) -> None:
        self._client = client
        self._db = db

    async def handled(self, group: str) -> set[LetterId]:
        """The group's handled letter ids."""
        cursor = self._db[HANDLED].find({"group": group}, {"partition": 1, "offset": 1})
        return {LetterId(d["partition"], d["offset"]) async for d in cursor}

    async def begin(self, entry: AuditEntry) -> None:
        """Insert the audit row, state `requested`."""
        await self._db[AUDIT].insert_one(
            {
                "_id": entry.id,
                "at": entry.at,
                "tenant_id": entry.tenant_id,
                "user_id": entry.user_id,
                "action": entry.action,
                "group": entry.group,
                "letters": [str(i) for i in entry.letters],
                "state": "requested",
            }
        )

    async def settle(self, entry: AuditEntry, letters: Sequence[DeadLetter]) -> None:
        """Handled records and the audit row's `done`, in one transaction."""
        now = datetime.now(UTC)

        async def work(session: AsyncClientSession) -> None:
            for letter in letters:
                await self._db[HANDLED].replace_one(
                    {"_id": f"{entry.group}:{letter.id}"},
                    {
                        "group": entry.group,
                        "partition": letter.id.partition,
                        "offset": letter.id.offset,
                        "tenant_id": letter.tenant_id or "",
                        "verdict": entry.action,
                        "audit_id": entry.id,
                        "at": now,
                    },
                    upsert=True,
                    session=session,
                )
            await self._db[AUDIT].update_one(
                {"_id": entry.id}, {"$set": {"state": "done", "done_at": now}}, session=session
            )

        await in_transaction(self._client, work)
