"""Use cases of the notifications service: the read model's projection, the timers' firing,
and the list of a user's notifications.

A notification is sent in one unit of work: the sent row (whose id is the dedupe key), the
day's counter and `notification.requested` in the outbox commit together, with the processed
event (an event-driven kind sent at once) or with the timer row's rescheduling (a timed kind,
or one that waited out quiet hours).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from mandaact_common.clock import Clock, NewId, new_uuid, utc_now
from mandaact_common.domain.calendar import month_bounds, week_bounds
from mandaact_common.domain.schedule import checklist
from mandaact_common.keys import sub_key
from mandaact_contracts import topics
from mandaact_contracts.events import NotificationRequested
from notifications.domain.model import (
    DAILY_CAP,
    MISSED_AFTER,
    TIMED_KINDS,
    CheckinChange,
    DayFacts,
    Decision,
    EventNotice,
    Owner,
    Preferences,
    Streak,
    UserState,
    dedupe_parts,
    event_decision,
    event_decision_at,
    is_timed,
    merged,
    newest_changes,
    next_fire,
    timed_day,
    timed_decision,
)
from notifications.domain.records import (
    Grid,
    Sent,
    SentCursor,
    Timer,
    pending_timer,
    schedule_timer,
    timer_key,
)
from notifications.domain.texts import text_of
from notifications.store.ports import NotificationsStore, TimerLeases, UnitOfWork

log = logging.getLogger(__name__)


@dataclass
class Facts:
    """What one batch of events says, in domain terms."""

    prefs: list[tuple[Owner, Preferences]] = field(default_factory=list)
    streaks: list[tuple[Owner, Streak]] = field(default_factory=list)
    timezones: dict[Owner, str] = field(default_factory=dict)
    grids: list[Grid] = field(default_factory=list)
    changes: list[CheckinChange] = field(default_factory=list)
    notices: list[EventNotice] = field(default_factory=list)

    def owners(self) -> set[Owner]:
        """Every user the batch is about."""
        return (
            {o for o, _ in self.prefs}
            | {o for o, _ in self.streaks}
            | set(self.timezones)
            | {g.owner for g in self.grids}
            | {c.owner for c in self.changes}
            | {n.owner for n in self.notices}
        )


@dataclass(frozen=True, slots=True)
class SentPage:
    """A page of a user's notifications, newest first."""

    items: list[Sent]
    next_cursor: SentCursor | None


def _payload(sent: Sent) -> NotificationRequested:
    return NotificationRequested(
        tenant_id=sent.owner.tenant_id,
        user_id=sent.owner.user_id,
        notification_id=sent.id,
        kind=sent.kind,
        locale=sent.locale,
        title=sent.title,
        body=sent.body,
        deep_link=sent.deep_link,
        local_date=sent.local_date,
        created_at=sent.created_at,
    )


async def send(
    store: NotificationsStore,
    state: UserState,
    decision: Decision,
    now: datetime,
    new_id: NewId,
) -> Sent | None:
    """Store and announce a notification, unless it was sent already or the day is full."""
    owner = state.owner
    dedupe = sub_key(owner.key, *dedupe_parts(decision))
    if await store.was_sent(dedupe):
        return None
    if await store.sent_on(owner, decision.local_date) >= DAILY_CAP:
        log.info("daily cap reached: %s not sent to %s", decision.kind, owner.key)
        return None
    locale = state.settings.locale
    text = text_of(decision, locale)
    sent = Sent(
        owner=owner,
        id=new_id(),
        dedupe_key=dedupe,
        kind=decision.kind,
        locale=locale,
        title=text.title,
        body=text.body,
        deep_link=text.deep_link,
        local_date=decision.local_date,
        created_at=now,
    )
    await store.save_sent(sent)
    store.emit(topics.NOTIFICATION_REQUESTED, _payload(sent), subject=sent.kind)
    return sent


