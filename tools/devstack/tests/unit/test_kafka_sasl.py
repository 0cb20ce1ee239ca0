"""devstack's SASL mode: credentials, the broker's SASL/ACL settings, SCRAM format arguments."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import stat
from pathlib import Path

import pytest

from mandaact_common.kafka_acls import Acl
from mandaact_devstack import cli
from mandaact_devstack.kafka import render_server_properties
from mandaact_devstack.kafka_sasl import (
    ADMIN_USER,
    SCRAM_ITERATIONS,
    KafkaCredentials,
    _acl_of,
    sasl_wanted,
    scram_format_argument,
    service_principals,
    stack_acls,
)
from mandaact_devstack.procs import DevstackError
from mandaact_devstack.services import SERVICE_PORTS

pytestmark = pytest.mark.unit


def _props(text: str) -> dict[str, str]:
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def test_credentials_are_made_once_private_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "kafka-sasl" / "credentials.json"
    made = KafkaCredentials.load_or_create(path, ["mandaact-goals"])
    assert set(made.passwords) == {ADMIN_USER, "mandaact-goals"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(set(made.passwords.values())) == 2
    again = KafkaCredentials.load_or_create(path, ["mandaact-goals"])
    assert again.passwords == made.passwords
    with pytest.raises(DevstackError, match="no credentials for mandaact-reports"):
        KafkaCredentials.load_or_create(path, ["mandaact-reports"])


def test_credentials_give_client_arguments_and_a_service_environment() -> None:
    credentials = KafkaCredentials({ADMIN_USER: "a" * 20, "mandaact-checkins": "c" * 20})
    assert credentials.security()["sasl_plain_username"] == ADMIN_USER
    assert credentials.security("mandaact-checkins")["sasl_mechanism"] == "SCRAM-SHA-512"
    assert credentials.env("mandaact-checkins") == {
        "MANDAACT_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "MANDAACT_KAFKA_SASL_USERNAME": "mandaact-checkins",
        "MANDAACT_KAFKA_SASL_PASSWORD": "c" * 20,
    }


def test_sasl_broker_takes_scram_clients_only_and_authorizes_with_acls() -> None:
    credentials = KafkaCredentials({ADMIN_USER: "adminpw"})
    props = _props(
        render_server_properties(
            Path("/data"),
            host="127.0.0.1",
            port=19092,
            controller_port=19093,
            credentials=credentials,
        )
    )
    assert props["listeners"] == "SASL_PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["advertised.listeners"] == "SASL_PLAINTEXT://127.0.0.1:19092"
    assert "PLAINTEXT://" not in props["listeners"].replace("SASL_PLAINTEXT://", "")
    assert set(dict(p.split(":") for p in props["listener.security.protocol.map"].split(","))) == {
        "CONTROLLER",
        "SASL_PLAINTEXT",
    }
    assert props["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert props["authorizer.class.name"].endswith(".StandardAuthorizer")
    assert props["super.users"] == f"User:{ADMIN_USER}"
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert (
        'password="adminpw"' in props["listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config"]
    )
    plain = _props(
        render_server_properties(Path("/data"), host="127.0.0.1", port=19092, controller_port=19093)
    )
    assert "authorizer.class.name" not in plain
    assert plain["listeners"].startswith("PLAINTEXT://127.0.0.1:19092")


def test_scram_format_argument_carries_the_salted_password_not_the_password() -> None:
    salt = b"0123456789abcdef"
    argument = scram_format_argument("mandaact-goals", "the-password", salt=salt)
    assert "the-password" not in argument
    match = re.fullmatch(
        r'SCRAM-SHA-512=\[name=mandaact-goals,iterations=(\d+),salt="([^"]+)",'
        r'saltedpassword="([^"]+)"\]',
        argument,
    )
    assert match is not None
    assert int(match.group(1)) == SCRAM_ITERATIONS
    assert base64.b64decode(match.group(2)) == salt
    expected = hashlib.pbkdf2_hmac("sha512", b"the-password", salt, SCRAM_ITERATIONS)
    assert base64.b64decode(match.group(3)) == expected


@pytest.mark.parametrize(
    ("value", "wanted"),
    [("true", True), ("1", True), ("YES", True), ("on", True), ("", False), ("false", False)],
)
def test_the_sasl_flag(value: str, wanted: bool) -> None:
    assert sasl_wanted({"MANDAACT_KAFKA_SASL": value}) is wanted


def test_stack_acls_cover_every_installed_service() -> None:
    acls = stack_acls(SERVICE_PORTS)
    assert set(acls) == set(service_principals(SERVICE_PORTS))
    assert stack_acls(["no-such-service"]) == {}


def test_described_acls_map_back_to_the_ones_devstack_manages() -> None:
    topic, group, literal, prefixed, read, write, alter = 2, 3, 3, 4, 3, 4, 7
    assert _acl_of(topic, "xp.awarded", literal, write) == Acl("topic", "xp.awarded", "Write")
    assert _acl_of(group, "checkins", literal, read) == Acl("group", "checkins", "Read")
    assert _acl_of(topic, "xp.", prefixed, write) is None  # not managed: deleted as stale
    assert _acl_of(topic, "xp.awarded", literal, alter) is None


def test_kafka_env_prints_exports_for_tools(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.kafka_env(tmp_path) == 1
    assert "MANDAACT_KAFKA_SASL=true make up" in capsys.readouterr().out
    cli.sasl_credentials(tmp_path)
    assert cli.kafka_env(tmp_path) == 0
    out = capsys.readouterr().out
    assert f"export MANDAACT_KAFKA_SASL_USERNAME={ADMIN_USER}" in out
    assert "export KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092" in out
    stored = json.loads((tmp_path / "kafka-sasl" / "credentials.json").read_text())
    assert f"export MANDAACT_KAFKA_SASL_PASSWORD={stored[ADMIN_USER]}" in out
    assert cli.kafka_env(tmp_path, "nobody") == 1
