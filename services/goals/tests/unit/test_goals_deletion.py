"""The deletion record's rules (SPEC §9) and the use cases over the in-memory store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from goals.domain.deletion import Deletion
from goals.domain.errors import NotFound
from goals.service import GoalsService, record_erasures
from goals.store.memory import InMemoryGoalsStore, InMemoryUnitOfWork
from mandaact_common.domain.owner import Owner
from mandaact_common.keys import deletion_id
from mandaact_common.settings import DEV_ERASURE_KEY
from mandaact_common.testing import SettableClock
from mandaact_contracts import topics
from mandaact_contracts.events import UserErased

pytestmark = pytest.mark.unit

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
KEY = DEV_ERASURE_KEY.encode()
ALICE = Owner("acme", "alice")


def answer(service: str, at: datetime = NOW, scope: str = "user") -> UserErased:
    return UserErased.model_validate(
        {
            "tenant_id": "acme",
            "user_id": "alice" if scope == "user" else "acme",
            "service": service,
            "scope": scope,
            "deletion_id": "x",
            "erased_at": at,
        }
    )


def test_a_deletion_completes_when_every_service_answered_once() -> None:
    deletion = Deletion.requested("u:1", "user", NOW)
    assert deletion.status == "pending"
    for i, service in enumerate(topics.ERASING_SERVICES):
        deletion = deletion.erased_by(service, NOW + timedelta(seconds=i))
    assert deletion.status == "complete"
    assert deletion.completed_at == NOW + timedelta(seconds=len(topics.ERASING_SERVICES) - 1)
    assert deletion.erased_by("goals", NOW + timedelta(days=1)) is deletion, "first answer counts"


async def test_delete_me_schedules_one_erasure_and_answers_the_same_record_again() -> None:
    uow = InMemoryUnitOfWork()
    clock = SettableClock(NOW)
    goals = GoalsService(uow, clock=clock, erasure_grace=timedelta(seconds=40))
    first = await goals.delete_me(ALICE)
    clock.advance(timedelta(minutes=5))
    again = await goals.delete_me(ALICE)
    assert again == first
    assert [topic for topic, _, _ in uow.events] == [topics.USER_DELETED]
    did = deletion_id(KEY, "acme", "alice")
    assert first.id == did
    subject, due = uow.tables.erasures[did]
    assert (subject.tenant_id, subject.user_id, due) == (
        "acme",
        "alice",
        NOW + timedelta(seconds=40),
    )
    assert await goals.deletion_of(ALICE) == first
    with pytest.raises(NotFound, match="no deletion was asked for this tenant"):
        await goals.deletion_of(ALICE, tenant=True)


async def test_answers_fill_the_record_and_unknown_deletions_are_ignored() -> None:
    uow = InMemoryUnitOfWork()
    goals = GoalsService(uow, clock=SettableClock(NOW))
    await goals.delete_me(ALICE)
    store = InMemoryGoalsStore(uow.tables)
    await record_erasures(store, [answer(s) for s in topics.ERASING_SERVICES], erasure_key=KEY)
    await record_erasures(store, [answer("checkins", scope="tenant")], erasure_key=KEY)
    assert (await goals.deletion_of(ALICE)).status == "complete"
    assert len(uow.tables.deletions) == 1, "a tenant answer without a tenant deletion is ignored"
