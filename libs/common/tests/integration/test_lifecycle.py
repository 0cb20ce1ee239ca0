"""The shared erasure (SPEC §9) against the real server: tombstones, late events, jobs, export."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from mandaact_common.consumer import PROCESSED, IdempotentConsumer, Inbound
from mandaact_common.keys import deletion_id
from mandaact_common.lifecycle import (
    ERASURE_JOBS,
    TOMBSTONES,
    Eraser,
    Lifecycle,
    by_fields,
    by_owner_key,
    export_chunks,
)
from mandaact_common.mongo import Doc
from mandaact_common.outbox import OUTBOX, OUTBOX_EVENTS, Transaction
from mandaact_common.settings import DEV_ERASURE_KEY
from mandaact_common.testing import (
    QueryPlans,
    RecordingDeadLetters,
    SettableClock,
    documents_naming,
    erasure_of,
    record_of,
)
from mandaact_contracts import topics
from mandaact_contracts.events import ActionCompleted, EventPayload

pytestmark = pytest.mark.integration

KEY = DEV_ERASURE_KEY.encode()
NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
LIFECYCLE = Lifecycle("testsvc", holdings=(by_fields("things"), by_owner_key("states")))


def completed(tenant: str, user: str) -> ActionCompleted:
    return ActionCompleted(
        tenant_id=tenant,
        user_id=user,
        checkin_id=str(uuid.uuid4()),
        action_id="a1",
        mandalart_id="m1",
        sub_goal_position=1,
        sub_goal_title="Event flows",
        action_title="Draw the flow",
        action_type="routine",
        local_date=date(2026, 12, 2),
        timezone="Asia/Seoul",
        occurred_at=NOW,
        seq=1,
    )


async def handler(tx: Transaction, items: list[Inbound]) -> None:
    """Each check-in leaves a document with the ids in fields, and one under the owner key."""
    for item in items:
        p = item.payload
        await tx.db["things"].insert_one(
            {"tenant_id": p.tenant_id, "user_id": p.user_id, "event": item.envelope.id},
            session=tx.session,
        )
        await tx.db["states"].update_one(
            {"_id": f"{p.tenant_id}:{p.user_id}|2026-W49"},
            {"$inc": {"n": 1}},
            upsert=True,
            session=tx.session,
        )


@pytest.fixture
def clock() -> SettableClock:
    return SettableClock(NOW)


@pytest.fixture
def parts(mongo_client: Any, unique_db_name: str, clock: SettableClock) -> Any:
    db = mongo_client[unique_db_name]
    eraser = Eraser(LIFECYCLE, mongo_client, db, KEY, grace=timedelta(seconds=40), clock=clock)
    return db, eraser, consumer_of(mongo_client, db, eraser)


def consumer_of(client: Any, db: Any, eraser: Eraser) -> IdempotentConsumer:
    """The test service's consumer: `handler`, with the eraser."""
    return IdempotentConsumer(
        group="testsvc",
        client=client,
        db=db,
        handler=handler,
        dead_letters=RecordingDeadLetters(),
        eraser=eraser,
    )


async def feed(consumer: IdempotentConsumer, *events: EventPayload) -> None:
    await consumer.process([record_of(e, offset=i) for i, e in enumerate(events)])


