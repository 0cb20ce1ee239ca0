"""The gamification projection against the real MongoDB-compatible server, through the consumer."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest

from gamification.bootstrap import build_app, mongo_handler
from gamification.domain.progress import BoardDelta
from gamification.service import checkin_fact
from gamification.settings import Settings
from gamification.store.mongo import (
    FoldCache,
    MongoGamificationStore,
    bucket_path,
    ensure_indexes,
)
from gamification.store.ports import BoardRow
from mandaact_common.auth import mint_token
from mandaact_common.consumer import IdempotentConsumer
from mandaact_common.domain.owner import Owner
from mandaact_common.outbox import Transaction, pending_events
from mandaact_common.settings import DEV_JWT_SECRET
from mandaact_common.testing import MemoryRecord, record_of
from mandaact_contracts import topics
from mandaact_contracts.events import ActionCompleted, UserChanged
from services.gamification.tests.support import TENANT, USER, change, goal, inbound

pytestmark = pytest.mark.integration


class Harness:
    def __init__(self, client: Any, db_name: str) -> None:
        self.client = client
        self.db = client[db_name]
        self.db_name = db_name
        self.consumer = IdempotentConsumer(
            group="gamification",
            client=client,
            db=self.db,
            handler=mongo_handler(client, self.db),
            dead_letters=None,  # type: ignore[arg-type]
        )

    async def deliver(self, *records: MemoryRecord) -> None:
        await ensure_indexes(self.db)
        await self.consumer.process(list(records))

    async def progress(self, user: str = USER) -> dict[str, Any]:
        settings = Settings(env="test", mongodb_url="unused", mongodb_database=self.db_name)
        app = build_app(settings, client=self.client)
        token = mint_token(DEV_JWT_SECRET, TENANT, user)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
                r = await http.get("/v1/me/progress", headers={"Authorization": f"Bearer {token}"})
                assert r.status_code == 200, r.text
                ledger = await http.get(
                    "/v1/me/xp-ledger?limit=200", headers={"Authorization": f"Bearer {token}"}
                )
        body: dict[str, Any] = r.json()
        body["ledger"] = ledger.json()["items"]
        return body

    async def outbox_types(self) -> list[str]:
        return [e["topic"] for e in await pending_events(self.db)]


def checkins(progress: dict[str, Any]) -> list[int]:
    """Amounts of the check-in entries, newest first."""
    return [e["amount"] for e in progress["ledger"] if e["reason"] == "checkin"]


@pytest.fixture
def harness(mongo_client: Any, unique_db_name: str) -> Harness:
    return Harness(mongo_client, unique_db_name)


async def test_check_in_awards_ten_and_undo_takes_exactly_that_back(harness: Harness) -> None:
    day = date(2026, 11, 3)  # Tuesday: no weekend multiplier
    await harness.deliver(goal(), change("a1", day, 1))
    p = await harness.progress()
    assert checkins(p) == [10]
    assert p["xp_total"] == sum(e["amount"] for e in p["ledger"])
    badge_xp = sum(e["amount"] for e in p["ledger"] if e["reason"] == "badge")
    assert p["xp_total"] == 10 + badge_xp  # first check-in and first grid badges
    await harness.deliver(change("a1", day, 2, done=False))
    p = await harness.progress()
    assert checkins(p) == [-10, 10]
    assert p["xp_total"] == badge_xp  # badges are never taken back
    types = await harness.outbox_types()
    assert types.count(topics.XP_AWARDED) == len([e for e in p["ledger"] if e["amount"] > 0])
    assert types.count(topics.XP_REVOKED) == 1


async def test_the_same_event_delivered_twice_changes_nothing(harness: Harness) -> None:
    day = date(2026, 11, 3)
    first = change("a1", day, 1)
    await harness.deliver(goal(), first)
    before = await harness.progress()
    outbox_before = await harness.outbox_types()
    await harness.deliver(first)
    await harness.deliver(first, first)
    after = await harness.progress()
    assert after == before
    assert await harness.outbox_types() == outbox_before


async def test_perfect_day_is_awarded_once_and_taken_back_by_an_undo(harness: Harness) -> None:
    day = date(2026, 11, 3)
    await harness.deliver(goal(n_actions=2), change("a1", day, 1), change("a2", day, 1))
    p = await harness.progress()
    assert [e["amount"] for e in p["ledger"] if e["reason"] == "perfect_day"] == [50]
    assert p["perfect_days"] == 1
    await harness.deliver(change("a2", day, 2, done=False))
    p = await harness.progress()
    assert [e["amount"] for e in p["ledger"] if e["reason"] == "perfect_day"] == [-50, 50]
    assert checkins(p) == [-10, 10, 10]
    assert p["perfect_days"] == 0


async def test_shuffled_cross_topic_delivery_converges_to_the_in_order_result(
    mongo_client: Any,
) -> None:
    """An undo that arrives before its check, grids after check-ins: the same final state."""
    records = [goal(n_actions=3)]
    start = date(2026, 11, 2)
    for offset in range(9):
        day = start + timedelta(days=offset)
        for action in ("a1", "a2", "a3"):
            records.append(change(action, day, 1))
            if (offset + len(action)) % 4 == 0:
                records.append(change(action, day, 2, done=False))
    in_order = Harness(mongo_client, f"t_{uuid.uuid4().hex[:10]}")
    for r in records:
        await in_order.deliver(r)
    expected = await in_order.progress()

    shuffled = Harness(mongo_client, f"t_{uuid.uuid4().hex[:10]}")
    mixed = records + random.Random(7).sample(records, 8)
    random.Random(42).shuffle(mixed)
    for i in range(0, len(mixed), 5):
        await shuffled.deliver(*mixed[i : i + 5])
    got = await shuffled.progress()
    for field in ("xp_total", "level", "streak", "perfect_days"):
        assert got[field] == expected[field], field
    assert {b["code"] for b in got["badges"]} == {b["code"] for b in expected["badges"]}
    assert sum(e["amount"] for e in got["ledger"]) == expected["xp_total"]


async def _get(harness: Harness, path: str, tenant: str, user: str) -> httpx.Response:
    settings = Settings(env="test", mongodb_url="unused", mongodb_database=harness.db_name)
    app = build_app(settings, client=harness.client)
    token = mint_token(DEV_JWT_SECRET, tenant, user)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            return await http.get(path, headers={"Authorization": f"Bearer {token}"})


async def test_leaderboard_shows_only_the_callers_tenant_in_a_stable_order(
    harness: Harness,
) -> None:
    day = date(2026, 11, 3)
    await harness.deliver(
        goal(), goal(user="bob"), change("a1", day, 1), change("a1", day, 1, user="bob")
    )
    other = ActionCompleted(
        tenant_id="globex",
        user_id="mallory",
        checkin_id="c",
        action_id="x",
        mandalart_id="m",
        sub_goal_position=1,
        sub_goal_title="s",
        action_title="t",
        action_type="routine",
        local_date=day,
        timezone="Asia/Seoul",
        occurred_at=datetime(2026, 11, 3, 1, tzinfo=UTC),
        seq=1,
    )
    await harness.deliver(record_of(other))
    r = await _get(harness, "/v1/leaderboard?period=all", TENANT, USER)
    assert r.status_code == 200, r.text
    rows = r.json()["items"]
    # alice and bob earned the same XP: the tie is broken by user id, every time
    assert [(row["user_id"], row["xp"]) for row in rows] == [
        ("alice", rows[0]["xp"]),
        ("bob", rows[0]["xp"]),
    ]
    assert [row["rank"] for row in rows] == [1, 2]
    theirs = await _get(harness, "/v1/leaderboard?period=all", "globex", "mallory")
    assert [row["user_id"] for row in theirs.json()["items"]] == ["mallory"]


async def test_badges_catalogue_lists_unlocks_and_hides_secrets(harness: Harness) -> None:
    await harness.deliver(goal(), change("a1", date(2026, 11, 3), 1))
    r = await _get(harness, "/v1/badges", TENANT, USER)
    assert r.status_code == 200
    badges = r.json()
    assert len(badges) >= 25
    unlocked = {b["code"] for b in badges if b["unlocked_at"]}
    assert unlocked  # the first check-in unlocked something
    assert all(b["title"] == "???" for b in badges if b["secret"] and not b["unlocked_at"])


@pytest.mark.parametrize(
    "path",
    [
        "/v1/me/xp-ledger?limit=0",
        "/v1/me/xp-ledger?limit=abc",
        "/v1/me/xp-ledger?before=-1",
        "/v1/leaderboard?period=year",
        "/v1/leaderboard?limit=1000",
    ],
)
async def test_bad_query_parameters_get_a_problem_naming_the_field(
    harness: Harness, path: str
) -> None:
    r = await _get(harness, path, TENANT, USER)
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")
    field = path.split("?")[1].split("=")[0]
    assert field in r.json()["detail"]


async def test_requests_without_a_valid_token_get_401(harness: Harness) -> None:
    settings = Settings(env="test", mongodb_url="unused", mongodb_database=harness.db_name)
    app = build_app(settings, client=harness.client)
    expired = mint_token(DEV_JWT_SECRET, TENANT, USER, ttl_seconds=-60)  # past the 30 s leeway
    forged = mint_token("another-secret-that-is-long-enough-000", TENANT, USER)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            for headers in (
                {},
                {"Authorization": f"Bearer {expired}"},
                {"Authorization": f"Bearer {forged}"},
                {"Authorization": "Basic x"},
            ):
                r = await http.get("/v1/me/progress", headers=headers)
                assert r.status_code == 401, headers
                assert r.headers["content-type"].startswith("application/problem+json")


def _settings(user: str, name: str) -> MemoryRecord:
    return record_of(
        UserChanged(
            tenant_id=TENANT,
            user_id=user,
            display_name=name,
            timezone="Asia/Seoul",
            locale="en",
            version=1,
            changed_at=datetime(2026, 11, 1, tzinfo=UTC),
        )
    )


async def _board(harness: Harness, query: str, user: str, today: datetime) -> dict[str, Any]:
    settings = Settings(env="test", mongodb_url="unused", mongodb_database=harness.db_name)
    app = build_app(settings, client=harness.client, clock=lambda: today)
    token = mint_token(DEV_JWT_SECRET, TENANT, user)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            r = await http.get(
                f"/v1/leaderboard?{query}", headers={"Authorization": f"Bearer {token}"}
            )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def _assert_bucket_counts_match_the_rows(db: Any) -> None:
    """Every bucket count equals the rows in that bucket (week and month rows, and all time's
    user totals): what the leaderboards' ranks and top rows are read from."""
    want: dict[tuple[str, str, str, str, int], int] = {}
    rows = [
        (r["tenant_id"], r["period"], r["window"], int(r["xp"]))
        async for r in db["leaderboards"].find({})
    ]
    rows += [
        (u["tenant_id"], "all", "all", int(u["xp_total"])) async for u in db["user_state"].find({})
    ]
    for tenant, period, window, xp in rows:
        for node, bucket in bucket_path(xp) if xp > 0 else []:
            key = (tenant, period, window, node, bucket)
            want[key] = want.get(key, 0) + 1
    got = {
        (b["tenant_id"], b["period"], b["window"], b["node"], int(b["bucket"])): int(b["count"])
        async for b in db["leaderboard_buckets"].find({})
    }
    assert {k: n for k, n in got.items() if n} == want


