"""FastAPI dependencies of the checkins routes: the caller and the use cases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from checkins.service import CheckinsService
from mandaact_common import http
from mandaact_common.http import CurrentOwner as CurrentOwner

ServiceFactory = http.ServiceFactory[CheckinsService]
Checkins = Annotated[CheckinsService, Depends(http.use_cases(CheckinsService))]
