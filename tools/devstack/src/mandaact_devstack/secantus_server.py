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
changes, and real MongoDB has no such cost.

It also expires TTL documents through their index. The server's TTL sweeper (every 60 s) reads
and decodes *every* document of every collection that has a TTL index, holding the lock every
statement waits on, whether or not anything expired: ~0.5 s per 30,000 documents, so a stack
whose consumers keep their processed-event ids for days (a `processed` collection that holds
every event of the retention) stalls the whole server for seconds each minute, and longer the
more history it keeps. The launcher deletes what expired with the server's own `deleteMany`
path, by the TTL index's range: the same documents go (the same partial filters, the same
indexes), found by the index, in chunks. See docs/infra.md.
"""

from __future__ import annotations

import datetime as dt
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


def ttl_filters(index_options: Any, now: dt.datetime) -> list[dict[str, Any]]:
    """The filters of what each TTL index of a collection expires at `now`, as SecantusDB's
    `prune_ttl` (and mongod) read them: a single-field index other than `_id` with a numeric
    `expireAfterSeconds` of 0 or more; a date before the cutoff; the index's partial filter."""
    filters: list[dict[str, Any]] = []
    for _name, key_spec, opts in index_options:
        ttl = opts.get("expireAfterSeconds")
        if isinstance(ttl, bool) or not isinstance(ttl, int | float) or ttl != ttl or ttl < 0:
            continue
        if len(key_spec) != 1:
            continue
        field, direction = next(iter(key_spec.items()))
        if not isinstance(field, str) or field == "_id":
            continue
        if isinstance(direction, bool) or not isinstance(direction, int | float):
            continue
        try:
            cutoff = now - dt.timedelta(seconds=float(ttl))
        except OverflowError:
            continue
        ttl_filter: dict[str, Any] = {field: {"$lt": cutoff}}
        partial = opts.get("partialFilterExpression")
        if isinstance(partial, dict) and partial:
            # One document of conditions when they name other fields (the index then serves
            # the date range); else both, as the server's sweep has them.
            if field in partial or any(k.startswith("$") for k in partial):
                ttl_filter = {"$and": [ttl_filter, dict(partial)]}
            else:
                ttl_filter = {**ttl_filter, **partial}
        filters.append(ttl_filter)
    return filters


def patch_ttl_sweep() -> bool:
    """Expire TTL documents by their index (`deleteMany`'s path) instead of a scan of them all;
    False (and nothing changed) on another version."""
    from importlib.metadata import version

    from secantus.storage import Storage

    if version("SecantusDB") != PATCHED_VERSION:
        return False

    def prune_ttl(self: Any, db: str, coll: str, *, now: dt.datetime | None = None) -> int:
        when = now if now is not None else dt.datetime.now(dt.UTC)
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        pruned = 0
        for ttl_filter in ttl_filters(list(self._iter_indexes(db, coll)), when):
            pruned += int(self.delete_matching(db, coll, ttl_filter))
        return pruned

    Storage.prune_ttl = prune_ttl
    return True


def main() -> int:
    from secantus.cli import main as secantus_main

    if not patch_ttl_sweep():
        print(
            f"mandaact secantus_server: not SecantusDB {PATCHED_VERSION}; "
            "its TTL sweeper scans every document of every TTL collection each minute",
            file=sys.stderr,
        )
    if not patch_retryable_records():
        print(
            f"mandaact secantus_server: not SecantusDB {PATCHED_VERSION}; "
            "running it unpatched (retryable-write records pruned by a scan per write)",
            file=sys.stderr,
        )
    return int(secantus_main(sys.argv[1:]))


if __name__ == "__main__":
    sys.exit(main())
