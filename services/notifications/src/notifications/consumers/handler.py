"""The batch handler the idempotent consumer calls inside its transaction (thin).

It turns the payloads into domain facts and hands the batch to the projection; the consumer
has already recorded the event ids in the same transaction, so a notification sent for an
event commits with that event's processed id.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from mandaact_common.clock import Clock, NewId, new_uuid
from mandaact_common.consumer import BatchHandler, Inbound
from mandaact_common.domain.pauses import Pause
from mandaact_common.grid_events import placed_actions
from mandaact_common.outbox import Transaction
from mandaact_contracts.events import (
    ActionCompleted,
    ActionUncompleted,
    BadgeUnlocked,
    GoalChanged,
    LevelReached,
    ReportGenerated,
    StreakChanged,
    UserChanged,
)
from notifications.domain.model import (
    DEFAULT_QUIET,
    KINDS,
    CheckinChange,
    EventNotice,
    Owner,
    Preferences,
    QuietHours,
    Streak,
    hhmm,
)
from notifications.domain.records import Grid
from notifications.service import Facts, project
from notifications.store.ports import NotificationsStore

log = logging.getLogger(__name__)

DEFAULT_QUIET_HOURS = QuietHours(*DEFAULT_QUIET)

StoreIn = Callable[[Transaction], NotificationsStore]
"""The store inside the consumer's transaction (bootstrap says which adapter)."""


def prefs_of(event: UserChanged) -> Preferences:
    """The settings a `user.changed` carries (left-out ones at their defaults)."""
    quiet = event.quiet_hours
    wanted = event.notifications
    return Preferences(
        timezone=event.timezone,
        locale=event.locale,
        day_starts_at=hhmm(event.day_starts_at),
        pauses=tuple(Pause(p.from_, p.to, p.reason) for p in event.pauses),
        reminder_time=hhmm(event.reminder_time),
        quiet_hours=QuietHours(hhmm(quiet.from_), hhmm(quiet.to)) if quiet else DEFAULT_QUIET_HOURS,
        enabled=frozenset(k for k in KINDS if wanted is None or getattr(wanted, k)),
        version=event.version,
    )


def grid_of(event: GoalChanged) -> Grid:
    """The read-model grid of a `goal.changed`; ValueError if an action breaks the due rules."""
    snapshot = event.mandalart
    return Grid(
        owner=Owner(event.tenant_id, event.user_id),
        id=snapshot.id,
        version=snapshot.version,
        on_checklist=snapshot.active and not snapshot.deleted,
        actions=tuple(p.rule for p in placed_actions(event)),
    )


def change_of(event: ActionCompleted | ActionUncompleted) -> CheckinChange:
    """The check-in slot an `action.completed` / `action.uncompleted` leaves."""
    return CheckinChange(
        owner=Owner(event.tenant_id, event.user_id),
        action_id=event.action_id,
        local_date=event.local_date,
        done=isinstance(event, ActionCompleted),
        seq=event.seq,
        mission=event.action_type == "mission",
        timezone=event.timezone,
    )


def facts_of(items: list[Inbound]) -> Facts:
    """What a batch says, in domain terms."""
    facts = Facts()
    for item in items:
        payload = item.payload
        owner = Owner(payload.tenant_id, payload.user_id)
        if isinstance(payload, UserChanged):
            facts.prefs.append((owner, prefs_of(payload)))
        elif isinstance(payload, GoalChanged):
            facts.grids.append(grid_of(payload))
            facts.timezones[owner] = payload.timezone
        elif isinstance(payload, ActionCompleted | ActionUncompleted):
            facts.changes.append(change_of(payload))
            facts.timezones[owner] = payload.timezone
        elif isinstance(payload, StreakChanged):
            streak = Streak(
                payload.current,
                payload.last_active_date,
                frozenset(payload.frozen_dates),
                payload.changed_at,
            )
            facts.streaks.append((owner, streak))
        elif isinstance(payload, BadgeUnlocked):
            facts.notices.append(
                EventNotice(owner, "badge_unlocked", payload.unlocked_at, badge=payload.badge)
            )
        elif isinstance(payload, LevelReached):
            facts.notices.append(
                EventNotice(owner, "level_reached", payload.reached_at, level=payload.level)
            )
        elif isinstance(payload, ReportGenerated):
            facts.notices.append(
                EventNotice(owner, "report_ready", payload.generated_at, week=payload.week)
            )
        else:
            log.debug("ignoring %s (%s)", item.envelope.type, item.envelope.id)
    return facts


def make_handler(store_in: StoreIn, clock: Clock, new_id: NewId = new_uuid) -> BatchHandler:
    """Turn a batch of inbound events into one projection of the read model."""

    async def handle(tx: Transaction, items: list[Inbound]) -> None:
        await project(store_in(tx), facts_of(items), clock(), new_id)

    return handle
