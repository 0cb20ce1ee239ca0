"""FastAPI dependencies of the notifications routes: the caller and the use cases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from mandaact_common import http
from mandaact_common.http import CurrentOwner as CurrentOwner
from notifications.service import NotificationsService

ServiceFactory = http.ServiceFactory[NotificationsService]
Notifications = Annotated[NotificationsService, Depends(http.use_cases(NotificationsService))]
