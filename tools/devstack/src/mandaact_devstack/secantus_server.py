"""`python -m mandaact_devstack.secantus_server [secantusd-py flags]`: SecantusDB's daemon with
its retryable-write records kept in O(1) per write.

SecantusDB 0.7.0b3 keeps, like mongod's `config.transactions`, the reply of every retryable write
(a write outside a transaction with `retryWrites`, the drivers' default) for 30 minutes, at most
10,000 of them. It prunes them on every retryable write and every lookup, under the lock every
statement of every connection takes: a scan of all records for stale ones, and past the cap a
sort of all of them by age. Past 10,000 retryable writes in 30 minutes every such write sorts
10,000 entries while the whole server waits: 64 clients doing `findAndModify` fall from ~107 to
~26 writes/s within 10,000 writes, while the same clients without `retryWrites` stay at ~100.
A stack at work passes that mark within minutes (rate-limit buckets, relay deletes, leases).

This launcher keeps the same records with the same lifetime and cap and replays the same
replies; it only keeps them in the order they were stored (a record stored again moves to the
end), so pruning looks at the oldest few instead of all of them. Nothing of the wire protocol
changes, and real MongoDB has no such cost. See docs/infra.md.
"""

from __future__ import annotations

import sys
from typing import Any

PATCHED_VERSION = "0.7.0b3"


def patch_retryable_records() -> bool:
    """Replace the registry's record keeping; False (and nothing changed) on another version."""
    from importlib.metadata import version

    import secantus.transactions as txns

    if version("SecantusDB") != PATCHED_VERSION:
        return False
    registry = txns.TransactionRegistry
    lifetime = txns._RETRYABLE_RECORD_LIFETIME_SECONDS
    cap = txns._RETRYABLE_RECORD_MAX

    def prune(self: Any) -> None:
        records: dict[Any, Any] = self._retryable
        cutoff = self._time() - lifetime
        while records:
            oldest = next(iter(records))
            if records[oldest][1] >= cutoff and len(records) <= cap:
                break
            del records[oldest]

    def record(self: Any, lsid_bytes: bytes, txn_number: int, identity: bytes, reply: Any) -> None:
        if not txns._is_recordable_reply(reply):
            return
        with self._lock:
            key = (lsid_bytes, txn_number)
            self._retryable.pop(key, None)  # stored again: it is the newest now
            self._retryable[key] = (txns._strip_per_attempt_fields(reply), self._time(), identity)
            prune(self)

    registry._prune_retryable_locked = prune
    registry.record_retryable = record
    return True


def main() -> int:
    from secantus.cli import main as secantus_main

    if not patch_retryable_records():
        print(
            f"mandaact secantus_server: not SecantusDB {PATCHED_VERSION}; "
            "running it unpatched (retryable-write records pruned by a scan per write)",
            file=sys.stderr,
        )
    return int(secantus_main(sys.argv[1:]))


if __name__ == "__main__":
    sys.exit(main())
