"""Tokens of an identity provider through the goals HTTP API: RS256 and ES256 verified with the
keys of a JWKS served on 127.0.0.1, `aud` and `iss` checked, 30 s leeway, rotated keys picked up
without a restart, and every refusal a 401 problem that says why (docs/security.md)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient

from goals.bootstrap import build_app
from goals.settings import Settings
from mandaact_common.auth import mint_token
from mandaact_common.mongo import Doc
from mandaact_common.settings import DEV_JWT_SECRET
from mandaact_common.testing import JwksServer, SigningKey

pytestmark = pytest.mark.integration

AUDIENCE = "mandaact-api"
ISSUER = "https://idp.example/"
PROBLEM = "application/problem+json"

Start = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture(scope="module")
def rsa_key() -> SigningKey:
    """The identity provider's RS256 key."""
    return SigningKey("RS256")


@pytest.fixture(scope="module")
def ec_key() -> SigningKey:
    """The identity provider's ES256 key."""
    return SigningKey("ES256")


@pytest.fixture
def jwks(rsa_key: SigningKey, ec_key: SigningKey) -> Iterator[JwksServer]:
    """The identity provider's JWKS endpoint, publishing both keys."""
    with JwksServer() as server:
        server.publish(rsa_key, ec_key)
        yield server


@pytest.fixture
def start(infra: Any, unique_db_name: str, mongo_client: AsyncMongoClient[Doc]) -> Start:
    """Start the goals app with some token settings: `async with start(**settings) as http`."""

    @asynccontextmanager
    async def started(**token_settings: Any) -> AsyncIterator[httpx.AsyncClient]:
        settings = Settings(
            env="test",
            mongodb_url=infra.mongodb_url,
            mongodb_database=unique_db_name,
            **token_settings,
        )
        app = build_app(settings, client=mongo_client)
        try:
            async with app.router.lifespan_context(app):
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://goals") as http:
                    yield http
        finally:
            await mongo_client.drop_database(unique_db_name)

    return started


@pytest.fixture
async def http(start: Start, jwks: JwksServer) -> AsyncIterator[httpx.AsyncClient]:
    """The goals API verifying tokens through the JWKS, with an audience and an issuer."""
    async with start(
        jwt_jwks_url=jwks.url,
        jwt_audience=AUDIENCE,
        jwt_issuer=ISSUER,
        jwt_jwks_min_refresh_seconds=0,
    ) as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    """The Authorization header carrying `token`."""
    return {"Authorization": f"Bearer {token}"}


def idp_token(key: SigningKey, user: str = "alice", **claims: Any) -> str:
    """A token as the identity provider issues it for this API (`aud`, `iss`), signed by `key`."""
    return key.token("acme", user, **{"aud": AUDIENCE, "iss": ISSUER, **claims})


async def me(http: httpx.AsyncClient, token: str) -> httpx.Response:
    """GET /v1/me with the token."""
    return await http.get("/v1/me", headers=bearer(token))


def refused(response: httpx.Response, why: str) -> dict[str, Any]:
    """The response is a 401 problem whose detail contains `why`."""
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == PROBLEM
    assert response.headers["www-authenticate"] == "Bearer"
    body: dict[str, Any] = response.json()
    assert body["type"].endswith("/unauthorized")
    assert why in body["detail"], body
    return body


async def test_an_rs256_token_from_the_jwks_is_accepted_and_the_keys_are_cached(
    http: httpx.AsyncClient, jwks: JwksServer, rsa_key: SigningKey
) -> None:
    for user in ("alice", "bob", "alice"):
        response = await me(http, idp_token(rsa_key, user))
        assert response.status_code == 200, response.text
        assert response.json()["user_id"] == user
    assert jwks.fetches == 1, "one fetch, then the cached keys"


async def test_an_es256_token_is_accepted_for_the_same_principal(
    http: httpx.AsyncClient, rsa_key: SigningKey, ec_key: SigningKey
) -> None:
    put = await http.put("/v1/me", json={"locale": "en"}, headers=bearer(idp_token(rsa_key)))
    assert put.status_code == 200, put.text
    got = await me(http, idp_token(ec_key))
    assert got.status_code == 200, got.text
    assert (got.json()["user_id"], got.json()["locale"]) == ("alice", "en")


REFUSALS: list[tuple[str, Callable[[SigningKey], str], str]] = [
    ("wrong-audience", lambda k: idp_token(k, aud="another-app"), "audience ('aud') is not"),
    ("no-audience", lambda k: k.token(iss=ISSUER), "lacks the 'aud' claim"),
    ("wrong-issuer", lambda k: idp_token(k, iss="https://evil.example/"), "issuer ('iss') is not"),
    ("no-issuer", lambda k: k.token(aud=AUDIENCE), "lacks the 'iss' claim"),
    ("unknown-kid", lambda k: idp_token(k, kid="nobody"), "(kid 'nobody') is not in the JWKS"),
    ("no-kid", lambda k: idp_token(k, kid=""), "no 'kid' header"),
    (
        "expired",
        lambda k: k.token(aud=AUDIENCE, iss=ISSUER, now=time.time() - 120, ttl_seconds=60),
        "the token has expired",
    ),
    (
        "not-yet-valid",
        lambda k: idp_token(k, now=time.time() + 120),
        "not valid yet",
    ),
    (
        "forged-with-the-same-kid",
        lambda k: idp_token(SigningKey("RS256", kid=k.kid)),
        "signature does not verify",
    ),
    (
        "hs256-dev-token",
        lambda _k: mint_token(DEV_JWT_SECRET, "acme", "alice", audience=AUDIENCE, issuer=ISSUER),
        "signed with 'HS256'; this service accepts RS256, ES256",
    ),
]


