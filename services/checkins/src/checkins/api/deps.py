"""FastAPI dependencies of the checkins routes: the caller and the use cases."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request

from checkins.domain.model import Owner
from checkins.service import CheckinsService
from mandaact_common.http import AppState, CurrentPrincipal, app_state

ServiceFactory = Callable[[AppState], CheckinsService]


def current_owner(principal: CurrentPrincipal) -> Owner:
    """The tenant and user of the verified token (401 problem without one)."""
    return Owner(tenant_id=principal.tenant_id, user_id=principal.user_id)


def checkins_service(request: Request) -> CheckinsService:
    """The use cases, built by the factory bootstrap installed on the app."""
    factory: ServiceFactory = request.app.state.checkins_factory
    return factory(app_state(request))


CurrentOwner = Annotated[Owner, Depends(current_owner)]
Checkins = Annotated[CheckinsService, Depends(checkins_service)]
