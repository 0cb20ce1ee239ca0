"""Webhooks admin HTTP routes (thin): translate the request, call the use case, present."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Response

from mandaact_common.openapi import problems
from mandaact_common.paging import CursorQuery
from webhooks.api.deps import AdminTenant, Webhooks
from webhooks.api.schemas import (
    DeliveryPage,
    DeliveryPublic,
    EndpointCreate,
    EndpointCreated,
    EndpointPage,
    EndpointPublic,
    EndpointUpdate,
    cursor_of,
)
from webhooks.service import EndpointChange

router = APIRouter(prefix="/v1/admin/webhooks", tags=["webhooks"])

EndpointId = Annotated[uuid.UUID, Path(description="The endpoint's id (a UUID).")]
Limit = Annotated[int, Query(ge=1, le=200, description="Page size.")]

URL_ERRORS = problems(
    422,
    described={
        422: "Invalid input: a URL that is not `https`, or resolves to a loopback, private,"
        " link-local or multicast address, or unknown event types (`errors` names the field).",
    },
)
NOT_FOUND = problems(404, described={404: "No such endpoint (or delivery) in this tenant."})


@router.post("", status_code=201, responses={**URL_ERRORS})
async def create_webhook(
    body: EndpointCreate, tenant: AdminTenant, webhooks: Webhooks
) -> EndpointCreated:
    """Subscribe an endpoint to event types; the answer shows its signing secret, once."""
    created = await webhooks.create(tenant, body.url, body.event_types, body.description)
    return EndpointCreated.of(created)


@router.get("", responses=problems(422))
async def list_webhooks(
    tenant: AdminTenant, webhooks: Webhooks, limit: Limit = 50, cursor: CursorQuery = None
) -> EndpointPage:
    """The tenant's endpoints, oldest first, a page at a time."""
    after = cursor_of(cursor) if cursor is not None else None
    return EndpointPage.from_domain(await webhooks.list(tenant, limit=limit, after=after))


@router.get("/{endpoint_id}", responses=NOT_FOUND)
async def get_webhook(
    endpoint_id: EndpointId, tenant: AdminTenant, webhooks: Webhooks
) -> EndpointPublic:
    """One endpoint (without its secret)."""
    return EndpointPublic.from_domain(await webhooks.get(tenant, str(endpoint_id)))


@router.patch("/{endpoint_id}", responses={**NOT_FOUND, **URL_ERRORS})
async def update_webhook(
    endpoint_id: EndpointId, body: EndpointUpdate, tenant: AdminTenant, webhooks: Webhooks
) -> EndpointPublic:
    """Change an endpoint's URL, event types, description, or enable or disable it."""
    change = EndpointChange(
        url=body.url,
        event_types=body.event_types,
        enabled=body.enabled,
        description=body.description,
    )
    return EndpointPublic.from_domain(await webhooks.update(tenant, str(endpoint_id), change))


@router.delete("/{endpoint_id}", status_code=204, response_class=Response, responses=NOT_FOUND)
async def delete_webhook(
    endpoint_id: EndpointId, tenant: AdminTenant, webhooks: Webhooks
) -> Response:
    """Remove an endpoint and its delivery log."""
    await webhooks.delete(tenant, str(endpoint_id))
    return Response(status_code=204)


@router.get("/{endpoint_id}/deliveries", responses={**NOT_FOUND, **problems(422)})
async def list_deliveries(
    endpoint_id: EndpointId,
    tenant: AdminTenant,
    webhooks: Webhooks,
    status: Annotated[
        Literal["pending", "succeeded", "failed"] | None,
        Query(description="Only deliveries in this state."),
    ] = None,
    limit: Limit = 50,
    cursor: CursorQuery = None,
) -> DeliveryPage:
    """The endpoint's deliveries, newest first, with their attempts."""
    after = cursor_of(cursor) if cursor is not None else None
    page = await webhooks.deliveries(
        tenant, str(endpoint_id), status=status, limit=limit, after=after
    )
    return DeliveryPage.from_domain(page)


DeliveryId = Annotated[str, Path(max_length=100, description="The delivery's id.")]


@router.post(
    "/{endpoint_id}/deliveries/{delivery_id}/retry",
    status_code=202,
    responses={
        **NOT_FOUND,
        **problems(409, described={409: "The delivery already succeeded."}),
    },
)
async def retry_delivery(
    endpoint_id: EndpointId, delivery_id: DeliveryId, tenant: AdminTenant, webhooks: Webhooks
) -> DeliveryPublic:
    """Send a pending or failed delivery again now (a failed one gets one more try)."""
    return DeliveryPublic.from_domain(await webhooks.retry(tenant, str(endpoint_id), delivery_id))


@router.post("/{endpoint_id}/test", status_code=202, responses=NOT_FOUND)
async def test_webhook(
    endpoint_id: EndpointId, tenant: AdminTenant, webhooks: Webhooks
) -> DeliveryPublic:
    """Queue a test event (`mandaact.webhook.test.v1`) to the endpoint; see its delivery."""
    return DeliveryPublic.from_domain(await webhooks.ping(tenant, str(endpoint_id)))