async def test_a_user_is_erased_after_the_grace_and_later_events_change_nothing(
    parts: Any, clock: SettableClock, mongo_client: Any, unique_db_name: str
) -> None:
    db, eraser, consumer = parts
    try:
        await feed(consumer, completed("acme", "alice"), completed("acme", "bob"))
        await feed(consumer, completed("globex", "alice"), completed("acme", "alice"))
        await feed(consumer, erasure_of("acme", "alice", at=NOW))
        did = deletion_id(KEY, "acme", "alice")
        assert await db[TOMBSTONES].find_one({"_id": did}) is not None
        # A late check-in (a replay, a redriven dead letter) is dropped, nothing recorded of it.
        late = completed("acme", "alice")
        processed_before = await db[PROCESSED].count_documents({})
        await feed(consumer, late, completed("acme", "bob"))
        assert await db[PROCESSED].count_documents({}) == processed_before + 1  # bob's only
        assert await db["things"].count_documents({"user_id": "alice", "tenant_id": "acme"}) == 2

        assert await eraser.run_due() == 0, "nothing starts inside the grace"
        clock.advance(timedelta(seconds=41))
        assert await eraser.run_due() == 1

        left = await documents_naming(db, "alice")
        # globex's alice is another user; acme's alice left only her `user.erased` outbox row.
        assert {(name, d.get("tenant_id")) for name, d in left} <= {
            ("things", "globex"),
            ("states", None),
            ("outbox_events", "acme"),
        }
        assert [d["_id"] for name, d in left if name == "states"] == ["globex:alice|2026-W49"]
        (row,) = [d for name, d in left if name == OUTBOX_EVENTS]
        (event,) = row["events"]
        assert event["topic"] == topics.USER_ERASED
        answer = json.loads(event["value"])
        assert answer["service"] == "testsvc"
        assert answer["scope"] == "user"
        assert answer["deletion_id"] == did
        assert await db["things"].count_documents({"tenant_id": "acme", "user_id": "bob"}) == 2
        assert await db["states"].find_one({"_id": "acme:bob|2026-W49"}) == {
            "_id": "acme:bob|2026-W49",
            "n": 2,
        }
        tombstone = await db[TOMBSTONES].find_one({"_id": did})
        assert tombstone["erased_at"] is not None
        assert set(tombstone) == {"_id", "scope", "at", "erased_at"}, "no id in the tombstone"
        assert await db[ERASURE_JOBS].count_documents({}) == 0

        # Asking again (goals' event redelivered, or a second DELETE) erases nothing more and
        # answers once more only if a new job ran: the tombstone keeps its first time.
        await feed(consumer, erasure_of("acme", "alice", at=NOW + timedelta(hours=1)))
        assert (await db[TOMBSTONES].find_one({"_id": did}))["at"] == NOW
    finally:
        await mongo_client.drop_database(unique_db_name)


async def test_a_tenant_is_erased_whole_and_other_tenants_keep_everything(
    parts: Any, clock: SettableClock, mongo_client: Any, unique_db_name: str
) -> None:
    db, eraser, consumer = parts
    try:
        await feed(consumer, completed("acme", "alice"), completed("acme", "bob"))
        await feed(consumer, completed("globex", "carol"))
        await feed(consumer, erasure_of("acme", at=NOW))
        await feed(consumer, completed("acme", "dave"))  # a new user of the deleted tenant
        clock.advance(timedelta(seconds=41))
        assert await eraser.run_due() == 1
        left = await documents_naming(db, "acme")
        # Only the `user.erased` answer waiting in the outbox (the relay deletes it once sent).
        assert [name for name, _ in left] == [OUTBOX, OUTBOX_EVENTS]
        assert [e["topic"] for e in left[1][1]["events"]] == [topics.USER_ERASED]
        assert await db[PROCESSED].count_documents({"tenant_id": "acme"}) == 0
        assert await db["things"].count_documents({"tenant_id": "globex"}) == 1
        assert await db["states"].count_documents({}) == 1
        assert await db[PROCESSED].count_documents({"tenant_id": "globex"}) == 1
    finally:
        await mongo_client.drop_database(unique_db_name)


async def test_a_crashed_erasure_is_resumed_by_another_worker_after_its_lease(
    parts: Any, clock: SettableClock, mongo_client: Any, unique_db_name: str
) -> None:
    db, eraser, consumer = parts
    try:
        await feed(consumer, completed("acme", "alice"))
        await feed(consumer, erasure_of("acme", "alice", at=NOW))
        clock.advance(timedelta(seconds=41))
        # A worker took the job and died before finishing (its lease is still running).
        taken = await eraser._take()
        assert taken is not None
        other = Eraser(LIFECYCLE, mongo_client, db, KEY, grace=timedelta(0), clock=clock)
        assert await other.run_due() == 0, "a held job is not taken twice"
        clock.advance(timedelta(seconds=61))
        assert await other.run_due() == 1
        assert await db["things"].count_documents({"user_id": "alice"}) == 0
    finally:
        await mongo_client.drop_database(unique_db_name)


