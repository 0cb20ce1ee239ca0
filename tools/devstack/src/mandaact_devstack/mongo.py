"""SecantusDB (MongoDB wire protocol, WiredTiger) as its own process, plus readiness checks."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from pymongo import AsyncMongoClient, MongoClient
from pymongo.errors import DuplicateKeyError

from mandaact_devstack.procs import (
    DevstackError,
    ManagedProcess,
    port_open,
    run_sync,
    spawn_detached,
)

SECANTUS_LAUNCHER = "mandaact_devstack.secantus_server"
"""The daemon with its retryable-write records pruned in O(1) (see that module)."""
REPLICA_SET_NAME = "secantus"


OPLOG_MAX_ENTRIES = 50_000_000


def mongodb_url(host: str = "127.0.0.1", port: int = 27017) -> str:
    """The MONGODB_URL of a single-node server (directConnection works for SecantusDB and mongo)."""
    return f"mongodb://{host}:{port}/?directConnection=true"


def start_secantus(
    storage_dir: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 27017,
    cache_size: str = "1G",
    log_path: Path | None = None,
    pid_file: Path | None = None,
    timeout: float = 60.0,
    die_with_parent: bool = False,
    wait: bool = True,
) -> ManagedProcess:
    """Start SecantusDB (detached) on host:port with WiredTiger storage; wait for ping.

    It runs as `python -m mandaact_devstack.secantus_server` (the daemon of `secantusd-py`, its
    retryable-write records kept in O(1) per write) with this interpreter, which has it.
    """
    if importlib.util.find_spec("secantus") is None:
        raise DevstackError("SecantusDB is not installed; pip install SecantusDB into the venv")
    if port_open(host, port):
        raise DevstackError(f"{host}:{port} is already in use; cannot start SecantusDB there")
    storage_dir = storage_dir.resolve()
    storage_dir.mkdir(parents=True, exist_ok=True)
    # An explicit (empty) config file switches off secantusd.toml auto-discovery.
    config = storage_dir.parent / f"{storage_dir.name}.secantusd.toml"
    if not config.exists():
        config.write_text("# written by mandaact_devstack; command-line flags set everything\n")
    cmd: list[str] = [
        sys.executable,
        "-m",
        SECANTUS_LAUNCHER,
        "--config",
        str(config),
        "--host",
        host,
        "--port",
        str(port),
        "--storage-path",
        str(storage_dir),
        "--cache-size",
        cache_size,
        "--log-level",
        "INFO",
        # Past its default cap of 100,000 entries SecantusDB prunes the oplog on every commit,
        # walking it from the oldest entry: commits then slow to a crawl under a sustained load.
        # Nothing here tails the oplog for long, so a high cap (time retention still applies).
        "--oplog-max-entries",
        str(OPLOG_MAX_ENTRIES),
    ]
    proc = spawn_detached(
        "secantusdb",
        cmd,
        log_path=log_path or storage_dir.parent / f"{storage_dir.name}.log",
        cwd=storage_dir.parent,
        pid_file=pid_file,
        die_with_parent=die_with_parent,
    )
    if not wait:
        return proc
    try:
        run_sync(lambda: wait_mongo_ready(mongodb_url(host, port), max_wait=timeout, proc=proc))
    except BaseException:
        proc.stop()
        raise
    return proc


def mongo_answers(url: str, timeout: float = 2.0) -> bool:
    """Whether a MongoDB-compatible server at url answers ping (sync)."""
    client: MongoClient[dict[str, Any]] = MongoClient(
        url, serverSelectionTimeoutMS=int(timeout * 1000), connectTimeoutMS=int(timeout * 1000)
    )
    try:
        client.admin.command("ping")
    except Exception:
        return False
    finally:
        client.close()
    return True


async def wait_mongo_ready(
    url: str, *, max_wait: float = 60.0, proc: ManagedProcess | None = None
) -> None:
    """Wait until the server at url answers ping and reports a writable primary."""
    deadline = time.monotonic() + max_wait
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive():
            raise DevstackError(f"SecantusDB exited during startup; log tail:\n{proc.log_tail()}")
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            url, serverSelectionTimeoutMS=1000, connectTimeoutMS=1000
        )
        try:
            await client.admin.command("ping")
            hello = await client.admin.command("hello")
            if hello.get("isWritablePrimary"):
                return
            last_error = DevstackError(f"not a writable primary yet: {hello}")
        except Exception as exc:
            last_error = exc
        finally:
            await client.close()
        await asyncio.sleep(0.2)
    tail = f"\nlog tail:\n{proc.log_tail()}" if proc is not None else ""
    raise DevstackError(f"MongoDB at {url} not ready after {max_wait}s ({last_error!r}){tail}")


async def check_mongo_features(url: str) -> None:
    """Prove multi-document transactions (commit and abort) and unique indexes work at url."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url, serverSelectionTimeoutMS=5000)
    db = client[f"devstack_check_{uuid.uuid4().hex[:10]}"]
    try:
        async with client.start_session() as session, await session.start_transaction():
            await db.left.insert_one({"_id": 1}, session=session)
            await db.right.insert_one({"_id": 1}, session=session)
            if await db.left.find_one({"_id": 1}) is not None:
                raise DevstackError("uncommitted transaction write visible outside it")
        if (
            await db.left.find_one({"_id": 1}) is None
            or await db.right.find_one({"_id": 1}) is None
        ):
            raise DevstackError("committed transaction writes are missing")
        async with client.start_session() as session:
            await session.start_transaction()
            await db.left.insert_one({"_id": 2}, session=session)
            await db.right.insert_one({"_id": 2}, session=session)
            await session.abort_transaction()
        if await db.left.find_one({"_id": 2}) or await db.right.find_one({"_id": 2}):
            raise DevstackError("aborted transaction writes are visible")
        await db.uniq.create_index("key", unique=True)
        await db.uniq.insert_one({"key": "k"})
        try:
            await db.uniq.insert_one({"key": "k"})
        except DuplicateKeyError:
            pass
        else:
            raise DevstackError("unique index not enforced")
    finally:
        with contextlib.suppress(Exception):
            await client.drop_database(db.name)
        await client.close()
