"""Settings, the worker's consumer group and topics, and the AsyncAPI document."""

from __future__ import annotations

import pytest

from checkins.bootstrap import CONSUMES, GROUP, PUBLISHES, worker_spec
from checkins.settings import Settings
from mandaact_common.worker import asyncapi_document
from mandaact_contracts import topics

pytestmark = pytest.mark.unit


def test_defaults_name_the_service_its_port_and_database() -> None:
    settings = Settings(env="test")
    assert (settings.service_name, settings.http_port) == ("checkins", 8002)
    assert settings.mongodb_database == "mandaact_checkins"
    assert settings.backfill_days == 1


def test_the_environment_sets_port_and_backfill(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MANDAACT_HTTP_PORT", "18002")
    monkeypatch.setenv("MANDAACT_BACKFILL_DAYS", "3")
    settings = Settings(env="test")
    assert (settings.http_port, settings.backfill_days) == (18002, 3)


def test_the_worker_consumes_users_grids_and_deletions_and_publishes_check_in_changes() -> None:
    spec = worker_spec()
    assert spec.service == "checkins"
    [consumer] = spec.consumers
    assert consumer.group == GROUP == "checkins"
    assert consumer.topics == CONSUMES
    assert CONSUMES == (
        topics.USER_CHANGED,
        topics.GOAL_CHANGED,
        topics.USER_DELETED,
        topics.TENANT_DELETED,
    )
    assert spec.publishes == PUBLISHES
    assert PUBLISHES == (topics.ACTION_COMPLETED, topics.ACTION_UNCOMPLETED, topics.USER_ERASED)
    assert spec.ensure_indexes is not None
    assert spec.lifecycle is not None
    assert spec.lifecycle.service == "checkins"


def test_the_asyncapi_document_lists_every_channel() -> None:
    document = asyncapi_document(worker_spec(), Settings(env="test"))
    channels = " ".join(document["channels"])
    for topic in (*CONSUMES, *PUBLISHES):
        assert topic in channels


def test_the_asyncapi_document_describes_the_real_messages() -> None:
    document = asyncapi_document(worker_spec(), Settings(env="test"))
    messages = document["components"]["messages"]
    for topic in (*CONSUMES, *PUBLISHES):
        (ref,) = document["channels"][topic]["messages"].values()
        message = messages[ref["$ref"].split("/")[-1]]
        schema = message["payload"]["$ref"].split("/")[-1]
        assert "tenant_id" in document["components"]["schemas"][schema]["properties"]
        assert {"ce_id", "ce_type", "ce_tenantid"} <= set(message["headers"]["properties"])
    kinds = {op["action"] for op in document["operations"].values()}
    assert kinds == {"send", "receive"}
    assert "EmptyPayload" not in str(document)
    assert "correlation_id" not in str(document)
