"""Pure rules: letter ids, what is still listed, pages, lag, metric parsing."""

from __future__ import annotations

import httpx
import pytest

from mandaact_common.errors import InvalidInput
from mandaact_common.kafka_acls import Acl, service_acls
from mandaact_contracts import topics
from ops.bootstrap import worker_spec
from ops.domain.model import LetterId, lag_of, metric_value, page_after, still_listed
from ops.probes import HttpProbes
from ops.settings import Settings, parse_service_urls
from services.ops.tests.support import letter

pytestmark = pytest.mark.unit


def test_a_letter_id_reads_back_what_the_listing_shows() -> None:
    assert LetterId.parse(str(LetterId(2, 15))) == LetterId(2, 15)
    for bad in ("2", "a-1", "1-", "-1-2", "1-2-3", "1 - 2"):
        with pytest.raises(InvalidInput):
            LetterId.parse(bad)


def test_handled_letters_are_no_longer_listed_and_the_rest_come_newest_first() -> None:
    old, new, done = letter("g", 0, 1, at_ms=10), letter("g", 1, 1, at_ms=30), letter("g", 0, 2)
    assert still_listed([old, done, new], {done.id}) == [new, old]


def test_pages_follow_each_other_without_gaps_or_repeats() -> None:
    letters = still_listed([letter("g", p, o, at_ms=o) for p in (0, 1) for o in range(5)], set())
    seen, after = [], None
    while True:
        rest = [d for d in letters if after is None or (d.timestamp_ms, d.id) < after]
        page, last = page_after(rest, None, 3)
        seen.extend(page)
        if last is None:
            break
        after = (last.timestamp_ms, last.id)
    assert seen == letters


def test_lag_is_end_minus_committed_and_the_whole_log_when_nothing_was_committed() -> None:
    lag = lag_of(
        "gamification",
        ends={("a", 0): 10, ("a", 1): 4, ("b", 0): 7},
        starts={("b", 0): 2},
        committed={("a", 0): 7, ("a", 1): 4},
    )
    assert [(p.topic, p.partition, p.lag) for p in lag.partitions] == [
        ("a", 0, 3),
        ("a", 1, 0),
        ("b", 0, 5),
    ]
    assert lag.total == 8


def test_redrive_sends_the_original_headers_with_the_same_event_id() -> None:
    dead = letter("gamification", 0, 3, ce_id="keep-me")
    headers = dict(dead.original_headers())
    assert headers["ce_id"] == b"keep-me"
    assert not [k for k in headers if k.startswith("dlt_")]
    assert dead.original_topic == "action.completed"
    assert dead.error == "ValidationError: 1 validation error"


def test_metrics_are_summed_over_labels_and_longer_names_are_not_confused() -> None:
    text = (
        "# HELP mandaact_outbox_pending rows\n"
        'mandaact_outbox_pending{service="checkins"} 2.0\n'
        'mandaact_outbox_pending{service="other"} 1.0\n'
        'mandaact_outbox_pending_total{service="checkins"} 99.0\n'
    )
    assert metric_value(text, "mandaact_outbox_pending") == 3.0
    assert metric_value(text, "mandaact_outbox_oldest_age_seconds") is None


def test_service_urls_are_parsed_and_a_malformed_entry_is_refused() -> None:
    assert parse_service_urls("goals=http://h:1/, checkins=https://c") == {
        "goals": "http://h:1",
        "checkins": "https://c",
    }
    with pytest.raises(ValueError, match="name=http"):
        parse_service_urls("goals:8001")


def test_the_console_reaches_the_services_where_the_browser_can() -> None:
    inside = "goals=http://goals-api:8001"
    assert Settings(env="test", service_urls=inside).console_services == {
        "goals": "http://goals-api:8001"
    }
    both = Settings(
        env="test", service_urls=inside, console_service_urls="goals=http://localhost:8001"
    )
    assert both.services == {"goals": "http://goals-api:8001"}
    assert both.console_services == {"goals": "http://localhost:8001"}


def test_the_ops_principal_reads_every_dead_letter_topic_and_describes_every_group() -> None:
    acls = service_acls(worker_spec())
    for group in topics.CONSUMER_GROUPS:
        assert Acl("group", group, "Describe") in acls
        assert Acl("group", group, "Read") not in acls, "ops never joins a service's group"
        assert Acl("topic", topics.dead_letter_topic(group), "Read") in acls
        assert Acl("topic", topics.dead_letter_topic(group), "Write") not in acls
    for topic in topics.ALL_TOPICS:
        assert {Acl("topic", topic, "Read"), Acl("topic", topic, "Write")} <= acls


async def test_a_probe_reads_readiness_and_the_outbox_gauges_and_survives_a_dead_service() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.host == "down":
            raise httpx.ConnectError("refused", request=request)
        if request.url.path == "/readyz":
            return httpx.Response(503, json={"status": "not ready", "mongodb": False})
        return httpx.Response(
            200,
            text='mandaact_outbox_pending{service="checkins"} 4.0\n'
            'mandaact_outbox_parked{service="checkins"} 1.0\n',
        )

    probes = HttpProbes(1.0, transport=httpx.MockTransport(answer))
    health = await probes.check("checkins", "http://up:8002")
    assert (health.ready, health.outbox_pending, health.outbox_parked) == (False, 4.0, 1.0)
    assert "not ready" in health.detail
    assert health.outbox_oldest_age_seconds is None
    down = await probes.check("goals", "http://down:8001")
    assert (down.ready, down.detail) == (False, "unreachable: ConnectError")
