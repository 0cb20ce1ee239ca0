"""Each process reaches Kafka as its own SASL/SCRAM-SHA-512 principal, with the ACLs its worker
declares (SPEC §11); no credentials means PLAINTEXT, as `make up` and the tests run."""

from __future__ import annotations

import ssl

import pytest
from faststream.security import SASLScram512
from pydantic import ValidationError

from mandaact_common.kafka import (
    SASL_MECHANISM,
    KafkaClientSettings,
    broker_security,
    client_security,
)
from mandaact_common.kafka_acls import Acl, kafka_principal, service_acls
from mandaact_common.settings import ServiceSettings
from mandaact_common.worker import ConsumerSpec, WorkerSpec

pytestmark = pytest.mark.unit

KAFKA_VARIABLES = (
    "MANDAACT_KAFKA_SECURITY_PROTOCOL",
    "MANDAACT_KAFKA_SASL_USERNAME",
    "MANDAACT_KAFKA_SASL_PASSWORD",
    "MANDAACT_KAFKA_SSL_CAFILE",
)


@pytest.fixture(autouse=True)
def no_kafka_settings_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in KAFKA_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def test_no_credentials_is_plaintext_and_adds_nothing_to_the_clients() -> None:
    settings = KafkaClientSettings()
    assert settings.kafka_security_protocol == "PLAINTEXT"
    assert client_security(settings) == {}
    assert broker_security(settings) is None


def test_a_principal_from_the_environment_authenticates_with_scram_sha_512(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MANDAACT_KAFKA_SASL_USERNAME", "mandaact-checkins")
    monkeypatch.setenv("MANDAACT_KAFKA_SASL_PASSWORD", "s3cret-s3cret")
    settings = ServiceSettings(env="test")
    assert settings.kafka_security_protocol == "SASL_PLAINTEXT"
    assert "s3cret" not in repr(settings)
    assert client_security(settings) == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": SASL_MECHANISM,
        "sasl_plain_username": "mandaact-checkins",
        "sasl_plain_password": "s3cret-s3cret",
    }
    security = broker_security(settings)
    assert isinstance(security, SASLScram512)
    assert (security.username, security.password) == ("mandaact-checkins", "s3cret-s3cret")
    assert security.use_ssl is False


def test_sasl_ssl_verifies_the_broker_against_the_system_cas_or_a_given_ca() -> None:
    settings = KafkaClientSettings(
        kafka_security_protocol="SASL_SSL", kafka_sasl_username="u", kafka_sasl_password="p"
    )
    security = client_security(settings)
    assert security["security_protocol"] == "SASL_SSL"
    context = security["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is True
    broker = broker_security(settings)
    assert broker is not None
    assert broker.use_ssl is True


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"kafka_sasl_username": "u"}, "set both"),
        ({"kafka_sasl_password": "p"}, "set both"),
        ({"kafka_security_protocol": "SASL_SSL"}, "SASL_SSL needs MANDAACT_KAFKA_SASL_USERNAME"),
        (
            {
                "kafka_security_protocol": "PLAINTEXT",
                "kafka_sasl_username": "u",
                "kafka_sasl_password": "p",
            },
            "sends no credentials",
        ),
        ({"kafka_ssl_cafile": "/ca.pem"}, "only with SASL_SSL"),
    ],
)
def test_half_a_principal_is_refused_at_start(values: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        KafkaClientSettings(**values)  # type: ignore[arg-type]


def test_empty_variables_mean_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in KAFKA_VARIABLES:
        monkeypatch.setenv(name, "")
    assert KafkaClientSettings().kafka_security_protocol == "PLAINTEXT"


def test_acls_are_what_the_worker_declares_and_nothing_more() -> None:
    spec = WorkerSpec(
        service="demo",
        consumers=(ConsumerSpec("demo", ("a.in", "b.in"), lambda deps: None),),  # type: ignore[arg-type, return-value]
        publishes=("c.out",),
    )
    assert service_acls(spec) == {
        Acl("topic", "c.out", "Write"),
        Acl("topic", "demo.dlt", "Write"),
        Acl("group", "demo", "Read"),
        Acl("topic", "a.in", "Read"),
        Acl("topic", "b.in", "Read"),
    }
    assert service_acls(WorkerSpec(service="quiet", publishes=("x",))) == {
        Acl("topic", "x", "Write")
    }
    assert kafka_principal("checkins") == "mandaact-checkins"
