"""FastAPI dependencies of the webhooks routes: the tenant admin and the use cases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from mandaact_common import http
from mandaact_common.http import CurrentPrincipal, NotAnAdmin
from mandaact_common.openapi import answers
from webhooks.service import WebhooksService


@answers(403)
def admin_tenant(principal: CurrentPrincipal) -> str:
    """The tenant of a caller with the `admin` role (403 problem otherwise)."""
    if not principal.is_admin:
        raise NotAnAdmin("webhook endpoints are managed by the tenant's admins (role `admin`)")
    return principal.tenant_id


AdminTenant = Annotated[str, Depends(admin_tenant)]
"""The tenant whose endpoints a request manages: always the verified token's."""

ServiceFactory = http.ServiceFactory[WebhooksService]
Webhooks = Annotated[WebhooksService, Depends(http.use_cases(WebhooksService))]
