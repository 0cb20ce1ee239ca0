"""The shared page cursor codec."""

from __future__ import annotations

import re

import pytest

from mandaact_common.errors import InvalidInput
from mandaact_common.paging import CURSOR_PATTERN, decode_cursor, encode_cursor


def test_a_cursor_round_trips_and_is_url_safe() -> None:
    token = encode_cursor("2026-11-20", 1763600000000, "a/b+c")
    assert re.fullmatch(CURSOR_PATTERN, token)
    assert decode_cursor(token, (str, int, str)) == ["2026-11-20", 1763600000000, "a/b+c"]


@pytest.mark.parametrize(
    "token",
    ["!!", "bm90LWEtY3Vyc29y", encode_cursor(1, "x"), encode_cursor("x"), encode_cursor("x", 1, 2)],
)
def test_a_token_of_another_shape_is_invalid_input(token: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        decode_cursor(token, (str, int), field="query.cursor")
    assert refused.value.field == "query.cursor"


def test_a_boolean_is_not_an_integer_position() -> None:
    with pytest.raises(InvalidInput):
        decode_cursor(encode_cursor(True, "x"), (int, str))
