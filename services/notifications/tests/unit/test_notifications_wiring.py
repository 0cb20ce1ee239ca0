"""Settings, the worker's consumer group and topics, the AsyncAPI document, event mapping."""

from __future__ import annotations

from datetime import time

import pytest

from mandaact_common.worker import asyncapi_document
from mandaact_contracts import topics
from notifications.bootstrap import CONSUMES, GROUP, PUBLISHES, worker_spec
from notifications.consumers.handler import prefs_of
from notifications.domain.model import KINDS, QuietHours
from notifications.settings import Settings
from services.notifications.tests.support import user_changed

pytestmark = pytest.mark.unit


def test_defaults_name_the_service_its_port_and_database() -> None:
    settings = Settings(env="test")
    assert (settings.service_name, settings.http_port) == ("notifications", 8006)
    assert settings.mongodb_database == "mandaact_notifications"
    assert (settings.poll_seconds, settings.lease_seconds, settings.chunk) == (5.0, 60.0, 200)


def test_the_worker_reads_every_source_of_notifications_and_publishes_requests() -> None:
    spec = worker_spec()
    [consumer] = spec.consumers
    assert consumer.group == GROUP == "notifications"
    assert (
        set(consumer.topics)
        == set(CONSUMES)
        == {
            topics.USER_CHANGED,
            topics.GOAL_CHANGED,
            topics.ACTION_COMPLETED,
            topics.ACTION_UNCOMPLETED,
            topics.STREAK_CHANGED,
            topics.BADGE_UNLOCKED,
            topics.LEVEL_REACHED,
            topics.REPORT_GENERATED,
            topics.USER_DELETED,
            topics.TENANT_DELETED,
        }
    )
    assert spec.publishes == PUBLISHES == (topics.NOTIFICATION_REQUESTED, topics.USER_ERASED)
    assert spec.lifecycle is not None
    assert spec.lifecycle.service == "notifications"
    assert spec.background, "the timers loop runs in the worker"
    assert topics.dead_letter_topic(GROUP) in topics.topics_to_create()


def test_the_asyncapi_document_lists_every_channel() -> None:
    document = asyncapi_document(worker_spec(), Settings(env="test"))
    channels = " ".join(document["channels"])
    for topic in (*CONSUMES, *PUBLISHES):
        assert topic in channels


def test_settings_left_out_of_user_changed_read_as_the_defaults() -> None:
    prefs = prefs_of(user_changed("alice", 3))
    assert prefs.reminder_time == time(20, 0)
    assert prefs.quiet_hours == QuietHours(time(22, 0), time(8, 0))
    assert prefs.enabled == frozenset(KINDS)
    assert prefs.version == 3
    chosen = prefs_of(
        user_changed(
            "alice",
            4,
            day_starts_at="04:00",
            reminder_time="07:30",
            quiet_hours={"from": "23:00", "to": "06:00"},
            notifications={"comeback": False, "daily_reminder": False},
        )
    )
    assert (chosen.day_starts_at, chosen.reminder_time) == (time(4, 0), time(7, 30))
    assert chosen.quiet_hours == QuietHours(time(23, 0), time(6, 0))
    assert chosen.enabled == frozenset(KINDS) - {"comeback", "daily_reminder"}
