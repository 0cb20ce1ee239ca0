"""The shared unit of work's in-memory twin, the owner-key scheme and the one problem mapping."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mandaact_common import errors
from mandaact_common.codecs import action_doc, action_from
from mandaact_common.domain.schedule import Action, Schedule
from mandaact_common.idempotency import IdempotencyKeyReused, IdempotentRequest, StoredResponse
from mandaact_common.keys import owner_key, owner_of, parts_of, sub_key
from mandaact_common.problems import problem_of
from mandaact_common.unit_of_work import InMemoryStore, InMemoryUnitOfWork, MemoryTables
from mandaact_contracts.events import UserChanged

pytestmark = pytest.mark.unit


@dataclass
class Tables(MemoryTables):
    counts: dict[str, int] = field(default_factory=dict)


class Store(InMemoryStore[Tables]):
    def bump(self, name: str) -> int:
        self.tables.counts[name] = self.tables.counts.get(name, 0) + 1
        return self.tables.counts[name]


def _uow() -> InMemoryUnitOfWork[Tables, Store]:
    return InMemoryUnitOfWork(Tables(), Store)


def _changed() -> UserChanged:
    return UserChanged(
        tenant_id="acme",
        user_id="alice",
        display_name="Alice",
        timezone="Asia/Seoul",
        locale="ko",
        version=1,
        changed_at=datetime(2026, 11, 20, tzinfo=UTC),
    )


async def test_a_unit_that_raises_keeps_neither_its_changes_nor_its_events() -> None:
    uow = _uow()

    async def fails(store: Store) -> None:
        store.bump("a")
        store.emit("user.changed", _changed(), "alice")
        raise errors.Conflict("lost a race")

    with pytest.raises(errors.Conflict):
        await uow.run(fails)
    assert uow.tables.counts == {}
    assert uow.events == []


async def test_a_unit_that_returns_keeps_its_changes_and_events() -> None:
    uow = _uow()

    async def works(store: Store) -> int:
        store.emit("user.changed", _changed(), "alice")
        return store.bump("a")

    assert await uow.run(works) == 1
    assert uow.tables.counts == {"a": 1}
    assert [topic for topic, _, _ in uow.events] == ["user.changed"]


async def test_a_repeated_key_replays_and_another_body_is_refused() -> None:
    uow = _uow()
    request = IdempotentRequest("acme", "alice", "op", "k1", "body-1")

    async def works(store: Store) -> StoredResponse:
        return StoredResponse(201, {"n": store.bump("a")})

    first = await uow.run_once(request, works)
    again = await uow.run_once(request, works)
    assert first == again
    assert uow.tables.counts == {"a": 1}
    with pytest.raises(IdempotencyKeyReused):
        await uow.run_once(IdempotentRequest("acme", "alice", "op", "k1", "body-2"), works)


@given(st.lists(st.text(min_size=0, max_size=8), min_size=2, max_size=4))
def test_owner_keys_split_back_into_their_parts_one_way(parts: list[str]) -> None:
    tenant, user, *rest = parts
    key = sub_key(owner_key(tenant, user), *rest)
    assert owner_of(key) == owner_key(tenant, user)
    assert parts_of(key) == rest


def test_different_owners_never_share_a_key() -> None:
    assert owner_key("a:b", "c") != owner_key("a", "b:c")
    assert sub_key(owner_key("a", "b"), "c|d") != sub_key(owner_key("a", "b"), "c", "d")


def test_an_action_round_trips_through_its_stored_form() -> None:
    action = Action(
        "x", "routine", Schedule.from_parts("weekly", ["mon", "thu"], None), date(2026, 1, 2)
    )
    assert action_from(json.loads(json.dumps(action_doc(action)))) == action


@pytest.mark.parametrize(
    ("error", "status", "slug"),
    [
        (errors.InvalidInput("since", "must not be after until"), 422, "validation"),
        (errors.NotFound("no such action"), 404, "not-found"),
        (errors.RuleBroken("no", field="date"), 422, "rule-broken"),
        (errors.Conflict("raced"), 409, "conflict"),
        (errors.PreconditionFailed(3), 412, "precondition-failed"),
        (errors.LimitReached("too many", 3), 429, "too-many-requests"),
        (IdempotencyKeyReused.for_key("k"), 422, "idempotency-key-reused"),
    ],
)
def test_every_kind_of_domain_error_has_its_problem(
    error: errors.DomainError, status: int, slug: str
) -> None:
    response = problem_of(error).response("/x")
    body = json.loads(bytes(response.body))
    assert response.status_code == status
    assert body["type"].endswith("/" + slug)
    assert body["detail"] == error.detail
    if isinstance(error, errors.PreconditionFailed):
        assert response.headers["ETag"] == '"3"'
