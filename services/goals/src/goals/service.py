"""Use cases of the goals service: a command and the ports in, the result and its events out.

Each change runs in one unit of work: read the current state, check the If-Match precondition,
apply the domain rule, write conditionally on the version read, and emit the event with the
whole new state. A change that changes nothing writes nothing and emits nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from goals.domain.deletion import Deletion
from goals.domain.errors import NotFound
from goals.domain.model import (
    UNSET,
    ActionDraft,
    IfMatch,
    Mandalart,
    MandalartDraft,
    Owner,
    PageCursor,
    QuietHours,
    SubGoalDraft,
    Unset,
    UserSettings,
    check_precondition,
    ensure_room_for_grid,
)
from goals.store.ports import GoalsStore, UnitOfWork
from mandaact_common.clock import Clock, NewId, new_uuid, utc_now
from mandaact_common.domain.calendar import today_in
from mandaact_common.domain.pauses import Pause
from mandaact_common.idempotency import IdempotentRequest, StoredResponse
from mandaact_common.keys import deletion_id
from mandaact_common.lifecycle import Subject
from mandaact_common.settings import DEV_ERASURE_KEY
from mandaact_contracts import topics
from mandaact_contracts.events import TenantDeleted, UserDeleted, UserErased

Presenter = Callable[[Mandalart], StoredResponse]
Change = Callable[[Mandalart, date, datetime], Mandalart]


@dataclass(frozen=True, slots=True)
class ChangeSettings:
    """Change some of a user's settings (fields left UNSET keep their value)."""

    timezone: str | Unset = UNSET
    locale: str | Unset = UNSET
    display_name: str | Unset | None = UNSET
    day_starts_at: str | Unset = UNSET
    reminder_time: str | Unset = UNSET
    quiet_hours: QuietHours | Unset = UNSET
    notifications: Mapping[str, bool] | Unset = UNSET


@dataclass(frozen=True, slots=True)
class EditMandalart:
    """Change a grid's title, description or active flag (fields left UNSET keep their value)."""

    title: str | Unset = UNSET
    description: str | Unset | None = UNSET
    active: bool | Unset = UNSET


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a user's grids, newest first, and where the next page starts."""

    items: list[Mandalart]
    next_cursor: PageCursor | None


def _grid_not_found(mandalart_id: str) -> NotFound:
    return NotFound(f"no mandalart {mandalart_id} for this user")


