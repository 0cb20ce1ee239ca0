"""JWT auth: the tenant and user come only from a verified token.

Two modes, picked by the settings: HS256 with a shared secret (`MANDAACT_JWT_SECRET`), or
RS256/ES256 tokens of an identity provider whose public keys come from its JWKS
(`MANDAACT_JWT_JWKS_URL`). In both, `aud` and `iss` are checked when configured and clocks may
differ by `LEEWAY_SECONDS`. docs/security.md gives the reasons.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import jwt
from jwt import PyJWK, PyJWKClient
from pydantic import SecretStr

from mandaact_common.problems import ProblemError, Unauthorized
from mandaact_common.settings import ServiceSettings

log = logging.getLogger(__name__)

ALGORITHM: Final = "HS256"
"""The algorithm of the shared-secret mode (and of `mint_token`)."""

JWKS_ALGORITHMS: Final = ("RS256", "ES256")
"""The algorithms accepted from the identity provider in JWKS mode."""

LEEWAY_SECONDS: Final = 30
"""How far the issuer's clock may be from ours when `exp`, `nbf` and `iat` are checked."""

JWKS_FETCH_TIMEOUT_S: Final = 5.0
"""The longest one fetch of the JWKS may take (it runs in a worker thread, off the event loop)."""

JWKS_STALE_GRACE_S: Final = 3600.0
"""While the JWKS cannot be fetched, keys fetched this long after their set expired still verify."""

JWKS_RETRY_AFTER_S: Final = 5
"""What a 503 asks the caller to wait while the JWKS cannot be fetched."""


class SigningKeysUnavailable(ProblemError):
    """The identity provider's keys cannot be fetched, so no token can be checked right now."""

    status, slug, title = 503, "auth-unavailable", "Service unavailable"

    def __init__(self) -> None:
        super().__init__(
            "the identity provider's signing keys (JWKS) cannot be fetched; retry later",
            headers={"Retry-After": str(JWKS_RETRY_AFTER_S)},
        )


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: taken from the verified token's `tid`, `sub` and `roles` claims."""

    tenant_id: str
    user_id: str
    roles: frozenset[str] = field(default_factory=frozenset)

    @property
    def is_admin(self) -> bool:
        """Whether the token carries the admin role."""
        return "admin" in self.roles


def _plain(secret: str | SecretStr) -> str:
    return secret.get_secret_value() if isinstance(secret, SecretStr) else secret


def mint_token(
    secret: str | SecretStr,
    tenant_id: str,
    user_id: str,
    *,
    ttl_seconds: int = 24 * 3600,
    roles: list[str] | None = None,
    now: float | None = None,
    audience: str | None = None,
    issuer: str | None = None,
) -> str:
    """Sign an HS256 token for a tenant and user (dev tooling and tests)."""
    issued = int(now if now is not None else time.time())
    claims: dict[str, object] = {
        "sub": user_id,
        "tid": tenant_id,
        "iat": issued,
        "exp": issued + ttl_seconds,
    }
    if roles:
        claims["roles"] = roles
    if audience is not None:
        claims["aud"] = audience
    if issuer is not None:
        claims["iss"] = issuer
    return jwt.encode(claims, _plain(secret), algorithm=ALGORITHM)


_TENANT_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def _claim_id(claims: dict[str, Any], name: str) -> str:
    value = claims.get(name)
    if not isinstance(value, str) or not value.strip() or len(value) > 128:
        raise Unauthorized(f"the token has no usable '{name}' claim")
    # `<tenant>:<user>` keys (Kafka keys, per-user documents) must split one way only.
    if name == "tid" and not _TENANT_ID.fullmatch(value):
        raise Unauthorized("the token's 'tid' must be 1-64 letters, digits, '.', '_' or '-'")
    return value


def _principal(claims: dict[str, Any]) -> Principal:
    roles_claim = claims.get("roles") or []
    roles = (
        frozenset(r for r in roles_claim if isinstance(r, str))
        if isinstance(roles_claim, list)
        else frozenset()
    )
    return Principal(_claim_id(claims, "tid"), _claim_id(claims, "sub"), roles)


