"""Goals HTTP routes (thin): translate the request into a command, call the use case, present."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import JSONResponse

from goals.api.deps import CurrentOwner, Goals, IfMatchHeader, etag
from goals.api.schemas import (
    ActionPut,
    DeletionPublic,
    MandalartCreate,
    MandalartDetail,
    MandalartPage,
    MandalartPublic,
    MandalartUpdate,
    PausesPublic,
    PausesPut,
    SubGoalPut,
    UserSettingsPublic,
    UserSettingsUpdate,
)
from goals.domain.errors import NotFound
from goals.domain.model import Mandalart, PageCursor, UserSettings
from goals.service import GoalsService
from mandaact_common.domain.owner import Owner
from mandaact_common.errors import Conflict
from mandaact_common.http import AdminOwner, starts_erasure
from mandaact_common.idempotency import (
    IdempotencyKeyHeader,
    IdempotentRequest,
    StoredResponse,
)
from mandaact_common.openapi import problems
from mandaact_common.paging import CursorQuery

CREATE_OPERATION = "POST /v1/mandalarts"

# 401, 422, 503 and (with If-Match) 412 follow from what a route depends on: see
# mandaact_common.openapi. A route names only the outcomes of its own use case.
_DESCRIBED = {
    404: "No such grid (or part of it) for this user.",
    409: "Another request changed the grid at the same moment; retry.",
}
NOT_FOUND = problems(404, described=_DESCRIBED)
CHANGE_ERRORS = problems(404, 409, described=_DESCRIBED)
SETTINGS_ERRORS = problems(409, described={409: "Another request changed the settings; retry."})

router = APIRouter(prefix="/v1", tags=["goals"])


MandalartId = Annotated[uuid.UUID, Path(description="The grid's id (a UUID).")]
SubGoalPosition = Annotated[int, Path(ge=1, le=8, description="Sub-goal position 1–8.")]
ActionPosition = Annotated[int, Path(ge=1, le=8, description="Action position 1–8.")]


def _settings(response: Response, settings: UserSettings) -> UserSettingsPublic:
    response.headers["ETag"] = etag(settings.version)
    return UserSettingsPublic.from_domain(settings)


def _detail(response: Response, grid: Mandalart) -> MandalartDetail:
    response.headers["ETag"] = etag(grid.version)
    return MandalartDetail.from_domain(grid)


def present_created(grid: Mandalart) -> StoredResponse:
    """The 201 answer to a create, as it is stored for an idempotent replay."""
    return StoredResponse(
        status_code=201,
        body=MandalartDetail.from_domain(grid).model_dump(mode="json"),
        headers={"Location": f"/v1/mandalarts/{grid.id}", "ETag": etag(grid.version)},
    )


# --- settings ----------------------------------------------------------------------------------


@router.get("/me")
async def get_me(owner: CurrentOwner, goals: Goals, response: Response) -> UserSettingsPublic:
    """The caller's settings (Asia/Seoul and ko until first saved)."""
    return _settings(response, await goals.get_settings(owner))


@router.put("/me", responses=SETTINGS_ERRORS)
async def put_me(
    body: UserSettingsUpdate,
    owner: CurrentOwner,
    goals: Goals,
    if_match: IfMatchHeader,
    response: Response,
) -> UserSettingsPublic:
    """Change the caller's settings (fields left out keep their value); emits user.changed."""
    return _settings(response, await goals.change_settings(owner, body.to_command(), if_match))


@router.get("/me/pauses")
async def get_pauses(owner: CurrentOwner, goals: Goals, response: Response) -> PausesPublic:
    """The caller's vacation pauses (local dates), oldest first."""
    settings = await goals.get_settings(owner)
    response.headers["ETag"] = etag(settings.version)
    return PausesPublic.from_domain(settings)


@router.put("/me/pauses", responses=SETTINGS_ERRORS)
async def put_pauses(
    body: PausesPut,
    owner: CurrentOwner,
    goals: Goals,
    if_match: IfMatchHeader,
    response: Response,
) -> PausesPublic:
    """Replace the caller's pauses: each at most 30 days, no overlaps, at most 60 days a year,
    none before yesterday. Nothing is due on a paused date. Emits user.changed on a change."""
    settings = await goals.set_pauses(owner, body.to_domain(), if_match)
    response.headers["ETag"] = etag(settings.version)
    return PausesPublic.from_domain(settings)


# --- data lifecycle (SPEC §9) -------------------------------------------------------------------

NO_DELETION = problems(404, described={404: "No deletion was asked for."})


@router.delete("/me", status_code=202, response_model=DeletionPublic)
@starts_erasure
async def delete_me(owner: CurrentOwner, goals: Goals, response: Response) -> DeletionPublic:
    """Forget the caller: every service erases what it holds about them (`user.deleted`), and
    from now on their writes are refused (410). Asking again answers the same deletion."""
    response.headers["Location"] = "/v1/me/deletion"
    return DeletionPublic.from_domain(await goals.delete_me(owner))


@router.get("/me/deletion", responses=NO_DELETION)
async def get_my_deletion(owner: CurrentOwner, goals: Goals) -> DeletionPublic:
    """Where the caller's erasure stands: each service's answer, `complete` once all erased."""
    return DeletionPublic.from_domain(await goals.deletion_of(owner))


@router.delete("/admin/tenant", status_code=202, response_model=DeletionPublic)
@starts_erasure
async def delete_tenant(admin: AdminOwner, goals: Goals, response: Response) -> DeletionPublic:
    """Forget the caller's whole tenant (role `admin`): every service erases every document of
    it (`tenant.deleted`); from now on the tenant's writes are refused (410)."""
    response.headers["Location"] = "/v1/admin/tenant/deletion"
    return DeletionPublic.from_domain(await goals.delete_tenant(admin))


