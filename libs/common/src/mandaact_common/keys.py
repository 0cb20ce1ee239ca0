"""The one scheme of composite document keys: `<tenant>:<user>` and parts after it.

Every part is percent-encoded, so no character inside a part (`:` and `|` included) can make two
different part lists give one key, and a key splits back into its parts one way only.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from urllib.parse import quote, unquote

OWNER_SEPARATOR = ":"
PART_SEPARATOR = "|"


_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]*")
"""What `quote(…, safe="")` leaves as it is: a part made only of these is its own encoding."""


def _part(value: str) -> str:
    if _UNRESERVED.fullmatch(value):
        return value
    return quote(value, safe="")


def owner_key(tenant_id: str, user_id: str) -> str:
    """The key of one user of one tenant (tenant first, as Kafka's partition keys)."""
    return f"{_part(tenant_id)}{OWNER_SEPARATOR}{_part(user_id)}"


def sub_key(owner: str, *parts: str) -> str:
    """The key of something of a user: the owner key, then each part (e.g. an ISO week)."""
    return PART_SEPARATOR.join([owner, *(_part(p) for p in parts)])


def compose_key(*parts: str) -> str:
    """The key of something identified by parts alone (e.g. a tenant and a grid id)."""
    return PART_SEPARATOR.join(_part(p) for p in parts)


def owner_of(key: str) -> str:
    """The owner key a `sub_key` (or an owner key) starts with."""
    return key.split(PART_SEPARATOR, 1)[0]


def parts_of(key: str) -> list[str]:
    """The decoded parts after the owner key of a `sub_key`."""
    return [unquote(p) for p in key.split(PART_SEPARATOR)[1:]]


def deletion_id(key: bytes, tenant_id: str, user_id: str | None = None) -> str:
    """The keyed hash (HMAC-SHA256) naming an erased user (`u:…`) or tenant (`t:…`).

    Without the key nobody can tell whose it is; with the key a service can tell whether an id
    it is given was erased. It is what tombstones and deletion records keep instead of the ids.
    """
    if user_id is None:
        return "t:" + hmac.new(key, f"t\x1f{tenant_id}".encode(), hashlib.sha256).hexdigest()
    message = f"u\x1f{tenant_id}\x1f{user_id}".encode()
    return "u:" + hmac.new(key, message, hashlib.sha256).hexdigest()


def subject_hashes(key: bytes, tenant_id: str, user_id: str | None = None) -> list[str]:
    """The deletion ids whose tombstone stops a user's data (theirs, then their tenant's), or a
    tenant's (`user_id` None): what an erased-subject check looks up."""
    tenant = deletion_id(key, tenant_id)
    return [tenant] if user_id is None else [deletion_id(key, tenant_id, user_id), tenant]
