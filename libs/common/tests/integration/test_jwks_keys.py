"""How the JWKS cache ages, against a JWKS served on 127.0.0.1 and a clock moved by hand."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mandaact_common.auth import (
    JWKS_STALE_GRACE_S,
    Authenticator,
    JwksKeys,
    SigningKeysUnavailable,
)
from mandaact_common.problems import Unauthorized
from mandaact_common.testing import JwksServer, SigningKey

pytestmark = pytest.mark.integration

CACHE_S = 300.0


class Clock:
    """A monotonic clock moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return SigningKey("ES256")


@pytest.fixture
def jwks(key: SigningKey) -> Iterator[JwksServer]:
    with JwksServer() as server:
        server.publish(key)
        yield server


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def keys(jwks: JwksServer, clock: Clock) -> JwksKeys:
    return JwksKeys(jwks.url, cache_seconds=CACHE_S, min_refresh_seconds=10, clock=clock)


async def test_the_set_is_fetched_again_once_it_is_older_than_the_cache_time(
    keys: JwksKeys, jwks: JwksServer, key: SigningKey, clock: Clock
) -> None:
    assert (await keys.key(key.kid)).key_id == key.kid
    clock.now += CACHE_S - 1
    await keys.key(key.kid)
    assert jwks.fetches == 1
    clock.now += 2
    await keys.key(key.kid)
    assert jwks.fetches == 2


async def test_known_keys_outlive_an_outage_by_the_grace_time_only(
    keys: JwksKeys, jwks: JwksServer, key: SigningKey, clock: Clock
) -> None:
    await keys.key(key.kid)
    jwks.down = True
    clock.now += CACHE_S + JWKS_STALE_GRACE_S - 1
    assert (await keys.key(key.kid)).key_id == key.kid, "stale, but within the grace time"
    clock.now += 2
    with pytest.raises(SigningKeysUnavailable):
        await keys.key(key.kid)


async def test_an_unknown_kid_while_the_jwks_fails_is_a_503_not_a_401(
    keys: JwksKeys, jwks: JwksServer, key: SigningKey, clock: Clock
) -> None:
    await keys.key(key.kid)
    clock.now += 11
    jwks.down = True
    with pytest.raises(SigningKeysUnavailable):
        await keys.key("rotated-in-just-now")
    jwks.down = False
    with pytest.raises(SigningKeysUnavailable):
        await keys.key("rotated-in-just-now")  # the failed fetch counts: no new one yet
    assert jwks.fetches == 2
    clock.now += 10
    with pytest.raises(Unauthorized, match="not in the JWKS"):
        await keys.key("rotated-in-just-now")
    assert jwks.fetches == 3


async def test_a_failing_jwks_is_not_fetched_again_by_every_request(
    keys: JwksKeys, jwks: JwksServer, key: SigningKey, clock: Clock
) -> None:
    jwks.down = True
    for _ in range(5):
        with pytest.raises(SigningKeysUnavailable):
            await keys.key(key.kid)
    assert jwks.fetches == 1
    clock.now += 10
    jwks.down = False
    assert (await keys.key(key.kid)).key_id == key.kid


async def test_a_jwks_that_is_not_a_key_set_is_unavailable(
    keys: JwksKeys, jwks: JwksServer, key: SigningKey
) -> None:
    jwks.jwks = {"keys": [{"kty": "nothing-known"}]}
    with pytest.raises(SigningKeysUnavailable):
        await keys.key(key.kid)


async def test_an_rs256_token_is_refused_in_hs256_mode() -> None:
    authenticator = Authenticator(secret="a-real-secret-of-at-least-32-characters-0001")
    with pytest.raises(Unauthorized, match="signed with 'RS256'; this service accepts HS256"):
        await authenticator.verify(SigningKey("RS256").token())


def test_an_authenticator_has_a_secret_or_a_jwks() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        Authenticator()
