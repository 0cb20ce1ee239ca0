"""A deletion request (SPEC §9): which services have erased the user (or tenant) so far.

The record outlives the erasure, so `GET /v1/me/deletion` can still answer after everything
else is gone; it is keyed by the keyed hash of the ids (`keys.deletion_id`) and holds nothing
else that could tell whose it was.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

from mandaact_contracts.events import ErasureScope
from mandaact_contracts.topics import ERASING_SERVICES

DeletionStatus = Literal["pending", "complete"]


@dataclass(frozen=True, slots=True)
class Deletion:
    """One erasure of a user or a tenant, and each service's answer."""

    id: str
    scope: ErasureScope
    requested_at: datetime
    services: Mapping[str, datetime | None]
    completed_at: datetime | None = None

    @classmethod
    def requested(cls, deletion_id: str, scope: ErasureScope, at: datetime) -> Deletion:
        """A new request: no service has answered yet."""
        services: dict[str, datetime | None] = dict.fromkeys(ERASING_SERVICES)
        return cls(id=deletion_id, scope=scope, requested_at=at, services=services)

    @property
    def status(self) -> DeletionStatus:
        """`complete` once every service that holds users' data has answered `user.erased`."""
        return "complete" if self.completed_at is not None else "pending"

    def erased_by(self, service: str, at: datetime) -> Deletion:
        """The record after `service` answered; the first answer of a service counts. An
        answer from a service not in the list is kept too (a newer service of the stack)."""
        if self.services.get(service) is not None:
            return self
        services = {**self.services, service: at}
        done = all(when is not None for when in services.values())
        completed = max(w for w in services.values() if w is not None) if done else None
        return replace(self, services=services, completed_at=completed)