async def day_facts(store: NotificationsStore, owner: Owner, day: date) -> DayFacts:
    """The checklist counts of a local date (the shared due rules) and the check-ins by it."""
    actions = [a for grid in await store.live_grids(owner) for a in grid.actions]
    missions = [a.id for a in actions if a.type == "mission"]
    since = min(week_bounds(day)[0], month_bounds(day)[0])
    done = await store.done_dates(owner, since=since, until=day, missions=missions)
    day_list = checklist(actions, day, done)
    return DayFacts(
        due_count=day_list.due_count,
        done_count=day_list.done_count,
        checked_in=any(day in dates for dates in done.values()),
        last_checkin=await store.latest_checkin(owner),
    )


async def reschedule(store: NotificationsStore, states: Sequence[UserState], now: datetime) -> None:
    """Put each timed kind of these users at its next fire time (or remove it).

    A row already due is left to the worker that fires it: it reschedules from the state it
    reads then, so nothing this batch changed is lost.
    """
    saves: list[Timer] = []
    deletes: list[str] = []
    stored = await store.timers([timer_key(s.owner, kind) for s in states for kind in TIMED_KINDS])
    for state in states:
        owner = state.owner
        prefs = state.settings
        wanted = prefs.wants("comeback") or prefs.wants("streak_at_risk")
        latest = await store.latest_checkin(owner) if wanted else None
        for kind in TIMED_KINDS:
            key = timer_key(owner, kind)
            current = stored.get(key)
            if current is not None and current.fire_at <= now:
                continue
            fire_at = next_fire(kind, state, latest, now)
            if fire_at is None:
                if current is not None:
                    deletes.append(key)
            elif current is None or current.fire_at != fire_at:
                saves.append(schedule_timer(owner, kind, fire_at))
    if saves:
        await store.save_timers(saves)
    if deletes:
        await store.delete_timers(deletes)


async def project(
    store: NotificationsStore, facts: Facts, now: datetime, new_id: NewId = new_uuid
) -> None:
    """Apply a batch of events: the read model converges whatever the order; event-driven
    kinds are sent now, wait for the end of quiet hours, or are dropped."""
    owners = facts.owners()
    if not owners:
        return
    stored = await store.users(owners)
    states = {o: stored.get(o) or UserState(o) for o in owners}
    for owner, prefs in facts.prefs:
        states[owner] = merged(states[owner], prefs=prefs)
    for owner, streak in facts.streaks:
        states[owner] = merged(states[owner], streak=streak)
    for owner, timezone in facts.timezones.items():
        states[owner] = merged(states[owner], seen_timezone=timezone)
    changed = [s for o, s in states.items() if stored.get(o) != s]
    if changed:
        await store.save_users(changed)
    await _project_grids(store, facts.grids)
    changes = newest_changes(facts.changes)
    if changes:
        seqs = await store.slot_seqs([(c.owner, c.action_id, c.local_date) for c in changes])
        fresh = [c for c in changes if c.seq > seqs.get((c.owner, c.action_id, c.local_date), 0)]
        if fresh:
            await store.save_slots(fresh)
    for notice in facts.notices:
        await _notice(store, states[notice.owner], notice, now, new_id)
    timed = (
        {o for o, _ in facts.prefs}
        | {o for o, _ in facts.streaks}
        | set(facts.timezones)
        | {c.owner for c in facts.changes}
    )
    await reschedule(store, [states[o] for o in sorted(timed, key=lambda o: o.key)], now)


async def _project_grids(store: NotificationsStore, grids: Sequence[Grid]) -> None:
    best: dict[tuple[str, str], Grid] = {}
    for grid in grids:
        key = (grid.owner.tenant_id, grid.id)
        if key not in best or grid.version > best[key].version:
            best[key] = grid
    if not best:
        return
    versions = await store.grid_versions(list(best))
    fresh = [g for k, g in best.items() if g.version > versions.get(k, 0)]
    if fresh:
        await store.save_grids(fresh)


