"""The fold use case: a batch of events becomes compact per-user, per-week facts, in one
transaction, with one read and one bulk write per collection for the whole batch."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta

from mandaact_common.consumer import Inbound
from mandaact_common.domain.calendar import iso_week, local_date, parse_iso_week, zone
from mandaact_common.domain.schedule import Action, Schedule
from mandaact_common.outbox import Transaction
from mandaact_contracts.events import (
    ActionCompleted,
    ActionUncompleted,
    BadgeUnlocked,
    EventPayload,
    GoalChanged,
    LevelReached,
    StreakChanged,
    UserChanged,
    XpAwarded,
    XpRevoked,
)
from reports.domain.facts import (
    CheckinState,
    Grid,
    GridBucket,
    GridSubGoal,
    StreakFact,
    UserFacts,
    WeekFacts,
)
from reports.store.mongo import (
    FoldStore,
    bucket_key,
    report_due_fields,
    user_key,
    week_key,
)

REPORT_TIME = time(6, 0)
"""Reports are due on the Monday after the week at 06:00 in the user's timezone."""


def report_due_at(week: str, timezone: str) -> datetime:
    """The instant (UTC) the report of `week` is due: the next Monday 06:00 local."""
    _, sunday = parse_iso_week(week)
    local = datetime.combine(sunday + timedelta(days=1), REPORT_TIME, zone(timezone))
    return local.astimezone(UTC)


def grid_of(event: GoalChanged) -> Grid:
    """The grid a goal.changed carries, as the due rules read it (references left out)."""
    m = event.mandalart
    return Grid(
        id=m.id,
        title=m.title,
        version=m.version,
        active=m.active,
        deleted=m.deleted,
        sub_goals=tuple(
            GridSubGoal(
                position=sg.position,
                title=sg.title,
                actions=tuple(
                    Action(
                        id=a.id,
                        type=a.type,
                        schedule=(
                            Schedule.from_parts(
                                a.schedule.frequency, a.schedule.days, a.schedule.times
                            )
                            if a.schedule is not None and a.type == "routine"
                            else None
                        ),
                        added_on=a.added_on,
                        due_date=a.due_date if a.type == "mission" else None,
                    )
                    for a in sg.actions
                    if a.type != "reference"
                ),
            )
            for sg in m.sub_goals
        ),
    )


def checkin_of(event: ActionCompleted | ActionUncompleted) -> CheckinState:
    """The check-in state a check-in event announces."""
    return CheckinState(
        action_id=event.action_id,
        local_date=event.local_date,
        seq=event.seq,
        done=isinstance(event, ActionCompleted),
        action_type=event.action_type,
        mandalart_id=event.mandalart_id,
        sub_goal_position=event.sub_goal_position,
        local_hour=event.occurred_at.astimezone(zone(event.timezone)).hour,
    )


def _grid_week(event: GoalChanged) -> str:
    return iso_week(local_date(event.mandalart.updated_at, event.timezone))


def _week_of_event(p: EventPayload) -> str | None:
    """The ISO week a week-scoped event belongs to (None for user-scoped ones)."""
    if isinstance(p, ActionCompleted | ActionUncompleted):
        return iso_week(p.local_date)
    if isinstance(p, XpAwarded | XpRevoked) and p.local_date is not None:
        return iso_week(p.local_date)
    if isinstance(p, StreakChanged) and p.last_active_date is not None:
        return iso_week(p.last_active_date)
    return None


