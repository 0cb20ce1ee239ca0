"""The devstack's SecantusDB launcher keeps the server's retryable-write records as it did:
a retried write within their lifetime gets its first reply, and the lifetime and cap hold."""

from __future__ import annotations

import pytest
import secantus.transactions as txns

from mandaact_devstack.secantus_server import patch_retryable_records

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
