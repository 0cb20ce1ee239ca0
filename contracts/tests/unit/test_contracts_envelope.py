"""CloudEvents envelope: Kafka binary-mode mapping and payload parsing."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest

from mandaact_contracts import topics
from mandaact_contracts.envelope import (
    REQUIRED_HEADERS,
    Envelope,
    InvalidEvent,
    encode_value,
    from_kafka,
    new_envelope,
    parse_payload,
    parse_payload_as,
    partition_key,
    to_kafka_headers,
)
from mandaact_contracts.events import ActionCompleted, ActionUncompleted, LevelReached

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 20, 14, 30, 0, 123456, tzinfo=UTC)
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def _payload(tenant: str = "t1") -> ActionCompleted:
    return ActionCompleted(
        tenant_id=tenant,
        user_id="u1",
        checkin_id="c1",
        action_id="a1",
        mandalart_id="m1",
        sub_goal_position=1,
        sub_goal_title="Event flows",
        action_title="그림 그리기",
        action_type="routine",
        local_date=NOW.date(),
        timezone="Asia/Seoul",
        occurred_at=NOW,
        seq=1,
    )


def _envelope(**kwargs: str) -> Envelope:
    return new_envelope(
        topics.ACTION_COMPLETED, _payload(), "checkins", subject="a1", time=NOW, **kwargs
    )


def _record(env: Envelope) -> tuple[list[tuple[str, bytes]], bytes]:
    return to_kafka_headers(env), encode_value(env)


def test_new_envelope_fills_the_attributes() -> None:
    env = new_envelope(topics.ACTION_COMPLETED, _payload(), "checkins")
    assert uuid.UUID(env.id).version == 4
    assert env.type == "mandaact.action.completed.v1"
    assert env.source == "checkins"
    assert env.tenant_id == "t1"
    assert env.subject is None
    assert env.traceparent is None
    assert env.time.tzinfo is not None
    assert env.data["action_title"] == "그림 그리기"
    assert new_envelope(topics.ACTION_COMPLETED, _payload(), "checkins").id != env.id


def test_new_envelope_keeps_a_given_id_and_checks_the_payload_type() -> None:
    event_id = str(uuid.uuid4())
    assert _envelope(event_id=event_id).id == event_id
    with pytest.raises(TypeError, match="ActionUncompleted"):
        new_envelope(topics.ACTION_UNCOMPLETED, _payload(), "checkins")
    with pytest.raises(ValueError, match="unknown topic"):
        new_envelope("nope", _payload(), "checkins")
    with pytest.raises(ValueError, match="UUID"):
        _envelope(event_id="not-a-uuid")
    with pytest.raises(ValueError, match="traceparent"):
        _envelope(traceparent="garbage")
    with pytest.raises(ValueError, match="traceparent"):
        _envelope(traceparent=f"00-{'0' * 32}-00f067aa0ba902b7-01")


def test_headers_and_value() -> None:
    env = _envelope(traceparent=TRACEPARENT)
    headers = dict(to_kafka_headers(env))
    assert headers == {
        "ce_specversion": b"1.0",
        "ce_id": env.id.encode(),
        "ce_source": b"checkins",
        "ce_type": b"mandaact.action.completed.v1",
        "ce_time": b"2026-11-20T14:30:00.123456Z",
        "ce_subject": b"a1",
        "ce_tenantid": b"t1",
        "content-type": b"application/json",
        "traceparent": TRACEPARENT.encode(),
    }
    value = encode_value(env)
    assert value.startswith(b'{"tenant_id":"t1","user_id":"u1",')
    assert "그림 그리기".encode() in value
    assert json.loads(value) == env.data
    no_optional = dict(to_kafka_headers(new_envelope(topics.ACTION_COMPLETED, _payload(), "x")))
    assert "ce_subject" not in no_optional
    assert "traceparent" not in no_optional


def test_roundtrip() -> None:
    env = _envelope(traceparent=TRACEPARENT)
    back = from_kafka(*_record(env))
    assert back == env
    payload = parse_payload(back)
    assert payload == _payload()
    assert isinstance(payload, ActionCompleted)
    assert parse_payload_as(back, ActionCompleted) == _payload()


def test_from_kafka_accepts_a_mapping_of_str_values() -> None:
    env = _envelope()
    headers, value = _record(env)
    assert from_kafka({k: v.decode() for k, v in headers}, value) == env


def test_partition_key() -> None:
    assert partition_key(_payload()) == b"t1:u1"
    assert partition_key(_envelope()) == b"t1:u1"


@pytest.mark.parametrize("missing", REQUIRED_HEADERS)
def test_missing_header_is_invalid(missing: str) -> None:
    headers, value = _record(_envelope())
    headers = [(k, v) for k, v in headers if k != missing]
    with pytest.raises(InvalidEvent, match=f"missing CloudEvents header.*{missing}"):
        from_kafka(headers, value)


@pytest.mark.parametrize(
    ("header", "bad", "message"),
    [
        ("ce_specversion", b"0.3", "unsupported ce_specversion"),
        ("ce_id", b"42", "UUID"),
        ("ce_time", b"yesterday", "RFC 3339"),
        ("ce_time", b"2026-11-20T14:30:00", "RFC 3339"),
        ("ce_time", b"2026-13-20T14:30:00Z", "RFC 3339"),
        ("content-type", b"application/avro", "content-type"),
        ("ce_tenantid", b"\xff", "not UTF-8"),
    ],
)
def test_invalid_header(header: str, bad: bytes, message: str) -> None:
    headers, value = _record(_envelope())
    headers = [(k, bad if k == header else v) for k, v in headers]
    with pytest.raises(InvalidEvent, match=message):
        from_kafka(headers, value)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (b"", "no value"),
        (None, "no value"),
        (b"{not json", "not UTF-8 JSON"),
        (b"\xff\xfe", "not UTF-8 JSON"),
        (b"[1, 2]", "JSON object"),
    ],
)
def test_invalid_value(value: bytes | None, message: str) -> None:
    headers, _ = _record(_envelope())
    with pytest.raises(InvalidEvent, match=message):
        from_kafka(headers, value)


def test_malformed_traceparent_is_dropped_not_fatal() -> None:
    headers, value = _record(_envelope())
    env = from_kafka([*headers, ("traceparent", b"nonsense")], value)
    assert env.traceparent is None


def test_parse_payload_failures() -> None:
    env = _envelope()
    with pytest.raises(InvalidEvent, match=r"invalid mandaact\.action\.completed\.v1 payload.*seq"):
        parse_payload(env.model_copy(update={"data": {**env.data, "seq": "x"}}))
    with pytest.raises(InvalidEvent, match="unknown event type"):
        parse_payload(env.model_copy(update={"type": "mandaact.nope.v1"}))
    with pytest.raises(InvalidEvent, match="differs from ce_tenantid"):
        parse_payload(env.model_copy(update={"tenant_id": "t2"}))
    with pytest.raises(InvalidEvent, match="expected a LevelReached"):
        parse_payload_as(env, LevelReached)


def test_additive_fields_are_tolerated_by_consumers() -> None:
    headers, value = _record(_envelope())
    data = json.loads(value)
    data["new_optional_field"] = {"nested": True}
    payload = parse_payload(from_kafka(headers, json.dumps(data).encode()))
    assert payload == _payload()
    assert not isinstance(payload, ActionUncompleted)
