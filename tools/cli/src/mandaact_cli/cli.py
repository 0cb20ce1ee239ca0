"""`mandaact` developer CLI: mint a dev token, seed a demo tenant, tail a topic, handle dead
letters (`mandaact dlt list|redrive|discard`, through the ops API), export a user's data
(`mandaact export`, every service's `GET /v1/me/export` in one zip)."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import uuid
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from mandaact_common.auth import mint_token
from mandaact_common.settings import DEV_JWT_SECRET
from mandaact_contracts.topics import ERASING_SERVICES

DEFAULT_SERVICE_URLS: dict[str, str] = {
    "goals": "http://127.0.0.1:8001",
    "checkins": "http://127.0.0.1:8002",
    "gamification": "http://127.0.0.1:8003",
    "reports": "http://127.0.0.1:8004",
    "webhooks": "http://127.0.0.1:8005",
    "notifications": "http://127.0.0.1:8006",
}
"""Where `make up` serves each API; `MANDAACT_SERVICE_URLS` or `--service name=url` override."""
EXPORT_FORMAT = "mandaact-export/1"

DEMO_GRID: dict[str, Any] = {
    "title": "Design an event-driven system",
    "description": "demo grid",
    "sub_goals": [
        {
            "position": 1,
            "title": "Event flows",
            "actions": [
                {
                    "position": 1,
                    "title": "Draw the flow",
                    "type": "routine",
                    "schedule": {"frequency": "daily"},
                },
                {
                    "position": 2,
                    "title": "Review",
                    "type": "routine",
                    "schedule": {"frequency": "weekly", "days": ["mon", "thu"]},
                },
                {"position": 3, "title": "Install Kafka", "type": "mission"},
                {"position": 4, "title": "Stay curious", "type": "reference"},
            ],
        }
    ],
}


def _dev_token(tenant: str, user: str, **token_args: Any) -> str:
    """An HS256 token the services configured by this environment accept (the same
    MANDAACT_JWT_SECRET, else the dev secret, and MANDAACT_JWT_AUDIENCE / _ISSUER when set)."""
    audiences = [a.strip() for a in os.environ.get("MANDAACT_JWT_AUDIENCE", "").split(",")]
    return mint_token(
        os.environ.get("MANDAACT_JWT_SECRET", "").strip() or DEV_JWT_SECRET,
        tenant,
        user,
        audience=next((a for a in audiences if a), None),
        issuer=os.environ.get("MANDAACT_JWT_ISSUER", "").strip() or None,
        **token_args,
    )


def _token(args: argparse.Namespace) -> int:
    roles = [r for r, wanted in (("admin", args.admin), ("operator", args.operator)) if wanted]
    print(_dev_token(args.tenant, args.user, ttl_seconds=args.ttl, roles=roles or None))
    return 0


def _seed(args: argparse.Namespace) -> int:
    token = _dev_token(args.tenant, args.user)
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(timeout=10) as http:
        grid = http.post(f"{args.goals_url}/v1/mandalarts", json=DEMO_GRID, headers=headers)
        grid.raise_for_status()
        print(json.dumps(grid.json(), indent=2, ensure_ascii=False))
    print(f"token: {token}")
    # Pass it as `MandaAct-Consistency` (or `mandaact export --consistency`) to read the grid
    # in another service at once (SPEC §12).
    print(f"consistency: {grid.headers.get('MandaAct-Consistency', '')}")
    return 0


async def _tail(args: argparse.Namespace) -> int:
    from aiokafka import AIOKafkaConsumer

    from mandaact_common.kafka import KafkaClientSettings, client_security

    # KAFKA_BOOTSTRAP_SERVERS, and MANDAACT_KAFKA_SASL_USERNAME/PASSWORD for a SASL broker.
    kafka = KafkaClientSettings()
    consumer = AIOKafkaConsumer(
        args.topic,
        **client_security(kafka),
        bootstrap_servers=kafka.kafka_bootstrap_servers,
        group_id=f"mandaact-tail-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest" if args.from_beginning else "latest",
        enable_auto_commit=False,
    )
    await consumer.start()
    seen = 0
    try:
        async for record in consumer:
            headers = {k: v.decode(errors="replace") for k, v in record.headers}
            print(
                json.dumps(
                    {
                        "topic": record.topic,
                        "partition": record.partition,
                        "offset": record.offset,
                        "key": record.key.decode(errors="replace") if record.key else None,
                        "headers": headers,
                        "value": (record.value or b"").decode(errors="replace"),
                    },
                    ensure_ascii=False,
                ),
                flush=True,
            )
            seen += 1
            if args.max and seen >= args.max:
                break
    finally:
        await consumer.stop()
    return 0


def _operator_headers(args: argparse.Namespace) -> dict[str, str]:
    """`--token` / MANDAACT_TOKEN, else a dev token with the platform role `operator`."""
    token = args.token or os.environ.get("MANDAACT_TOKEN", "").strip()
    if not token:
        token = _dev_token("platform", "mandaact-cli", ttl_seconds=600, roles=["operator"])
    return {"Authorization": f"Bearer {token}"}


def _dlt(args: argparse.Namespace) -> int:
    headers = _operator_headers(args)
    with httpx.Client(base_url=args.ops_url, timeout=30, headers=headers) as http:
        if args.dlt_command == "list":
            params: dict[str, str | int] = {"limit": args.limit}
            if args.group:
                params["group"] = args.group
            response = http.get("/v1/ops/dead-letters", params=params)
        else:
            if bool(args.all) == bool(args.ids):
                print("give the letters' ids or --all, not both and not neither")
                return 2
            body: dict[str, Any] = {"all": True} if args.all else {"ids": args.ids}
            response = http.post(f"/v1/ops/dead-letters/{args.group}/{args.dlt_command}", json=body)
    if response.status_code >= 400:
        print(response.text)
        return 1
    answer = response.json()
    if args.dlt_command != "list":
        print(json.dumps(answer, ensure_ascii=False))
        return 0
    for item in answer["items"]:
        print(json.dumps(item, ensure_ascii=False))
    if answer["next"]:
        print("# more letters: narrow with --group or raise --limit (at most 200)")
    return 0


def service_urls(overrides: list[str]) -> dict[str, str]:
    """Each service's base URL: the defaults, then `MANDAACT_SERVICE_URLS`
    (`name=url,name=url`), then `--service name=url`."""
    urls = dict(DEFAULT_SERVICE_URLS)
    given = [p for p in os.environ.get("MANDAACT_SERVICE_URLS", "").split(",") if p.strip()]
    for pair in [*given, *overrides]:
        name, sep, url = pair.strip().partition("=")
        if not sep or name not in urls:
            raise ValueError(f"not a service=url pair of {sorted(urls)}: {pair!r}")
        urls[name] = url.rstrip("/")
    return urls


def _documents(part: dict[str, Any]) -> dict[str, int]:
    return {name: len(docs) for name, docs in part.get("collections", {}).items()}


def export_bundle(
    tenant: str,
    user: str,
    out: Path,
    urls: dict[str, str],
    token: str,
    http: httpx.Client,
    consistency: str = "",
) -> dict[str, Any]:
    """Fetch every service's export of the user and write them, with a manifest, to `out` (a
    zip); nothing is written unless every service answered for that very user."""
    headers = {"Authorization": f"Bearer {token}"}
    if consistency:
        headers["MandaAct-Consistency"] = consistency
    parts: dict[str, bytes] = {}
    for service in ERASING_SERVICES:
        response = http.get(f"{urls[service]}/v1/me/export", headers=headers)
        if response.status_code != 200:
            raise RuntimeError(f"{service} answered {response.status_code}: {response.text}")
        part = response.json()
        if (part.get("tenant_id"), part.get("user_id")) != (tenant, user):
            raise RuntimeError(f"{service} exported another user than {tenant}/{user}")
        parts[service] = response.content
    manifest: dict[str, Any] = {
        "format": EXPORT_FORMAT,
        "tenant_id": tenant,
        "user_id": user,
        "exported_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "parts": {
            service: {
                "file": f"{service}.json",
                "bytes": len(body),
                "sha256": hashlib.sha256(body).hexdigest(),
                "documents": _documents(json.loads(body)),
            }
            for service, body in parts.items()
        },
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr("manifest.json", json.dumps(manifest, indent=2, ensure_ascii=False))
        for service, body in parts.items():
            bundle.writestr(f"{service}.json", body)
    partial.replace(out)
    return manifest


def _export(args: argparse.Namespace) -> int:
    token = args.token or os.environ.get("MANDAACT_TOKEN", "").strip()
    token = token or _dev_token(args.tenant, args.user, ttl_seconds=600)
    try:
        urls = service_urls(args.service)
        with httpx.Client(timeout=120) as http:
            manifest = export_bundle(
                args.tenant, args.user, Path(args.out), urls, token, http, args.consistency
            )
    except (ValueError, RuntimeError, httpx.HTTPError) as exc:
        print(f"export failed, nothing written: {exc}")
        return 1
    total = sum(sum(p["documents"].values()) for p in manifest["parts"].values())
    print(f"wrote {args.out}: {total} documents from {len(manifest['parts'])} services")
    return 0


def _add_export(sub: Any) -> None:
    export = sub.add_parser(
        "export", help="bundle every service's export of a user into one zip (SPEC §9)"
    )
    export.add_argument("--tenant", required=True)
    export.add_argument("--user", required=True)
    export.add_argument("--out", required=True, help="the zip to write, e.g. alice.zip")
    export.add_argument("--token", help="the user's token (default: MANDAACT_TOKEN, else dev)")
    export.add_argument(
        "--consistency",
        default=os.environ.get("MANDAACT_CONSISTENCY", ""),
        help="MandaAct-Consistency tokens of the user's last writes: the export waits for them",
    )
    export.add_argument(
        "--service", action="append", default=[], help="name=url of a service (repeatable)"
    )


def _add_dlt(sub: Any) -> None:
    dlt = sub.add_parser("dlt", help="dead letters through the ops API (role operator)")
    dlt.add_argument(
        "--ops-url", default=os.environ.get("MANDAACT_OPS_URL", "http://127.0.0.1:8007")
    )
    dlt.add_argument("--token", help="an operator's token (default: MANDAACT_TOKEN, else dev)")
    commands = dlt.add_subparsers(dest="dlt_command", required=True)
    listing = commands.add_parser("list", help="letters not redriven or discarded, newest first")
    listing.add_argument("--group")
    listing.add_argument("--limit", type=int, default=50)
    for name, what in (
        ("redrive", "re-publish to the original topic (same ce_id)"),
        ("discard", "stop listing them"),
    ):
        action = commands.add_parser(name, help=what)
        action.add_argument("group")
        action.add_argument("ids", nargs="*", help="ids from `dlt list` (<partition>-<offset>)")
        action.add_argument("--all", action="store_true", help="every letter the group lists")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `mandaact` command; returns the exit status."""
    parser = argparse.ArgumentParser(prog="mandaact", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    tok = sub.add_parser("token", help="print a dev JWT for a tenant and user")
    tok.add_argument("--tenant", required=True)
    tok.add_argument("--user", required=True)
    tok.add_argument("--ttl", type=int, default=24 * 3600, help="seconds")
    tok.add_argument("--admin", action="store_true")
    tok.add_argument("--operator", action="store_true", help="the platform role of the ops API")
    seed = sub.add_parser("seed", help="create a demo grid for a demo tenant and user")
    seed.add_argument("--tenant", default="demo")
    seed.add_argument("--user", default="demo-user")
    seed.add_argument("--goals-url", default="http://127.0.0.1:8001")
    tail = sub.add_parser("tail", help="print a topic's messages with their CloudEvents headers")
    tail.add_argument("topic")
    tail.add_argument("--from-beginning", action="store_true")
    tail.add_argument("--max", type=int, default=0)
    _add_dlt(sub)
    _add_export(sub)
    args = parser.parse_args(argv)
    if args.command == "dlt":
        return _dlt(args)
    if args.command == "export":
        return _export(args)
    if args.command == "token":
        return _token(args)
    if args.command == "seed":
        return _seed(args)
    return asyncio.run(_tail(args))
