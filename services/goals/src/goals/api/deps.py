"""FastAPI dependencies of the goals routes: the caller, the use cases, the If-Match header."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header

from goals.domain.model import IfMatch
from goals.service import GoalsService
from mandaact_common import http
from mandaact_common.http import CurrentOwner as CurrentOwner
from mandaact_common.openapi import answers

ServiceFactory = http.ServiceFactory[GoalsService]


def parse_if_match(value: str) -> IfMatch:
    """Read an If-Match value: `*`, or entity tags such as `"3"`, `W/"3"`, `"2", "3"`.

    A tag that is not one of our version tags can never match, so it is kept out and the
    request fails its precondition (412) instead of being refused as malformed.
    """
    if value.strip() == "*":
        return IfMatch(any_version=True)
    versions: set[int] = set()
    for part in value.split(","):
        tag = part.strip().removeprefix("W/").strip('"')
        if tag.isascii() and tag.isdigit() and len(tag) <= 18:
            versions.add(int(tag))
    return IfMatch(versions=frozenset(versions))


@answers(412)
def if_match(
    header: Annotated[
        str | None,
        Header(
            alias="If-Match",
            max_length=1000,
            description='Only change if the current version matches, e.g. "3" (else 412).',
        ),
    ] = None,
) -> IfMatch | None:
    """The If-Match precondition, or None (unconditional) when the header is absent."""
    return None if header is None else parse_if_match(header)


def etag(version: int) -> str:
    """The ETag of a version: the version number, quoted."""
    return f'"{version}"'


Goals = Annotated[GoalsService, Depends(http.use_cases(GoalsService))]
IfMatchHeader = Annotated[IfMatch | None, Depends(if_match)]