@dataclass
class _Batch:
    """The documents a batch reads and the ones it changed."""

    users: dict[str, UserFacts]
    weeks: dict[str, WeekFacts]
    buckets: dict[str, GridBucket]
    dirty_users: set[str] = field(default_factory=set)
    dirty_weeks: set[str] = field(default_factory=set)
    dirty_buckets: set[str] = field(default_factory=set)
    checkin_weeks: set[str] = field(default_factory=set)
    moved_users: set[str] = field(default_factory=set)

    def user(self, p: EventPayload) -> tuple[str, UserFacts]:
        uk = user_key(p.tenant_id, p.user_id)
        return uk, self.users.setdefault(uk, UserFacts(p.tenant_id, p.user_id))

    def week(self, p: EventPayload, week: str) -> tuple[str, WeekFacts]:
        key = week_key(user_key(p.tenant_id, p.user_id), week)
        return key, self.weeks.setdefault(key, WeekFacts(p.tenant_id, p.user_id, week))

    def apply(self, p: EventPayload) -> None:
        """Fold one event into the facts it touches."""
        uk, user = self.user(p)
        timezone = user.effective_timezone
        self._apply(uk, user, p)
        if user.effective_timezone != timezone:
            self.moved_users.add(uk)

    def _apply(self, uk: str, user: UserFacts, p: EventPayload) -> None:
        week = _week_of_event(p)
        if isinstance(p, ActionCompleted | ActionUncompleted):
            assert week is not None
            key, facts = self.week(p, week)
            state = checkin_of(p)
            if facts.record_checkin(state):
                self.dirty_weeks.add(key)
                self.checkin_weeks.add(key)
            if state.action_type == "mission" and user.record_mission(state):
                self.dirty_users.add(uk)
            if user.record_checkin_timezone(p.timezone, p.occurred_at):
                self.dirty_users.add(uk)
        elif isinstance(p, XpAwarded | XpRevoked):
            if week is not None:
                key, facts = self.week(p, week)
                if facts.record_xp(p.entry_id, p.amount):
                    self.dirty_weeks.add(key)
            elif user.record_undated_xp(p.entry_id, p.amount, p.created_at):
                self.dirty_users.add(uk)
        elif isinstance(p, StreakChanged):
            if week is not None:
                key, facts = self.week(p, week)
                if facts.record_streak(StreakFact(p.changed_at, p.current, p.longest)):
                    self.dirty_weeks.add(key)
        elif isinstance(p, UserChanged):
            if user.record_settings(p.version, p.timezone, p.locale):
                self.dirty_users.add(uk)
        elif isinstance(p, GoalChanged):
            key = bucket_key(uk, p.mandalart.id, _grid_week(p))
            grid = grid_of(p)
            bucket = self.buckets.get(key)
            if bucket is None:
                self.buckets[key] = GridBucket(p.tenant_id, p.user_id, _grid_week(p), grid)
                self.dirty_buckets.add(key)
            elif bucket.record(grid):
                self.dirty_buckets.add(key)
        elif isinstance(p, LevelReached):
            if user.record_level(p.level, p.reached_at):
                self.dirty_users.add(uk)
        elif isinstance(p, BadgeUnlocked) and user.record_badge(p.badge, p.unlocked_at):
            self.dirty_users.add(uk)


def _keys_to_read(items: list[Inbound]) -> tuple[set[str], set[str], set[str]]:
    uks: set[str] = set()
    weeks: set[str] = set()
    buckets: set[str] = set()
    for item in items:
        p = item.payload
        uk = user_key(p.tenant_id, p.user_id)
        uks.add(uk)
        week = _week_of_event(p)
        if week is not None:
            weeks.add(week_key(uk, week))
        if isinstance(p, GoalChanged):
            buckets.add(bucket_key(uk, p.mandalart.id, _grid_week(p)))
    return uks, weeks, buckets


async def apply_batch(tx: Transaction, items: list[Inbound]) -> None:
    """Fold a batch of new events into the facts, and keep the report jobs' due times."""
    store = FoldStore(tx.db, tx.session)
    uks, week_ids, bucket_ids = _keys_to_read(items)
    batch = _Batch(
        users=await store.users(uks),
        weeks=await store.weeks(week_ids),
        buckets=await store.buckets(bucket_ids),
    )
    for item in items:
        batch.apply(item.payload)

    jobs: dict[str, dict[str, object]] = {}
    known = await store.jobs(batch.checkin_weeks)
    for key in batch.checkin_weeks:
        facts = batch.weeks[key]
        uk = key.rsplit("|", 1)[0]
        tz = batch.users[uk].effective_timezone
        fields = report_due_fields(uk, facts, report_due_at(facts.week, tz))
        current = known.get(key)
        # Most check-ins change neither whether the week has one nor when its report is due.
        if current is None or any(current.get(k) != v for k, v in fields.items()):
            jobs[key] = fields
    if batch.moved_users:
        # A new timezone moves the Monday 06:00 of every report still to be written.
        for job in await store.open_jobs(batch.moved_users):
            if job["_id"] not in jobs:
                tz = batch.users[job["uk"]].effective_timezone
                jobs[job["_id"]] = {"due_at": report_due_at(job["week"], tz)}
    await store.save(
        {k: batch.users[k] for k in batch.dirty_users},
        {k: batch.weeks[k] for k in batch.dirty_weeks},
        {k: batch.buckets[k] for k in batch.dirty_buckets},
        list(jobs.items()),
    )
