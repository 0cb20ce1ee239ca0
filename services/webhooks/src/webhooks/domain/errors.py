"""The webhooks service's kinds of the shared domain errors."""

from __future__ import annotations

from mandaact_common.errors import Conflict, InvalidInput, NotFound, RuleBroken


class UnknownEndpoint(NotFound):
    """No such endpoint in the caller's tenant (404)."""

    def __init__(self) -> None:
        super().__init__("no such webhook endpoint in this tenant")


class UnknownDelivery(NotFound):
    """No such delivery of that endpoint (404)."""

    def __init__(self) -> None:
        super().__init__("no such delivery of this webhook endpoint")


class UrlRefused(InvalidInput):
    """The URL is not one deliveries may go to (422 on `url`)."""

    def __init__(self, reason: str) -> None:
        super().__init__("url", reason, f"the webhook URL is refused: {reason}")
        self.reason = reason


class TooManyEndpoints(RuleBroken):
    """A tenant has as many endpoints as allowed (422)."""

    code = "too-many-endpoints"

    def __init__(self, limit: int) -> None:
        super().__init__(f"a tenant may register at most {limit} webhook endpoints")


class AlreadySucceeded(Conflict):
    """A delivery that succeeded is not sent again (409)."""

    def __init__(self) -> None:
        super().__init__("this delivery already succeeded; send a test ping instead")
