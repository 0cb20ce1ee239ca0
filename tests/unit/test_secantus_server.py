"""The devstack's SecantusDB launcher keeps the server's retryable-write records as it did (a
retried write within their lifetime gets its first reply, and the lifetime and cap hold), and
its TTL sweep expires what the server's own would, found by the TTL index."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import secantus.storage
import secantus.transactions as txns

from mandaact_devstack.secantus_server import patch_retryable_records, patch_ttl_sweep, ttl_filters

pytestmark = pytest.mark.unit

OK = {"ok": 1.0, "n": 1}


def test_records_replay_expire_and_stay_within_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    registry_class = txns.TransactionRegistry
    for name in ("_prune_retryable_locked", "record_retryable"):  # restored afterwards
        monkeypatch.setattr(registry_class, name, getattr(registry_class, name))
    assert patch_retryable_records()
    now = [1000.0]
    registry = txns.TransactionRegistry(time_func=lambda: now[0])

    registry.record_retryable(b"s", 1, b"w1", OK)
    assert registry.retryable_reply(b"s", 1, b"w1") == OK  # the retry gets the first reply
    assert registry.retryable_reply(b"s", 1, b"other") is None  # not another write's

    now[0] += txns._RETRYABLE_RECORD_LIFETIME_SECONDS + 1
    assert registry.retryable_reply(b"s", 1, b"w1") is None  # past its lifetime

    for n in range(2, 2 + 10_005):
        registry.record_retryable(b"s", n, b"w", OK)
    assert len(registry._retryable) == 10_000  # the cap the patch read
    assert registry.retryable_reply(b"s", 2, b"w") is None  # the oldest went first
    assert registry.retryable_reply(b"s", 2 + 10_004, b"w") == OK


def test_ttl_sweep_deletes_by_the_index_exactly_what_expired(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The patched sweep removes the documents the server's own sweep would (dates before the
    cutoff, within a partial index's filter) and keeps the rest, without reading them all."""
    storage_class = secantus.storage.Storage
    monkeypatch.setattr(storage_class, "prune_ttl", storage_class.prune_ttl)  # restored after
    assert patch_ttl_sweep()
    storage = storage_class(":memory:", ttl_sweep_seconds=0)
    try:
        now = datetime.now(UTC)
        old, fresh = now - timedelta(hours=2), now - timedelta(minutes=5)
        storage.create_index("d", "processed", "at_1", {"at": 1}, {"expireAfterSeconds": 3600})
        storage.insert(
            "d",
            "processed",
            [
                {"_id": "old", "at": old},
                {"_id": "fresh", "at": fresh},
                {"_id": "no-date", "at": "yesterday"},
                {"_id": "no-field"},
            ],
        )
        storage.create_index(
            "d",
            "parked",
            "gone_1",
            {"gone": 1},
            {"expireAfterSeconds": 0, "partialFilterExpression": {"kind": "temp"}},
        )
        storage.insert(
            "d",
            "parked",
            [
                {"_id": "temp-old", "gone": old, "kind": "temp"},
                {"_id": "kept-old", "gone": old, "kind": "kept"},  # outside the partial index
            ],
        )
        scans: list[tuple[str, str]] = []
        real_scan = storage._scan_docs

        def scan(db: str, coll: str) -> Any:
            scans.append((db, coll))
            return real_scan(db, coll)

        monkeypatch.setattr(storage, "_scan_docs", scan)

        assert storage.prune_ttl_all_collections(now=now) == 2
        assert scans == []  # found by the index, never by reading every document
        left = {
            c: {d["_id"] for d in storage.find_matching("d", c, {})}
            for c in ("processed", "parked")
        }
        assert left == {"processed": {"fresh", "no-date", "no-field"}, "parked": {"kept-old"}}
        assert storage.prune_ttl_all_collections(now=now) == 0  # nothing more to expire
    finally:
        storage.close()


def test_ttl_filters_follow_the_servers_rules() -> None:
    now = datetime(2026, 12, 3, tzinfo=UTC)
    indexes = [
        ("_id_", {"_id": 1}, {"expireAfterSeconds": 10}),  # never by _id
        ("a_1_b_1", {"a": 1, "b": 1}, {"expireAfterSeconds": 10}),  # single field only
        ("c_1", {"c": 1}, {}),  # not a TTL index
        ("d_1", {"d": 1}, {"expireAfterSeconds": -1}),  # negative: never
        ("e_1", {"e": 1}, {"expireAfterSeconds": True}),  # not a number
        ("f_1", {"f": -1}, {"expireAfterSeconds": 60}),
    ]
    assert ttl_filters(indexes, now) == [{"f": {"$lt": now - timedelta(seconds=60)}}]