@router.get("/admin/tenant/deletion", responses=NO_DELETION)
async def get_tenant_deletion(admin: AdminOwner, goals: Goals) -> DeletionPublic:
    """Where the tenant's erasure stands (role `admin`)."""
    return DeletionPublic.from_domain(await goals.deletion_of(admin, tenant=True))


# --- grids -------------------------------------------------------------------------------------


@router.post(
    "/mandalarts",
    status_code=201,
    response_model=MandalartDetail,
    responses=problems(
        409,
        described={
            409: "The Idempotency-Key was used for a grid that has since been deleted: a replay"
            " would point at nothing, so send a new key to create another grid.",
        },
    ),
)
async def create_mandalart(
    body: MandalartCreate,
    request: Request,
    owner: CurrentOwner,
    goals: Goals,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """Create a whole or partial grid; a repeated Idempotency-Key replays the first answer."""
    draft = body.to_draft()
    if idempotency_key is None:
        stored = present_created(await goals.create_mandalart(owner, draft))
    else:
        request_id = IdempotentRequest.of(
            owner, CREATE_OPERATION, idempotency_key, await request.body()
        )
        stored = await goals.create_mandalart_once(owner, draft, request_id, present_created)
        await _refuse_replay_of_deleted(goals, owner, stored)
    return JSONResponse(stored.body, status_code=stored.status_code, headers=dict(stored.headers))


async def _refuse_replay_of_deleted(
    goals: GoalsService, owner: Owner, stored: StoredResponse
) -> None:
    """A replayed 201 must not send the caller to a grid that was deleted since (its Location
    would answer 404): that replay is refused with 409 instead."""
    try:
        await goals.get_mandalart(owner, str(stored.body["id"]))
    except NotFound:
        raise Conflict(
            "the grid created with this Idempotency-Key has since been deleted;"
            " send a new key to create another"
        ) from None


@router.get("/mandalarts")
async def list_mandalarts(
    owner: CurrentOwner,
    goals: Goals,
    limit: Annotated[int, Query(ge=1, le=100, description="Page size.")] = 20,
    cursor: CursorQuery = None,
    active: Annotated[bool | None, Query(description="Only active (or inactive) grids.")] = None,
) -> MandalartPage:
    """The caller's grids, newest first, a page at a time."""
    after = PageCursor.decode(cursor, "query.cursor") if cursor is not None else None
    page = await goals.list_mandalarts(owner, limit=limit, cursor=after, active=active)
    return MandalartPage(
        items=[MandalartPublic.from_domain(grid) for grid in page.items],
        next_cursor=page.next_cursor.encode() if page.next_cursor else None,
    )


@router.get("/mandalarts/{id}", responses=NOT_FOUND)
async def get_mandalart(
    id: MandalartId, owner: CurrentOwner, goals: Goals, response: Response
) -> MandalartDetail:
    """One grid, nested and as a 9×9 matrix."""
    return _detail(response, await goals.get_mandalart(owner, str(id)))


@router.patch("/mandalarts/{id}", responses=CHANGE_ERRORS)
async def patch_mandalart(
    id: MandalartId,
    body: MandalartUpdate,
    owner: CurrentOwner,
    goals: Goals,
    if_match: IfMatchHeader,
    response: Response,
) -> MandalartDetail:
    """Change the title, description or active flag."""
    grid = await goals.edit_mandalart(owner, str(id), body.to_command(), if_match)
    return _detail(response, grid)


@router.put("/mandalarts/{id}/sub-goals/{pos}", responses=CHANGE_ERRORS)
async def put_sub_goal(
    id: MandalartId,
    pos: SubGoalPosition,
    body: SubGoalPut,
    owner: CurrentOwner,
    goals: Goals,
    if_match: IfMatchHeader,
    response: Response,
) -> MandalartDetail:
    """Create or replace a sub-goal; actions keep their ids by position."""
    grid = await goals.put_sub_goal(owner, str(id), body.to_draft(pos), if_match)
    return _detail(response, grid)


@router.put("/mandalarts/{id}/sub-goals/{pos}/actions/{apos}", responses=CHANGE_ERRORS)
async def put_action(
    id: MandalartId,
    pos: SubGoalPosition,
    apos: ActionPosition,
    body: ActionPut,
    owner: CurrentOwner,
    goals: Goals,
    if_match: IfMatchHeader,
    response: Response,
) -> MandalartDetail:
    """Create or replace an action of an existing sub-goal; it keeps its id."""
    grid = await goals.put_action(owner, str(id), pos, body.to_draft(apos), if_match)
    return _detail(response, grid)


@router.delete("/mandalarts/{id}/sub-goals/{pos}/actions/{apos}", responses=CHANGE_ERRORS)
async def delete_action(
    id: MandalartId,
    pos: SubGoalPosition,
    apos: ActionPosition,
    owner: CurrentOwner,
    goals: Goals,
    if_match: IfMatchHeader,
    response: Response,
) -> MandalartDetail:
    """Remove an action; answers the grid as it is now."""
    grid = await goals.remove_action(owner, str(id), pos, apos, if_match)
    return _detail(response, grid)


@router.delete(
    "/mandalarts/{id}",
    status_code=204,
    response_class=Response,
    responses=CHANGE_ERRORS,
)
async def delete_mandalart(
    id: MandalartId, owner: CurrentOwner, goals: Goals, if_match: IfMatchHeader
) -> Response:
    """Delete (archive) a grid: it leaves lists, reads answer 404, goal.changed says deleted."""
    await goals.delete_mandalart(owner, str(id), if_match)
    return Response(status_code=204)