async def _notice(
    store: NotificationsStore,
    state: UserState,
    notice: EventNotice,
    now: datetime,
    new_id: NewId,
) -> None:
    outcome = event_decision(notice, state, now)
    if isinstance(outcome, Decision):
        await send(store, state, outcome, now, new_id)
    elif isinstance(outcome, datetime):
        await store.save_timers([pending_timer(notice, outcome)])
    else:
        log.info("%s for %s not sent: %s", notice.kind, notice.owner.key, outcome)


class NotificationsService:
    """The timers' firing and the listing of a user's notifications."""

    def __init__(
        self,
        uow: UnitOfWork,
        leases: TimerLeases,
        *,
        lease: timedelta = timedelta(seconds=60),
        chunk: int = 200,
        clock: Clock = utc_now,
        new_id: NewId = new_uuid,
    ) -> None:
        self._uow = uow
        self._leases = leases
        self._lease = lease
        self._chunk = chunk
        self._clock = clock
        self._new_id = new_id

    async def run_due(self) -> int:
        """Claim the rows due now and fire each, until none is due; the number sent.

        Every firing moves its row strictly forward, so the loop ends.
        """
        sent = 0
        while True:
            token = self._new_id()
            keys = await self._leases.claim_due(self._clock(), self._lease, self._chunk, token)
            if not keys:
                return sent
            for key in keys:
                try:
                    sent += await self.fire(key, token)
                except Exception:
                    # Its lease runs out and a later pass tries it again; the others go on.
                    log.exception("timer %s failed; retried after its lease", key)

    async def fire(self, key: str, token: str) -> bool:
        """Fire one claimed row: send what its rule says, then reschedule or remove it."""

        async def work(store: NotificationsStore) -> bool:
            timer = await store.timer(key)
            if timer is None or timer.lease_token != token:
                return False  # another worker's lease took it over, or it is gone
            owner = timer.owner
            if await store.erased(owner):
                # Between the tombstone and the erasure job: nothing more is sent to them,
                # and the row goes now rather than coming due again.
                await store.delete_timers([key])
                return False
            now = self._clock()
            state = (await store.users([owner])).get(owner) or UserState(owner)
            if timer.notice is not None:
                return await self._fire_pending(store, state, timer, now)
            kind = timer.kind
            if not is_timed(kind):
                raise AssertionError(f"a schedule row of an event-driven kind: {key}")
            facts = await day_facts(store, owner, timed_day(kind, timer.fire_at, state.settings))
            outcome = timed_decision(kind, state, timer.fire_at, now, facts)
            sent = None
            if isinstance(outcome, Decision):
                sent = await send(store, state, outcome, now, self._new_id)
            else:
                log.debug("%s for %s not sent: %s", kind, owner.key, outcome)
            # A row found late is set for the first fire time still within reach: one missed
            # by a long outage goes to today's time if that is not yet missed too.
            since = max(timer.fire_at, now - MISSED_AFTER)
            fire_at = next_fire(kind, state, await store.latest_checkin(owner), since)
            if fire_at is None:
                await store.delete_timers([key])
            else:
                await store.save_timers([timer.rescheduled(fire_at)])
            return sent is not None

        return await self._uow.run(work)

    async def _fire_pending(
        self, store: NotificationsStore, state: UserState, timer: Timer, now: datetime
    ) -> bool:
        assert timer.notice is not None
        outcome = event_decision_at(timer.notice, state.settings, now)
        if isinstance(outcome, datetime):  # the quiet hours moved meanwhile
            await store.save_timers([timer.rescheduled(outcome)])
            return False
        await store.delete_timers([timer.key])
        if not isinstance(outcome, Decision):
            return False
        return await send(store, state, outcome, now, self._new_id) is not None

    async def list_sent(self, owner: Owner, *, limit: int, cursor: SentCursor | None) -> SentPage:
        """A page of the caller's notifications, newest first."""

        async def work(store: NotificationsStore) -> SentPage:
            rows = await store.sent_page(owner, limit=limit + 1, after=cursor)
            items = rows[:limit]
            more = len(rows) > limit
            return SentPage(items, SentCursor.after(items[-1]) if more else None)

        return await self._uow.read(work)
