"""The batch handler the idempotent consumer calls inside its transaction (thin).

It only turns `goal.changed` and `user.changed` payloads into read-model values and hands the
batch to the projection use case; the consumer has already recorded the event ids in the same
transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from checkins.domain.model import Grid, GridAction, Owner, UserProfile
from checkins.service import project
from checkins.store.ports import CheckinsStore
from mandaact_common.consumer import BatchHandler, Inbound
from mandaact_common.domain.pauses import Pause
from mandaact_common.grid_events import placed_actions
from mandaact_common.outbox import Transaction
from mandaact_contracts.events import GoalChanged, UserChanged

log = logging.getLogger(__name__)

StoreIn = Callable[[Transaction], CheckinsStore]
"""The store inside the consumer's transaction (bootstrap says which adapter)."""


def grid_of(event: GoalChanged) -> Grid:
    """The read-model grid of a `goal.changed`; ValueError if an action breaks the due rules."""
    # Failing here dead-letters the event, rather than breaking every later checklist read.
    snapshot = event.mandalart
    actions = tuple(
        GridAction(
            id=placed.id,
            mandalart_id=snapshot.id,
            sub_goal_position=placed.sub_goal_position,
            sub_goal_title=placed.sub_goal_title,
            position=placed.position,
            title=placed.title,
            type=placed.rule.type,
            schedule=placed.rule.schedule,
            added_on=placed.rule.added_on,
            due_date=placed.rule.due_date,
        )
        for placed in placed_actions(event)
    )
    return Grid(
        owner=Owner(event.tenant_id, event.user_id),
        id=snapshot.id,
        title=snapshot.title,
        version=snapshot.version,
        active=snapshot.active,
        deleted=snapshot.deleted,
        timezone=event.timezone,
        created_at=snapshot.created_at,
        updated_at=snapshot.updated_at,
        actions=actions,
    )


def profile_of(event: UserChanged) -> UserProfile:
    """The read-model settings of a `user.changed`."""
    return UserProfile(
        owner=Owner(event.tenant_id, event.user_id),
        timezone=event.timezone,
        locale=event.locale,
        version=event.version,
        day_starts_at=event.day_starts_at,
        pauses=tuple(Pause(p.from_, p.to) for p in event.pauses),
    )


def make_handler(store_in: StoreIn) -> BatchHandler:
    """Turn a batch of inbound events into one projection of the read model."""

    async def handle(tx: Transaction, items: list[Inbound]) -> None:
        grids: list[Grid] = []
        profiles: list[UserProfile] = []
        for item in items:
            payload = item.payload
            if isinstance(payload, GoalChanged):
                grids.append(grid_of(payload))
            elif isinstance(payload, UserChanged):
                profiles.append(profile_of(payload))
            else:
                # Another event type on our topics carries nothing this read model keeps.
                log.debug("ignoring %s (%s)", item.envelope.type, item.envelope.id)
        await project(store_in(tx), grids, profiles)

    return handle