class GoalsService:
    """The goals use cases over a unit of work."""

    def __init__(
        self,
        uow: UnitOfWork,
        *,
        clock: Clock = utc_now,
        new_id: NewId = new_uuid,
        erasure_key: bytes = DEV_ERASURE_KEY.encode(),
        erasure_grace: timedelta = timedelta(seconds=40),
    ):
        self._uow = uow
        self._clock = clock
        self._new_id = new_id
        self._erasure_key = erasure_key
        self._erasure_grace = erasure_grace

    # --- settings ------------------------------------------------------------------------------

    async def get_settings(self, owner: Owner) -> UserSettings:
        """The owner's settings, or the defaults when never saved."""

        async def work(store: GoalsStore) -> UserSettings:
            return await store.get_settings(owner) or UserSettings(owner)

        return await self._uow.read(work)

    async def change_settings(
        self, owner: Owner, command: ChangeSettings, if_match: IfMatch | None = None
    ) -> UserSettings:
        """Save the settings and emit `user.changed` when something changed."""

        async def work(store: GoalsStore) -> UserSettings:
            current = await store.get_settings(owner) or UserSettings(owner)
            check_precondition(if_match, current.version)
            changed = current.change(
                timezone=command.timezone,
                locale=command.locale,
                display_name=command.display_name,
                day_starts_at=command.day_starts_at,
                reminder_time=command.reminder_time,
                quiet_hours=command.quiet_hours,
                notifications=command.notifications,
                now=self._clock(),
            )
            await self._save_settings(store, current, changed)
            return changed

        return await self._uow.run(work)

    async def set_pauses(
        self, owner: Owner, pauses: list[Pause], if_match: IfMatch | None = None
    ) -> UserSettings:
        """Replace the owner's vacation pauses and emit `user.changed` when they changed."""

        async def work(store: GoalsStore) -> UserSettings:
            current = await store.get_settings(owner) or UserSettings(owner)
            check_precondition(if_match, current.version)
            now = self._clock()
            today = today_in(current.timezone, now, current.day_starts_at)
            changed = current.with_pauses(pauses, today=today, now=now)
            await self._save_settings(store, current, changed)
            return changed

        return await self._uow.run(work)

    @staticmethod
    async def _save_settings(
        store: GoalsStore, current: UserSettings, changed: UserSettings
    ) -> None:
        if changed is not current:
            await store.save_settings(changed, previous_version=current.version)
            owner = changed.owner
            store.emit(topics.USER_CHANGED, changed.changed_event(), f"users/{owner.user_id}")

    # --- grids ---------------------------------------------------------------------------------

    async def create_mandalart(self, owner: Owner, draft: MandalartDraft) -> Mandalart:
        """Create a grid and emit `goal.changed` with it."""

        async def work(store: GoalsStore) -> Mandalart:
            return await self._create(store, owner, draft)

        return await self._uow.run(work)

    async def create_mandalart_once(
        self,
        owner: Owner,
        draft: MandalartDraft,
        request: IdempotentRequest,
        present: Presenter,
    ) -> StoredResponse:
        """Create a grid at most once per idempotency key; a repeat replays the first answer."""

        async def work(store: GoalsStore) -> StoredResponse:
            return present(await self._create(store, owner, draft))

        return await self._uow.run_once(request, work)

    async def get_mandalart(self, owner: Owner, mandalart_id: str) -> Mandalart:
        """The owner's live grid; NotFound for anyone else's, a deleted or an unknown one."""

        async def work(store: GoalsStore) -> Mandalart | None:
            return await store.get_mandalart(owner, mandalart_id)

        found = await self._uow.read(work)
        if found is None:
            raise _grid_not_found(mandalart_id)
        return found

    async def list_mandalarts(
        self,
        owner: Owner,
        *,
        limit: int,
        cursor: PageCursor | None = None,
        active: bool | None = None,
    ) -> Page:
        """One page of the owner's live grids, newest first."""

        async def work(store: GoalsStore) -> list[Mandalart]:
            # One extra row tells whether another page exists without a count query.
            return await store.list_mandalarts(owner, limit=limit + 1, after=cursor, active=active)

        rows = await self._uow.read(work)
        items = rows[:limit]
        more = len(rows) > limit
        return Page(items, PageCursor.after(items[-1]) if more and items else None)

    async def edit_mandalart(
        self,
        owner: Owner,
        mandalart_id: str,
        command: EditMandalart,
        if_match: IfMatch | None = None,
    ) -> Mandalart:
        """Change the title, description or active flag."""

        def change(grid: Mandalart, today: date, now: datetime) -> Mandalart:
            return grid.edit(
                title=command.title,
                description=command.description,
                active=command.active,
                now=now,
            )

        return await self._change(owner, mandalart_id, if_match, change)

    async def put_sub_goal(
        self,
        owner: Owner,
        mandalart_id: str,
        draft: SubGoalDraft,
        if_match: IfMatch | None = None,
    ) -> Mandalart:
        """Create or replace a sub-goal (its actions keep their ids by position)."""

        def change(grid: Mandalart, today: date, now: datetime) -> Mandalart:
            return grid.put_sub_goal(draft, today=today, now=now, new_id=self._new_id)

        return await self._change(owner, mandalart_id, if_match, change)

    async def put_action(
        self,
        owner: Owner,
        mandalart_id: str,
        sub_goal_position: int,
        draft: ActionDraft,
        if_match: IfMatch | None = None,
    ) -> Mandalart:
        """Create or replace an action of an existing sub-goal (keeps its id)."""

        def change(grid: Mandalart, today: date, now: datetime) -> Mandalart:
            return grid.put_action(
                sub_goal_position, draft, today=today, now=now, new_id=self._new_id
            )

        return await self._change(owner, mandalart_id, if_match, change)

    async def remove_action(
        self,
        owner: Owner,
        mandalart_id: str,
        sub_goal_position: int,
        action_position: int,
        if_match: IfMatch | None = None,
    ) -> Mandalart:
        """Remove an action."""

        def change(grid: Mandalart, today: date, now: datetime) -> Mandalart:
            return grid.remove_action(sub_goal_position, action_position, now=now)

        return await self._change(owner, mandalart_id, if_match, change)

    async def delete_mandalart(
        self, owner: Owner, mandalart_id: str, if_match: IfMatch | None = None
    ) -> Mandalart:
        """Archive the grid: it leaves lists and reads, and `goal.changed` says `deleted`."""

        def change(grid: Mandalart, today: date, now: datetime) -> Mandalart:
            return grid.archive(now=now)

        return await self._change(owner, mandalart_id, if_match, change)

    # --- data lifecycle (SPEC §9) ---------------------------------------------------------------

    async def delete_me(self, owner: Owner) -> Deletion:
        """Forget the user: tombstone, erasure job and `user.deleted`, in one unit. Asking
        again changes nothing and answers the same record."""
        return await self._ask_deletion(Subject(owner.tenant_id, owner.user_id), owner)

    async def delete_tenant(self, admin: Owner) -> Deletion:
        """Forget the whole tenant (its admin asked): as `delete_me`, with `tenant.deleted`."""
        return await self._ask_deletion(Subject(admin.tenant_id, None), admin)

    async def _ask_deletion(self, subject: Subject, asker: Owner) -> Deletion:
        did = deletion_id(self._erasure_key, subject.tenant_id, subject.user_id)

        async def work(store: GoalsStore) -> Deletion:
            held = await store.get_deletion(did)
            if held is not None:
                return held
            now = self._clock()
            deletion = Deletion.requested(did, subject.scope, now)
            await store.begin_deletion(deletion, subject, now + self._erasure_grace)
            kind = UserDeleted if subject.user_id is not None else TenantDeleted
            topic = topics.USER_DELETED if subject.user_id is not None else topics.TENANT_DELETED
            event = kind(
                tenant_id=asker.tenant_id,
                user_id=asker.user_id,
                deletion_id=did,
                requested_at=now,
            )
            store.emit(topic, event)
            return deletion

        return await self._uow.run(work)

    async def deletion_of(self, owner: Owner, *, tenant: bool = False) -> Deletion:
        """The caller's deletion record (or, `tenant`, their tenant's); NotFound without one."""
        user = None if tenant else owner.user_id
        did = deletion_id(self._erasure_key, owner.tenant_id, user)

        async def work(store: GoalsStore) -> Deletion | None:
            return await store.get_deletion(did)

        found = await self._uow.read(work)
        if found is None:
            whose = "this tenant" if tenant else "this user"
            raise NotFound(f"no deletion was asked for {whose}")
        return found

    # --- helpers -------------------------------------------------------------------------------

    @staticmethod
    async def _settings(store: GoalsStore, owner: Owner) -> UserSettings:
        return await store.get_settings(owner) or UserSettings(owner)

    async def _create(self, store: GoalsStore, owner: Owner, draft: MandalartDraft) -> Mandalart:
        ensure_room_for_grid(await store.count_live_mandalarts_for_create(owner))
        now = self._clock()
        settings = await self._settings(store, owner)
        timezone = settings.timezone
        grid = Mandalart.create(
            self._new_id(),
            owner,
            draft,
            today=today_in(timezone, now, settings.day_starts_at),
            now=now,
            new_id=self._new_id,
        )
        await store.add_mandalart(grid)
        self._announce(store, grid, timezone)
        return grid

    async def _change(
        self, owner: Owner, mandalart_id: str, if_match: IfMatch | None, change: Change
    ) -> Mandalart:
        async def work(store: GoalsStore) -> Mandalart:
            current = await store.get_mandalart(owner, mandalart_id)
            if current is None:
                raise _grid_not_found(mandalart_id)
            check_precondition(if_match, current.version)
            now = self._clock()
            settings = await self._settings(store, owner)
            timezone = settings.timezone
            changed = change(current, today_in(timezone, now, settings.day_starts_at), now)
            if changed is not current:
                await store.save_mandalart(changed, previous_version=current.version)
                self._announce(store, changed, timezone)
            return changed

        return await self._uow.run(work)

    @staticmethod
    def _announce(store: GoalsStore, grid: Mandalart, timezone: str) -> None:
        store.emit(topics.GOAL_CHANGED, grid.changed_event(timezone), f"mandalarts/{grid.id}")


async def record_erasures(
    store: GoalsStore, answers: list[UserErased], *, erasure_key: bytes
) -> None:
    """Each service's `user.erased`, in the consumer's unit: the deletion records' answers
    (an answer for a deletion goals never asked for is ignored)."""
    for answer in answers:
        user = None if answer.scope == "tenant" else answer.user_id
        did = deletion_id(erasure_key, answer.tenant_id, user)
        held = await store.get_deletion(did)
        if held is None:
            continue
        changed = held.erased_by(answer.service, answer.erased_at)
        if changed is not held:
            await store.save_deletion(changed)
