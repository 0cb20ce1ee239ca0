"""FastAPI dependencies of the ops routes: the operator and the use cases."""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import Depends

from mandaact_common import http
from mandaact_common.domain.owner import Owner
from mandaact_common.http import CurrentPrincipal
from mandaact_common.openapi import answers
from mandaact_common.problems import ProblemError
from ops.service import OpsService

OPERATOR_ROLE: Final = "operator"
"""The platform role (not a tenant's) that may read every tenant's operational data."""


class NotAnOperator(ProblemError):
    """The token is valid but does not carry the platform role `operator` (403)."""

    status = 403
    slug = "forbidden"
    title = "Forbidden"


@answers(403)
def operator(principal: CurrentPrincipal) -> Owner:
    """The caller, when the token carries the role `operator` (403 problem otherwise)."""
    if OPERATOR_ROLE not in principal.roles:
        raise NotAnOperator("the ops API is for the platform's operators (role `operator`)")
    return Owner(tenant_id=principal.tenant_id, user_id=principal.user_id)


Operator = Annotated[Owner, Depends(operator)]
"""An operator: who did what goes into the audit log."""

ServiceFactory = http.ServiceFactory[OpsService]
Ops = Annotated[OpsService, Depends(http.use_cases(OpsService))]
