"""Request types the APIs share, each validated exactly as its OpenAPI schema says.

pydantic's lax mode takes more than a document promises ("1" for 1, a Unix time for a date) and
its strict mode less (1.0 is a JSON Schema integer): these types take what the schema allows.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any, Final

from pydantic import BeforeValidator, Field, WithJsonSchema
from pydantic.config import JsonDict

DATE_PATTERN: Final = (
    r"^([0-9]{3}[1-9]|[0-9]{2}[1-9][0-9]|[0-9][1-9][0-9]{2}|[1-9][0-9]{3})"
    r"-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"
)
"""The shape of a `YYYY-MM-DD` date from year 0001 (whether the day exists is `format: date`)."""
_DATE_TEXT: Final = re.compile(DATE_PATTERN)


def json_integer(value: Any) -> Any:
    """Take a JSON integer (1, or 1.0: a number without a fraction); refuse text and booleans."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be an integer")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("must be an integer (no fraction)")
        return int(value)
    return value


def date_text(value: Any) -> Any:
    """Take a date only as `YYYY-MM-DD` text (no Unix time, no time of day)."""
    if isinstance(value, date):
        return value
    if not isinstance(value, str) or not _DATE_TEXT.fullmatch(value):
        raise ValueError("must be a date as YYYY-MM-DD")
    return value


JsonInt = Annotated[int, BeforeValidator(json_integer)]
"""An integer as JSON Schema means it (`1` and `1.0`, never `"1"` or `true`).

Bounds go before the validator, so the document shows them as `minimum`/`maximum`:
`Annotated[int, Field(ge=1, le=8), BeforeValidator(json_integer)]`.
"""


def _not_nullable(schema: JsonDict) -> None:
    schema.pop("default", None)
    branches = schema.get("anyOf")
    if isinstance(branches, list):
        kept = [b for b in branches if b != {"type": "null"}]
        if len(kept) == 1 and isinstance(kept[0], dict):
            del schema["anyOf"]
            schema.update({k: v for k, v in kept[0].items() if k not in schema})
        else:
            schema["anyOf"] = kept


def left_out() -> Any:
    """The default of an `X | None` field that may be left out but not sent as null.

    The document shows it as `X` with no default; the model refuses an explicit null with a
    validator, which reports the field by its plain name (a union with `SkipJsonSchema[None]`
    would name the union's members instead).
    """
    return Field(default=None, json_schema_extra=_not_nullable)


def date_schema(pattern: str = DATE_PATTERN, description: str | None = None) -> WithJsonSchema:
    """The JSON Schema of a date as text: `format: date` and the pattern of the dates taken."""
    schema: dict[str, Any] = {"type": "string", "format": "date", "pattern": pattern}
    if description:
        schema["description"] = description
    return WithJsonSchema(schema)


IsoDate = Annotated[date, BeforeValidator(date_text), date_schema()]
"""A calendar date sent as `YYYY-MM-DD` text (`format: date`)."""
