"""Token settings fail closed: production (the default) refuses to start without a real secret or
a JWKS URL, and the development secret works only in local and test modes."""

from __future__ import annotations

import re

import pytest
from pydantic import SecretStr, ValidationError

from mandaact_common.auth import Authenticator, mint_token
from mandaact_common.entrypoints import load_settings
from mandaact_common.problems import Unauthorized
from mandaact_common.settings import DEV_ERASURE_KEY, DEV_JWT_SECRET, ServiceSettings

pytestmark = pytest.mark.unit

REAL_SECRET = "a-real-secret-of-at-least-32-characters-0001"
REAL_ERASURE_KEY = "a-real-erasure-key-of-at-least-32-characters"
JWT_VARIABLES = (
    "MANDAACT_ENV",
    "MANDAACT_JWT_SECRET",
    "MANDAACT_JWT_JWKS_URL",
    "MANDAACT_JWT_AUDIENCE",
    "MANDAACT_JWT_ISSUER",
)


@pytest.fixture(autouse=True)
def no_token_settings_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in JWT_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def _an_erasure_key(monkeypatch: pytest.MonkeyPatch) -> None:
    # These tests are about tokens; production also needs the erasure key (tested below).
    monkeypatch.setenv("MANDAACT_ERASURE_KEY", REAL_ERASURE_KEY)


def test_production_needs_an_erasure_key_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MANDAACT_ERASURE_KEY")
    with pytest.raises(ValidationError, match="needs MANDAACT_ERASURE_KEY"):
        ServiceSettings(jwt_secret=REAL_SECRET)
    with pytest.raises(ValidationError, match="documented development key"):
        ServiceSettings(jwt_secret=REAL_SECRET, erasure_key=DEV_ERASURE_KEY)
    with pytest.raises(ValidationError, match="at least 32 characters"):
        ServiceSettings(jwt_secret=REAL_SECRET, erasure_key="short")
    assert ServiceSettings(env="test").erasure_key == SecretStr(DEV_ERASURE_KEY)
    real = ServiceSettings(jwt_secret=REAL_SECRET, erasure_key=REAL_ERASURE_KEY)
    assert REAL_ERASURE_KEY not in repr(real)


def test_mandaact_env_defaults_to_production() -> None:
    assert ServiceSettings(jwt_secret=REAL_SECRET).env == "production"


def test_the_dev_secret_is_refused_when_mandaact_env_is_unset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MANDAACT_JWT_SECRET", DEV_JWT_SECRET)
    with pytest.raises(ValidationError, match="MANDAACT_JWT_SECRET is the documented development"):
        ServiceSettings()
    with pytest.raises(ValidationError, match="accepted only with MANDAACT_ENV=local or test"):
        ServiceSettings(jwt_secret=DEV_JWT_SECRET, env="production")


def test_production_without_a_secret_or_a_jwks_url_refuses_to_start() -> None:
    with pytest.raises(ValidationError) as refused:
        ServiceSettings()
    message = str(refused.value)
    assert "MANDAACT_JWT_SECRET" in message
    assert "MANDAACT_JWT_JWKS_URL" in message
    assert "MANDAACT_ENV=local" in message, "says how to run in development"


@pytest.mark.parametrize("env", ["local", "test"])
def test_local_and_test_modes_run_on_the_dev_secret_by_default(
    monkeypatch: pytest.MonkeyPatch, env: str
) -> None:
    monkeypatch.setenv("MANDAACT_ENV", env)
    settings = ServiceSettings()
    assert isinstance(settings.jwt_secret, SecretStr)
    assert settings.jwt_secret.get_secret_value() == DEV_JWT_SECRET
    assert DEV_JWT_SECRET not in repr(settings)
    assert DEV_JWT_SECRET not in str(settings.model_dump())


def test_a_real_secret_is_not_shown() -> None:
    settings = ServiceSettings(jwt_secret=REAL_SECRET)
    assert REAL_SECRET not in repr(settings)
    assert REAL_SECRET not in str(settings)


