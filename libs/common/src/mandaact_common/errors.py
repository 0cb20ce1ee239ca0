"""The one error base every service's domain and use cases raise; the HTTP edge maps it once.

Pure: no HTTP here. `mandaact_common.problems.problem_of` turns each kind into its RFC 9457
problem, and `create_app` installs that mapping for every service, so a service only chooses
the kind (and a `code` for rules) when it raises.
"""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error a service raises on purpose; `detail` is said to the caller."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class InvalidInput(DomainError):
    """Well-formed input that is still wrong; names the field at fault (422 validation)."""

    def __init__(self, field: str, message: str, detail: str | None = None) -> None:
        super().__init__(detail if detail is not None else f"{field}: {message}")
        self.field = field
        self.message = message


class NotFound(DomainError):
    """The thing does not exist for this tenant and user (404)."""


class RuleBroken(DomainError):
    """Well-formed input that a domain rule forbids; `code` says which rule (422)."""

    code = "rule-broken"
    title = "Unprocessable content"

    def __init__(
        self,
        detail: str,
        field: str | None = None,
        message: str | None = None,
        *,
        facts: dict[str, object] | None = None,
    ) -> None:
        super().__init__(detail)
        self.field = field
        self.message = message if message is not None else detail
        # Machine-readable facts behind the refusal (e.g. `limit`, `count`): problem members.
        self.facts = facts or {}


class Conflict(DomainError):
    """The request conflicts with the current state, e.g. a concurrent change (409)."""


class PreconditionFailed(DomainError):
    """A conditional request (If-Match) named a version other than the current one (412)."""

    def __init__(self, current_version: int) -> None:
        super().__init__(f"the current version is {current_version}; re-read and retry")
        self.current_version = current_version


class LimitReached(DomainError):
    """A server-enforced limit was reached; `code` says which, `limit` how much is allowed (429)."""

    code = "too-many-requests"

    def __init__(self, detail: str, limit: int) -> None:
        super().__init__(detail)
        self.limit = limit
