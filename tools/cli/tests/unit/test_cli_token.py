"""`mandaact token`: prints a dev JWT the services accept for the tenant and user given."""

from __future__ import annotations

import time

import jwt
import pytest

from mandaact_cli.cli import main
from mandaact_common.auth import verify_token
from mandaact_common.settings import DEV_JWT_SECRET

pytestmark = pytest.mark.unit

OTHER_SECRET = "another-secret-of-at-least-32-characters!"


def _token(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(["token", *args]) == 0
    out = capsys.readouterr().out
    assert out.endswith("\n")
    assert out.count("\n") == 1, "one line, so that TOKEN=$(mandaact token ...) works"
    return out.strip()


def test_token_is_signed_with_the_dev_secret_for_the_tenant_and_user(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MANDAACT_JWT_SECRET", raising=False)
    principal = verify_token(_token(capsys, "--tenant", "acme", "--user", "alice"), DEV_JWT_SECRET)
    assert (principal.tenant_id, principal.user_id) == ("acme", "alice")
    assert not principal.is_admin


def test_token_uses_mandaact_jwt_secret_when_set(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MANDAACT_JWT_SECRET", OTHER_SECRET)
    token = _token(capsys, "--tenant", "acme", "--user", "bob")
    assert verify_token(token, OTHER_SECRET).user_id == "bob"
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, DEV_JWT_SECRET, algorithms=["HS256"])


def test_token_admin_role_and_ttl(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MANDAACT_JWT_SECRET", raising=False)
    before = int(time.time())
    token = _token(capsys, "--tenant", "t1", "--user", "u1", "--admin", "--ttl", "60")
    assert verify_token(token, DEV_JWT_SECRET).is_admin
    claims = jwt.decode(token, DEV_JWT_SECRET, algorithms=["HS256"])
    assert claims["roles"] == ["admin"]
    assert before <= claims["iat"] <= int(time.time())
    assert claims["exp"] - claims["iat"] == 60


def test_token_default_lifetime_is_a_day(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MANDAACT_JWT_SECRET", raising=False)
    claims = jwt.decode(
        _token(capsys, "--tenant", "acme", "--user", "alice"),
        DEV_JWT_SECRET,
        algorithms=["HS256"],
    )
    assert claims["exp"] - claims["iat"] == 24 * 3600
    assert "roles" not in claims


def test_token_names_the_configured_audience_and_issuer(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MANDAACT_JWT_SECRET", raising=False)
    monkeypatch.setenv("MANDAACT_JWT_AUDIENCE", "mandaact-api, other-api")
    monkeypatch.setenv("MANDAACT_JWT_ISSUER", "https://idp.example/")
    token = _token(capsys, "--tenant", "acme", "--user", "alice")
    principal = verify_token(
        token, DEV_JWT_SECRET, audience=["mandaact-api"], issuer="https://idp.example/"
    )
    assert principal.user_id == "alice"


@pytest.mark.parametrize("args", [[], ["token"], ["token", "--tenant", "acme"], ["nope"]])
def test_missing_command_or_arguments_exit_with_usage(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2
    assert "usage: mandaact" in capsys.readouterr().err