@pytest.mark.parametrize("env", ["local", "test", "production"])
def test_a_short_secret_is_refused_and_not_printed(env: str) -> None:
    with pytest.raises(ValidationError, match="at least 32 characters") as refused:
        ServiceSettings(env=env, jwt_secret="short-secret-value")
    assert "short-secret-value" not in str(refused.value)


def test_blank_token_variables_mean_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in JWT_VARIABLES[1:]:
        monkeypatch.setenv(name, "  ")
    monkeypatch.setenv("MANDAACT_ENV", "local")
    settings = ServiceSettings()
    assert settings.jwt_secret == SecretStr(DEV_JWT_SECRET)
    assert (settings.jwt_jwks_url, settings.jwt_audience, settings.jwt_issuer) == (None,) * 3
    monkeypatch.setenv("MANDAACT_ENV", "production")
    with pytest.raises(ValidationError, match="needs MANDAACT_JWT_SECRET"):
        ServiceSettings()


def test_a_secret_and_a_jwks_url_together_are_refused() -> None:
    with pytest.raises(ValidationError, match="not both"):
        ServiceSettings(jwt_secret=REAL_SECRET, jwt_jwks_url="https://idp.example/jwks.json")


def test_production_takes_a_jwks_url_over_https_only() -> None:
    settings = ServiceSettings(jwt_jwks_url="https://idp.example/.well-known/jwks.json")
    assert settings.jwt_secret is None, "no development secret beside the JWKS"
    with pytest.raises(ValidationError, match="must be an https URL"):
        ServiceSettings(jwt_jwks_url="http://idp.example/.well-known/jwks.json")
    with pytest.raises(ValidationError, match="must be an https or http URL"):
        ServiceSettings(env="test", jwt_jwks_url="file:///etc/passwd")
    local = ServiceSettings(env="test", jwt_jwks_url="http://127.0.0.1:9/jwks.json")
    assert local.jwt_jwks_url == "http://127.0.0.1:9/jwks.json"


def test_the_entry_points_exit_with_the_reason_and_without_the_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MANDAACT_JWT_SECRET", "short-secret-value")
    with pytest.raises(SystemExit) as refused:
        load_settings(ServiceSettings)
    message = str(refused.value.code)
    assert message.startswith("refusing to start, the settings are not valid:")
    assert "MANDAACT_JWT_SECRET must be at least 32 characters" in message
    assert "short-secret-value" not in message


async def test_audience_and_issuer_are_checked_when_set_in_hs256_mode() -> None:
    settings = ServiceSettings(
        jwt_secret=REAL_SECRET, jwt_audience="mandaact-api, other-api", jwt_issuer="https://me/"
    )
    authenticator = Authenticator.from_settings(settings)
    good = mint_token(REAL_SECRET, "acme", "alice", audience="other-api", issuer="https://me/")
    assert (await authenticator.verify(good)).user_id == "alice"
    for token, reason in [
        (mint_token(REAL_SECRET, "acme", "alice", issuer="https://me/"), "'aud'"),
        (mint_token(REAL_SECRET, "acme", "alice", audience="mandaact-api"), "'iss'"),
        (
            mint_token(REAL_SECRET, "acme", "alice", audience="x", issuer="https://me/"),
            "audience ('aud') is not 'mandaact-api' or 'other-api'",
        ),
        (
            mint_token(REAL_SECRET, "acme", "alice", audience="mandaact-api", issuer="https://x/"),
            "issuer ('iss') is not 'https://me/'",
        ),
    ]:
        with pytest.raises(Unauthorized, match=re.escape(reason)):
            await authenticator.verify(token)


async def test_without_a_configured_audience_a_token_naming_one_is_accepted() -> None:
    authenticator = Authenticator.from_settings(ServiceSettings(jwt_secret=REAL_SECRET))
    token = mint_token(REAL_SECRET, "acme", "alice", audience="some-api")
    assert (await authenticator.verify(token)).tenant_id == "acme"
