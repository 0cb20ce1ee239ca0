"""JWT auth: the tenant and user come only from a verified HS256 token."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

import jwt

from mandaact_common.problems import Unauthorized

ALGORITHM = "HS256"


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


def mint_token(
    secret: str,
    tenant_id: str,
    user_id: str,
    *,
    ttl_seconds: int = 24 * 3600,
    roles: list[str] | None = None,
    now: float | None = None,
) -> str:
    """Sign a token for a tenant and user (dev tooling and tests)."""
    issued = int(now if now is not None else time.time())
    claims: dict[str, object] = {
        "sub": user_id,
        "tid": tenant_id,
        "iat": issued,
        "exp": issued + ttl_seconds,
    }
    if roles:
        claims["roles"] = roles
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


_TENANT_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def _claim_id(claims: dict[str, object], name: str) -> str:
    value = claims.get(name)
    if not isinstance(value, str) or not value.strip() or len(value) > 128:
        raise Unauthorized(f"the token has no usable '{name}' claim")
    # `<tenant>:<user>` keys (Kafka keys, per-user documents) must split one way only.
    if name == "tid" and not _TENANT_ID.fullmatch(value):
        raise Unauthorized("the token's 'tid' must be 1-64 letters, digits, '.', '_' or '-'")
    return value


def verify_token(token: str, secret: str) -> Principal:
    """Verify signature and expiry and return the principal, or raise Unauthorized."""
    try:
        claims = jwt.decode(
            token, secret, algorithms=[ALGORITHM], options={"require": ["exp", "sub", "tid"]}
        )
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized("the token has expired") from exc
    except jwt.MissingRequiredClaimError as exc:
        raise Unauthorized(f"the token lacks the '{exc.claim}' claim") from exc
    except jwt.InvalidTokenError as exc:
        raise Unauthorized("the token is not valid: " + str(exc)) from exc
    roles_claim = claims.get("roles") or []
    roles = (
        frozenset(r for r in roles_claim if isinstance(r, str))
        if isinstance(roles_claim, list)
        else frozenset()
    )
    return Principal(_claim_id(claims, "tid"), _claim_id(claims, "sub"), roles)


def principal_from_authorization(header: str | None, secret: str) -> Principal:
    """Parse an `Authorization: Bearer …` header value into a verified principal."""
    if not header:
        raise Unauthorized("missing Authorization header (expected 'Bearer <token>')")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("the Authorization header must be 'Bearer <token>'")
    return verify_token(token.strip(), secret)
