"""Whose data it is: a tenant and a user, always from the verified token, never from input."""

from __future__ import annotations

from dataclasses import dataclass

from mandaact_common.keys import owner_key


@dataclass(frozen=True, slots=True)
class Owner:
    """Whose data it is: always taken from the verified token, never from input."""

    tenant_id: str
    user_id: str

    @property
    def key(self) -> str:
        """The owner key documents of this user are filed under."""
        return owner_key(self.tenant_id, self.user_id)
