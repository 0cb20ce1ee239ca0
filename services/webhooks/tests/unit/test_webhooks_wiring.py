"""Settings and wiring: the worker consumes every topic and private addresses stay local."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from mandaact_contracts import topics
from webhooks.bootstrap import GROUP, worker_spec
from webhooks.settings import Settings

pytestmark = pytest.mark.unit


def test_the_worker_consumes_every_topic_but_user_erased_in_its_own_group() -> None:
    [consumer] = worker_spec().consumers
    assert consumer.group == GROUP == "webhooks"
    assert set(consumer.topics) == set(topics.ALL_TOPICS) - {topics.USER_ERASED}
    assert worker_spec().publishes == (topics.USER_ERASED,)
    assert GROUP in topics.CONSUMER_GROUPS
    lifecycle = worker_spec().lifecycle
    assert lifecycle is not None
    assert lifecycle.service == "webhooks"


def test_private_addresses_are_refused_in_production() -> None:
    with pytest.raises(ValidationError, match="MANDAACT_WEBHOOKS_ALLOW_PRIVATE"):
        Settings(env="production", jwt_secret="x" * 40, erasure_key="e" * 40, allow_private=True)
    assert Settings(env="test", allow_private=True).allow_private
    assert not Settings(env="test").allow_private


def test_the_retry_scale_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MANDAACT_WEBHOOKS_RETRY_SCALE", "0.001")
    assert Settings(env="test").retry_scale == 0.001
