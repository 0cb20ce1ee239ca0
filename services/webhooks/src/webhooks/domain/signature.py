"""The Standard Webhooks signature (https://www.standardwebhooks.com/). Pure."""

from __future__ import annotations

import base64
import hashlib
import hmac

from webhooks.domain.model import SECRET_PREFIX


def signing_key(secret: str) -> bytes:
    """The key: the base64-decoded part of the secret after `whsec_`."""
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def signature(secret: str, msg_id: str, timestamp: int, body: str) -> str:
    """`v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, the `webhook-signature` value."""
    signed = f"{msg_id}.{timestamp}.{body}".encode()
    digest = hmac.new(signing_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(secret: str, msg_id: str, timestamp: int, body: str) -> dict[str, str]:
    """The headers of a delivery: its id, the unix time of this try, the signature."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secret, msg_id, timestamp, body),
        "content-type": "application/json",
    }
