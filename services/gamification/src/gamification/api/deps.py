"""FastAPI dependencies of the gamification routes: the caller and the use cases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from gamification.service import GamificationService
from mandaact_common import http
from mandaact_common.http import CurrentOwner as CurrentOwner

ServiceFactory = http.ServiceFactory[GamificationService]
"""Builds the use cases over the process's clients (bootstrap installs one on the app)."""
Gamification = Annotated[GamificationService, Depends(http.use_cases(GamificationService))]