async def test_leaderboards_by_week_and_month_rank_the_caller_even_outside_the_top(
    harness: Harness,
) -> None:
    week1, week2 = date(2026, 11, 3), date(2026, 11, 10)  # Tuesdays of W45 and W46
    records = [_settings("alice", "Alice"), _settings("bob", "Bob"), _settings("carol", "Carol")]
    records += [goal(user=u) for u in ("alice", "bob", "carol")]
    records += [change("a1", week1, 1, user="alice"), change("a1", week2, 1, user="alice")]
    records += [change("a1", week2, 1, user="bob"), change("a2", week2, 1, user="bob")]
    records += [change("a1", week1, 1, user="carol")]
    await harness.deliver(*records)
    in_week2 = datetime(2026, 11, 11, 3, tzinfo=UTC)

    board = await _board(harness, "period=week&limit=1", "alice", in_week2)
    assert board["week"] == "2026-W46"
    assert board["window"] == {"from": "2026-11-09", "to": "2026-11-15"}
    [top] = board["items"]
    assert (top["rank"], top["user_id"], top["display_name"]) == (1, "bob", "Bob")
    assert board["me"]["rank"] == 2  # alice is outside the top 1, and still told her place
    assert board["me"]["xp"] < top["xp"]

    month = await _board(harness, "period=month", "carol", in_week2)
    assert month["window"] == {"from": "2026-11-01", "to": "2026-11-30"}
    assert [row["user_id"] for row in month["items"]][-1] == "carol"
    assert month["me"] == {"rank": 3, "xp": month["items"][-1]["xp"]}

    # Every award of a user (badges included) falls in a week: the weeks add up to the total.
    rows = await harness.db["leaderboards"].find({"user_id": "alice", "period": "week"}).to_list()
    alice = await harness.progress("alice")
    assert sum(r["xp"] for r in rows) == alice["xp_total"]
    assert {r["window"] for r in rows} == {"2026-W45", "2026-W46"}
    await _assert_bucket_counts_match_the_rows(harness.db)


