"""Opaque page cursors shared by every list endpoint: a keyset position as URL-safe text.

A list answers a page and `next_cursor`, the position after its last item; the client passes it
back as `cursor`. The token is base64url (no padding) of a compact JSON array of the keyset
values, so it is opaque to clients and stable while items are added (no offsets). Pure.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Annotated, Final

from fastapi import Query

from mandaact_common.errors import InvalidInput

CURSOR_PATTERN: Final = "^[A-Za-z0-9_-]+$"
"""What a cursor looks like (URL-safe base64 without padding), for the OpenAPI document."""
CURSOR_MAX_LENGTH: Final = 512

Key = str | int

CursorQuery = Annotated[
    str | None,
    Query(
        max_length=CURSOR_MAX_LENGTH,
        pattern=CURSOR_PATTERN,
        description="`next_cursor` of the previous page (one this API did not return is"
        " refused with 422).",
    ),
]
"""The `cursor` query parameter of every paged list."""


def encode_cursor(*values: Key) -> str:
    """An opaque, URL-safe token of these keyset values."""
    raw = json.dumps(list(values), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(
    token: str, shape: tuple[type[Key], ...], field: str = "query.cursor"
) -> list[Key]:
    """The values of a token made by `encode_cursor` with these types, else InvalidInput."""
    try:
        values = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, binascii.Error):
        values = None
    if (
        not isinstance(values, list)
        or len(values) != len(shape)
        # bool is an int to isinstance, but never a keyset value here.
        or any(
            isinstance(v, bool) or not isinstance(v, t) for v, t in zip(values, shape, strict=True)
        )
    ):
        raise InvalidInput(field, "is not a cursor this API returned")
    return values
