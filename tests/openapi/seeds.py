"""What each service's fuzzing user owns before schemathesis starts, so cases reach the rules.

A service without an entry is fuzzed on an empty database: its ids are drawn at random (mostly
404s) or followed through the document's links (goals creates its own grids that way).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, Final

from mandaact_common.domain.owner import Owner
from mandaact_common.mongo import make_client
from mandaact_common.settings import ServiceSettings
from tests.openapi.harness import Seeds


async def _checkins(settings: ServiceSettings, owner: Owner) -> Seeds:
    """A grid of every kind of action in the checkins read model (as goal.changed would)."""
    from checkins.consumers.handler import grid_of
    from checkins.service import project
    from checkins.store.mongo import MongoCheckinsStore
    from mandaact_common.outbox import Transaction, transact
    from services.checkins.tests.support import (
        MON_THU,
        TWICE_A_MONTH,
        TWICE_A_WEEK,
        action,
        goal_changed,
        new_id,
    )

    actions = [
        action("Run"),
        action("Review", schedule=MON_THU),
        action("Gym", schedule=TWICE_A_WEEK),
        action("Retro", schedule=TWICE_A_MONTH),
        action("Ship", "mission"),
        action("Note", "reference"),
    ]
    event = goal_changed(owner.tenant_id, owner.user_id, new_id(), 1, [("Seed", actions)])
    client = make_client(settings.mongodb_url)
    try:

        async def work(tx: Transaction) -> None:
            await project(MongoCheckinsStore(tx.db, tx), [grid_of(event)], [])

        await transact(client, client[settings.mongodb_database], "test", work)
    finally:
        await client.close()
    return Seeds({"action_id": tuple(str(a["id"]) for a in actions)})


SEEDERS: Final[Mapping[str, Callable[[ServiceSettings, Owner], Coroutine[Any, Any, Seeds]]]] = {
    "checkins": _checkins,
}


def seed(service: str, settings: ServiceSettings, owner: Owner) -> Seeds:
    """Store the service's seed data for `owner` (none for most services)."""
    seeder = SEEDERS.get(service)
    return asyncio.run(seeder(settings, owner)) if seeder else Seeds()