async def test_a_check_in_that_comes_long_after_its_time_converges_to_the_in_order_result(
    mongo_client: Any,
) -> None:
    """A fact older than what the kept fold holds makes the user's fold rebuild from the archive."""
    start = date(2026, 9, 1)
    late = change("a2", start + timedelta(days=2), 1)
    records = [goal(n_actions=2)]
    for offset in range(70):
        records.append(change("a1", start + timedelta(days=offset), 1))
    in_order = Harness(mongo_client, f"t_{uuid.uuid4().hex[:10]}")
    await in_order.deliver(records[0], late, *records[1:])
    expected = await in_order.progress()

    delayed = Harness(mongo_client, f"t_{uuid.uuid4().hex[:10]}")
    for i in range(0, len(records), 10):
        await delayed.deliver(*records[i : i + 10])
    await delayed.deliver(late)  # two months late: before the kept window
    got = await delayed.progress()
    for field in ("xp_total", "level", "streak", "perfect_days"):
        assert got[field] == expected[field], field
    assert sum(e["amount"] for e in got["ledger"]) == expected["xp_total"]
    sums: dict[str, int] = {}
    for e in await delayed.db["ledger"].find({}).to_list():
        sums[e["key"]] = sums.get(e["key"], 0) + e["amount"]
    want: dict[str, int] = {}
    for e in await in_order.db["ledger"].find({}).to_list():
        want[e["key"]] = want.get(e["key"], 0) + e["amount"]
    assert {k: v for k, v in sums.items() if v} == {k: v for k, v in want.items() if v}
    # The rebuild moved XP between windows: the bucket counts moved with it.
    await _assert_bucket_counts_match_the_rows(delayed.db)