def _header(token: str, accepted: Sequence[str]) -> dict[str, Any]:
    """The token's unverified header, once its `alg` is one this service accepts."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError as exc:
        raise Unauthorized("the token is not a JWT: " + str(exc)) from exc
    algorithm = header.get("alg")
    if algorithm not in accepted:
        raise Unauthorized(
            f"the token is signed with {algorithm!r}; this service accepts {', '.join(accepted)}"
        )
    return header


def _decode(
    token: str,
    key: str | PyJWK,
    algorithm: str,
    audience: Sequence[str],
    issuer: str | None,
) -> dict[str, Any]:
    """The verified claims (signature, `exp`/`nbf`/`iat` with leeway, `aud` and `iss` if set)."""
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[algorithm],
            audience=list(audience) or None,
            issuer=issuer,
            leeway=LEEWAY_SECONDS,
            # No audience configured: `aud` is not checked (PyJWT would refuse any token with one).
            options={"require": ["exp", "sub", "tid"], "verify_aud": bool(audience)},
        )
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized("the token has expired") from exc
    except jwt.ImmatureSignatureError as exc:
        raise Unauthorized("the token is not valid yet ('iat' or 'nbf' is in the future)") from exc
    except jwt.InvalidAudienceError as exc:
        raise Unauthorized(
            f"the token's audience ('aud') is not {' or '.join(map(repr, audience))}"
        ) from exc
    except jwt.InvalidIssuerError as exc:
        raise Unauthorized(f"the token's issuer ('iss') is not {issuer!r}") from exc
    except jwt.MissingRequiredClaimError as exc:
        raise Unauthorized(f"the token lacks the '{exc.claim}' claim") from exc
    except jwt.InvalidSignatureError as exc:
        raise Unauthorized("the token's signature does not verify") from exc
    except jwt.InvalidTokenError as exc:
        raise Unauthorized("the token is not valid: " + str(exc)) from exc
    return claims


def verify_token(
    token: str,
    secret: str | SecretStr,
    *,
    audience: Sequence[str] = (),
    issuer: str | None = None,
) -> Principal:
    """Verify an HS256 token (signature, expiry, `aud`/`iss` if given): its principal, or 401."""
    _header(token, (ALGORITHM,))
    return _principal(_decode(token, _plain(secret), ALGORITHM, audience, issuer))


class JwksKeys:
    """The signing keys a JWKS URL publishes, by `kid`: fetched in a worker thread, cached for
    `cache_seconds`, fetched again on an unknown `kid` (at most once per `min_refresh_seconds`),
    and kept for `JWKS_STALE_GRACE_S` more while the URL cannot be fetched."""

    def __init__(
        self,
        url: str,
        *,
        cache_seconds: float = 300.0,
        min_refresh_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self._client = PyJWKClient(url, cache_jwk_set=False, timeout=JWKS_FETCH_TIMEOUT_S)
        self._cache_seconds = cache_seconds
        self._min_refresh_seconds = min_refresh_seconds
        self._clock = clock
        self._keys: dict[str, PyJWK] = {}
        self._fetched_at: float | None = None
        self._tried_at: float | None = None
        self._failing = False
        self._lock = threading.Lock()
        self.fetches = 0
        """How many times the JWKS was fetched (successfully or not)."""

    def _age(self, now: float) -> float:
        return float("inf") if self._fetched_at is None else now - self._fetched_at

    async def key(self, kid: str) -> PyJWK:
        """The key named `kid`: 401 if the JWKS has none, 503 if the JWKS cannot be fetched."""
        key = self._keys.get(kid)
        if key is not None and self._age(self._clock()) < self._cache_seconds:
            return key  # the common case: no I/O, no thread
        return await asyncio.to_thread(self._refreshed_key, kid)

    def _refreshed_key(self, kid: str) -> PyJWK:
        with self._lock:
            now = self._clock()
            if self._keys.get(kid) is None or self._age(now) >= self._cache_seconds:
                waited = None if self._tried_at is None else now - self._tried_at
                if waited is None or waited >= self._min_refresh_seconds:
                    self._fetch(now)
            now = self._clock()
            key = self._keys.get(kid)
            age = self._age(now)
            if key is not None and age < self._cache_seconds + JWKS_STALE_GRACE_S:
                return key
            if self._failing or age >= self._cache_seconds:
                # The kid may be a key the provider has just rotated in: not the caller's fault.
                raise SigningKeysUnavailable()
            raise Unauthorized(f"the token's signing key (kid {kid!r}) is not in the JWKS")

    def _fetch(self, now: float) -> None:
        self._tried_at = now
        self.fetches += 1
        try:
            keys = self._client.get_signing_keys()
        except (jwt.PyJWTError, ValueError, OSError) as exc:
            log.warning("cannot fetch the JWKS at %s: %s", self.url, exc)
            self._failing = True
            return
        self._failing = False
        self._keys = {key.key_id: key for key in keys if key.key_id}
        self._fetched_at = self._clock()


class Authenticator:
    """Turns an `Authorization` header into a verified principal, the way the settings say."""

    def __init__(
        self,
        *,
        secret: str | SecretStr | None = None,
        jwks: JwksKeys | None = None,
        audience: Sequence[str] = (),
        issuer: str | None = None,
    ) -> None:
        if (secret is None) == (jwks is None):
            raise ValueError("an Authenticator verifies with a secret or a JWKS, exactly one")
        self._secret = None if secret is None else _plain(secret)
        self._jwks = jwks
        self._audience = tuple(audience)
        self._issuer = issuer

    @classmethod
    def from_settings(cls, settings: ServiceSettings) -> Authenticator:
        """The authenticator of a service's settings (HS256 secret or JWKS, `aud`, `iss`)."""
        audience = [a.strip() for a in (settings.jwt_audience or "").split(",") if a.strip()]
        if settings.jwt_jwks_url is None:
            assert settings.jwt_secret is not None, "the settings resolve one or the other"
            return cls(secret=settings.jwt_secret, audience=audience, issuer=settings.jwt_issuer)
        if not audience and settings.env == "production":
            log.warning(
                "MANDAACT_JWT_AUDIENCE is not set: tokens the identity provider issued for"
                " other applications are accepted too"
            )
        jwks = JwksKeys(
            settings.jwt_jwks_url,
            cache_seconds=settings.jwt_jwks_cache_seconds,
            min_refresh_seconds=settings.jwt_jwks_min_refresh_seconds,
        )
        return cls(jwks=jwks, audience=audience, issuer=settings.jwt_issuer)

    async def verify(self, token: str) -> Principal:
        """The principal of a token: 401 problem if it does not verify, 503 if keys are out of
        reach."""
        if self._jwks is None:
            assert self._secret is not None
            return verify_token(token, self._secret, audience=self._audience, issuer=self._issuer)
        header = _header(token, JWKS_ALGORITHMS)
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise Unauthorized("the token has no 'kid' header naming its signing key")
        key = await self._jwks.key(kid)
        claims = _decode(token, key, header["alg"], self._audience, self._issuer)
        return _principal(claims)

    async def principal(self, authorization: str | None) -> Principal:
        """Parse an `Authorization: Bearer …` header value into a verified principal."""
        if not authorization:
            raise Unauthorized("missing Authorization header (expected 'Bearer <token>')")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("the Authorization header must be 'Bearer <token>'")
        return await self.verify(token.strip())
