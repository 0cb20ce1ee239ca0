"""FastAPI dependencies of the gamification routes: the caller and the use cases."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request

from gamification.service import GamificationService
from mandaact_common.domain.owner import Owner
from mandaact_common.http import AppState, CurrentPrincipal, app_state

ServiceFactory = Callable[[AppState], GamificationService]
"""Builds the use cases over the process's clients (bootstrap installs one on the app)."""


def current_owner(principal: CurrentPrincipal) -> Owner:
    """The tenant and user of the verified token (401 problem without one)."""
    return Owner(principal.tenant_id, principal.user_id)


def gamification_service(request: Request) -> GamificationService:
    """The use cases, built by the factory bootstrap installed on the app."""
    factory: ServiceFactory = request.app.state.gamification_factory
    return factory(app_state(request))


CurrentOwner = Annotated[Owner, Depends(current_owner)]
Gamification = Annotated[GamificationService, Depends(gamification_service)]
