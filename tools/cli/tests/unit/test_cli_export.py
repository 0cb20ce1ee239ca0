"""`mandaact export`: one zip of every service's export, or nothing at all."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import httpx
import pytest

from mandaact_cli.cli import DEFAULT_SERVICE_URLS, export_bundle, service_urls
from mandaact_contracts.topics import ERASING_SERVICES

pytestmark = pytest.mark.unit


def services(user: str = "alice", liar: str | None = None) -> httpx.Client:
    def answer(request: httpx.Request) -> httpx.Response:
        service = next(s for s, url in DEFAULT_SERVICE_URLS.items() if url == str(request.url)[:21])
        assert request.url.path == "/v1/me/export"
        assert request.headers["authorization"] == "Bearer tok"
        who = "mallory" if service == liar else user
        body = {
            "service": service,
            "tenant_id": "acme",
            "user_id": who,
            "collections": {"things": [{"n": 1}, {"n": 2}]},
        }
        return httpx.Response(200, json=body)

    return httpx.Client(transport=httpx.MockTransport(answer))


def test_the_bundle_holds_a_manifest_and_each_service_part(tmp_path: Path) -> None:
    out = tmp_path / "alice.zip"
    with services() as http:
        manifest = export_bundle("acme", "alice", out, dict(DEFAULT_SERVICE_URLS), "tok", http)
    with zipfile.ZipFile(out) as bundle:
        assert sorted(bundle.namelist()) == sorted(
            ["manifest.json", *(f"{s}.json" for s in ERASING_SERVICES)]
        )
        assert json.loads(bundle.read("manifest.json")) == manifest
        part = bundle.read("checkins.json")
    entry = manifest["parts"]["checkins"]
    assert entry["sha256"] == hashlib.sha256(part).hexdigest()
    assert entry["documents"] == {"things": 2}
    assert manifest["format"] == "mandaact-export/1"


def test_nothing_is_written_when_a_service_exports_someone_else(tmp_path: Path) -> None:
    out = tmp_path / "alice.zip"
    with services(liar="reports") as http, pytest.raises(RuntimeError, match="reports exported"):
        export_bundle("acme", "alice", out, dict(DEFAULT_SERVICE_URLS), "tok", http)
    assert list(tmp_path.iterdir()) == []


def test_service_urls_take_the_environment_then_the_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MANDAACT_SERVICE_URLS", "goals=http://g:1,reports=http://r:2/")
    urls = service_urls(["goals=http://g:9"])
    assert (urls["goals"], urls["reports"]) == ("http://g:9", "http://r:2")
    with pytest.raises(ValueError, match="not a service=url pair"):
        service_urls(["gaols=http://x"])