@pytest.mark.parametrize(
    ("token_of", "why"), [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS]
)
async def test_a_token_that_does_not_verify_is_refused_with_a_401_saying_why(
    http: httpx.AsyncClient, rsa_key: SigningKey, token_of: Callable[[SigningKey], str], why: str
) -> None:
    refused(await me(http, token_of(rsa_key)), why)


async def test_clocks_may_differ_by_30_seconds(http: httpx.AsyncClient, ec_key: SigningKey) -> None:
    issued_ahead = idp_token(ec_key, now=time.time() + 1)
    assert (await me(http, issued_ahead)).status_code == 200
    expired_10s_ago = idp_token(ec_key, now=time.time() - 70, ttl_seconds=60)
    assert (await me(http, expired_10s_ago)).status_code == 200
    refused(await me(http, idp_token(ec_key, now=time.time() - 100, ttl_seconds=60)), "expired")


async def test_a_key_rotated_into_the_jwks_is_used_without_a_restart(
    http: httpx.AsyncClient, jwks: JwksServer, rsa_key: SigningKey
) -> None:
    jwks.publish(rsa_key)
    assert (await me(http, idp_token(rsa_key))).status_code == 200
    rotated = SigningKey("RS256")
    jwks.publish(rotated)
    response = await me(http, idp_token(rotated))
    assert response.status_code == 200, response.text
    refused(await me(http, idp_token(rsa_key)), f"(kid '{rsa_key.kid}') is not in the JWKS")


async def test_unknown_kids_do_not_make_every_request_fetch_the_jwks(
    start: Start, jwks: JwksServer, rsa_key: SigningKey
) -> None:
    async with start(jwt_jwks_url=jwks.url, jwt_audience=AUDIENCE, jwt_issuer=ISSUER) as http:
        assert (await me(http, idp_token(rsa_key))).status_code == 200
        for n in range(5):
            refused(await me(http, idp_token(rsa_key, kid=f"made-up-{n}")), "not in the JWKS")
    assert jwks.fetches == 1, "within MANDAACT_JWT_JWKS_MIN_REFRESH_S the fetched set answers"


async def test_a_jwks_that_cannot_be_fetched_answers_503_then_recovers(
    http: httpx.AsyncClient, jwks: JwksServer, rsa_key: SigningKey
) -> None:
    jwks.down = True
    response = await me(http, idp_token(rsa_key))
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == PROBLEM
    assert response.headers["retry-after"] == "5"
    assert response.json()["type"].endswith("/auth-unavailable")
    assert "JWKS" in response.json()["detail"]
    jwks.down = False
    assert (await me(http, idp_token(rsa_key))).status_code == 200


async def test_keys_fetched_before_the_jwks_went_down_still_verify(
    start: Start, jwks: JwksServer, ec_key: SigningKey
) -> None:
    async with start(
        jwt_jwks_url=jwks.url,
        jwt_audience=AUDIENCE,
        jwt_issuer=ISSUER,
        jwt_jwks_cache_seconds=0.2,
        jwt_jwks_min_refresh_seconds=0,
    ) as http:
        assert (await me(http, idp_token(ec_key))).status_code == 200
        jwks.down = True
        await asyncio.sleep(0.3)
        response = await me(http, idp_token(ec_key))
        assert response.status_code == 200, response.text
        assert jwks.fetches == 2, "the expired set was fetched again, and that failed"


async def test_a_slow_jwks_fetch_does_not_hold_up_other_requests(
    http: httpx.AsyncClient, jwks: JwksServer, rsa_key: SigningKey
) -> None:
    jwks.delay = 1.0
    waiting = asyncio.create_task(me(http, idp_token(rsa_key)))
    await asyncio.sleep(0.1)
    started = time.perf_counter()
    assert (await http.get("/healthz")).status_code == 200
    assert time.perf_counter() - started < 0.5, "the event loop went on during the fetch"
    assert (await waiting).status_code == 200


async def test_without_a_configured_audience_a_token_naming_one_is_accepted(
    start: Start, jwks: JwksServer, rsa_key: SigningKey
) -> None:
    async with start(jwt_jwks_url=jwks.url) as http:
        response = await me(http, rsa_key.token(aud="whatever-api", iss="https://any.example/"))
        assert response.status_code == 200, response.text


async def test_hs256_mode_checks_audience_and_issuer_when_set(start: Start) -> None:
    async with start(jwt_audience=AUDIENCE, jwt_issuer=ISSUER) as http:
        good = mint_token(DEV_JWT_SECRET, "acme", "alice", audience=AUDIENCE, issuer=ISSUER)
        assert (await me(http, good)).status_code == 200
        no_aud = mint_token(DEV_JWT_SECRET, "acme", "alice", issuer=ISSUER)
        refused(await me(http, no_aud), "lacks the 'aud' claim")
        other = mint_token(DEV_JWT_SECRET, "acme", "alice", audience=AUDIENCE, issuer="x")
        refused(await me(http, other), "issuer ('iss') is not 'https://idp.example/'")