async def test_the_export_is_the_callers_documents_as_one_json_document(
    parts: Any, mongo_client: Any, unique_db_name: str
) -> None:
    db, _, consumer = parts
    try:
        await feed(consumer, completed("acme", "alice"), completed("acme", "bob"))
        await feed(consumer, completed("acme", "alice"))
        body = b"".join([c async for c in export_chunks(db, LIFECYCLE, "acme", "alice", NOW)])
        export = json.loads(body)
        assert export["service"] == "testsvc"
        assert (export["tenant_id"], export["user_id"]) == ("acme", "alice")
        assert export["exported_at"] == "2026-12-02T09:00:00Z"
        collections = export["collections"]
        assert set(collections) == {"things", "states"}, "replay caches are not exported"
        assert [t["user_id"] for t in collections["things"]] == ["alice", "alice"]
        assert collections["states"] == [{"_id": "acme:alice|2026-W49", "n": 2}]
        assert "bob" not in body.decode()
    finally:
        await mongo_client.drop_database(unique_db_name)


KEYED = Lifecycle("testsvc", holdings=(by_owner_key("rows", key="uk"), by_owner_key("states")))


async def test_owner_keyed_documents_are_found_by_index_ranges_and_only_the_subjects(
    infra: Any, unique_db_name: str, clock: SettableClock
) -> None:
    """A user's documents under their key and its sub-keys, and nobody else's: not a user
    whose id starts with theirs ("al" and "alice"), not another tenant's. Keyed in a field of
    their own, the export and the erasure read them by its index (an `$or` or a `$regex` is a
    scan of every tenant's documents on the server used here; so is any `_id` range, which
    is why `states` is only checked for what it finds)."""
    plans = QueryPlans()
    client: AsyncMongoClient[Doc] = AsyncMongoClient(
        infra.mongodb_url, tz_aware=True, event_listeners=[plans]
    )
    db = client[unique_db_name]
    keys = ["acme:al", "acme:al|w1", "acme:al|w2", "acme:alice", "acme:alice|w1", "acmex:al|w1"]
    try:
        await db["rows"].create_index("uk")
        await db["rows"].insert_many([{"_id": n, "uk": k} for n, k in enumerate(keys)])
        await db["states"].insert_many([{"_id": k} for k in keys])
        body = b"".join([c async for c in export_chunks(db, KEYED, "acme", "al", NOW)])
        exported = json.loads(body)["collections"]
        assert [d["uk"] for d in exported["rows"]] == ["acme:al", "acme:al|w1", "acme:al|w2"]
        assert [d["_id"] for d in exported["states"]] == ["acme:al", "acme:al|w1", "acme:al|w2"]
        eraser = Eraser(KEYED, client, db, KEY, grace=timedelta(0), clock=clock)
        consumer = consumer_of(client, db, eraser)
        await feed(consumer, erasure_of("acme", "al", at=NOW))
        assert await eraser.run_due() == 1
        for name, field in (("rows", "uk"), ("states", "_id")):
            left = sorted(d[field] for d in await db[name].find({}).to_list())
            assert left == ["acme:alice", "acme:alice|w1", "acmex:al|w1"]
        await feed(consumer, erasure_of("acme", at=NOW))
        assert await eraser.run_due() == 1
        assert [d["uk"] for d in await db["rows"].find({}).to_list()] == ["acmex:al|w1"]
        assert [d["_id"] for d in await db["states"].find({}).to_list()] == ["acmex:al|w1"]
        scans = [x for x in await plans.scans(client) if x["command"]["find"] == "rows"]
        assert [x for x in scans if x["command"].get("filter")] == []
    finally:
        await client.drop_database(unique_db_name)
        await client.close()