@pytest.mark.parametrize("scale", [1, 997])
async def test_board_top_rows_and_ranks_agree_with_sorting_everyone(
    harness: Harness, scale: int
) -> None:
    """Bucket counts narrow the reads; what they give is what sorting every row would — for
    small XP (every level exact) and large (rows spread over buckets of all three levels)."""
    await ensure_indexes(harness.db)
    store = MongoGamificationStore(harness.db, None)
    rnd = random.Random(5)
    xp: dict[str, int] = {}
    for round_ in range(3):  # rows that move between buckets, ties, and take-backs to zero
        deltas = []
        for n in range(60):
            user = f"u{n:02d}"
            if round_:
                step = rnd.choice([0, 1, 7, 8, 40, 41, 250, -30]) * scale
            else:
                step = rnd.randrange(1, 300) * scale
            step = max(step, -xp.get(user, 0))
            if step:
                xp[user] = xp.get(user, 0) + step
                deltas.append(BoardDelta(Owner(TENANT, user), "week", "2026-W46", step))
        await store.add_to_boards(deltas)
    ranked = sorted(((-v, u) for u, v in xp.items() if v > 0))
    for limit in (1, 5, 17, 100):
        board = await store.standings(Owner(TENANT, "nobody"), "week", "2026-W46", limit)
        assert [(r.user_id, r.xp) for r in board.top] == [(u, -v) for v, u in ranked[:limit]]
        assert board.mine is None
        assert board.ahead is None
    for place, (v, u) in enumerate(ranked):
        board = await store.standings(Owner(TENANT, u), "week", "2026-W46", 3)
        assert board.mine == BoardRow(u, -v)
        assert board.ahead == place


async def test_a_fold_kept_by_an_aborted_unit_is_never_read_back(harness: Harness) -> None:
    """The decoded-fold cache serves a user's next batch only when the stored document carries
    the revision written with that fold: a transaction that aborts after storing leaves the
    stored fold to be read, and the next check-in converges as if nothing had happened."""
    day = date(2026, 11, 16)
    await harness.deliver(goal(n_actions=3), change("a1", day, 1))
    await harness.deliver(change("a2", day, 1))  # through the worker's own cache
    folds = FoldCache()
    owner = Owner(TENANT, USER)

    def store_of(tx: Transaction | None) -> MongoGamificationStore:
        return MongoGamificationStore(harness.db, tx, folds)

    stored = (await store_of(None).progress_of([owner]))[owner]
    assert stored.fold is not None
    async with harness.client.start_session() as session:
        await session.start_transaction()
        tx = Transaction(session=session, db=harness.db, source="test")
        doomed = (await store_of(tx).progress_of([owner]))[owner]
        assert doomed.fold is not None
        late = inbound(change("a3", day, 1))
        assert isinstance(late.payload, ActionCompleted)
        doomed.fold.extend([checkin_fact(late.payload, late.envelope.id)])
        await store_of(tx).save_progress([doomed])
        await session.abort_transaction()
    again = (await store_of(None).progress_of([owner]))[owner]
    assert again.fold is not None
    assert again.fold.to_state() == stored.fold.to_state()
    # Stored and taken again in the same process: the cached fold itself is served.
    async with harness.client.start_session() as session:
        await session.start_transaction()
        kept = Transaction(session=session, db=harness.db, source="test")
        await store_of(kept).save_progress([again])
        await session.commit_transaction()
    assert (await store_of(None).progress_of([owner]))[owner].fold is again.fold
