"""The internal API of the tenant service (and other services): a service token is required."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel
from soc_shared.errors import NotFound

from soc_auth.database import SessionDep
from soc_auth.deps import AppState, PageDep, ServiceCaller, TenantServiceCaller
from soc_auth.internal import service
from soc_auth.internal.models import (
    CompanyUsersResult,
    CompanyUsersStatus,
    InternalUserCreate,
    InternalUserPatch,
    InternalUserResult,
)
from soc_auth.token import service as tokens
from soc_auth.user import service as users
from soc_auth.user.models import UserList, UserRead
from soc_auth.user.service import UserFilter

router = APIRouter(prefix="/auth/internal", tags=["internal"])


class Revocation(BaseModel):
    user_id: str
    not_before_ms: int


class RevocationPage(BaseModel):
    items: list[Revocation]


@router.get("/revocations", response_model=RevocationPage)
async def list_revocations(
    caller: ServiceCaller,
    session: SessionDep,
    since_ms: Annotated[int, Query(ge=0)] = 0,
) -> RevocationPage:
    """Per-user revocation times after ``since_ms``: access tokens of the user issued before
    ``not_before_ms`` are refused (every service's verifier polls this)."""
    since = datetime.fromtimestamp(since_ms / 1000, UTC)
    rows = await tokens.revocations_since(session, since)
    return RevocationPage(
        items=[Revocation(user_id=str(user_id), not_before_ms=tokens.to_ms(nb)) for user_id, nb in rows]
    )


@router.post(
    "/users",
    response_model=InternalUserResult,
    status_code=201,
    responses={200: {"model": InternalUserResult, "description": "the user already existed (idempotent)"}},
)
async def create_tenant_user(
    body: InternalUserCreate,
    caller: TenantServiceCaller,
    session: SessionDep,
    state: AppState,
    response: Response,
) -> InternalUserResult:
    record, created = await service.create_or_update(session, state, body)
    if not created:
        response.status_code = 200
    return InternalUserResult(created=created, user=record.read())


@router.get("/users", response_model=UserList)
async def list_tenant_users(
    caller: TenantServiceCaller,
    session: SessionDep,
    page: PageDep,
    company_id: Annotated[str | None, Query(max_length=64)] = None,
    is_deleted: bool | None = False,
    is_active: bool | None = None,
    q: Annotated[str | None, Query(max_length=200)] = None,
) -> UserList:
    flt = UserFilter(kind="tenant", company_id=company_id, is_deleted=is_deleted, is_active=is_active, q=q)
    records, total = await users.list_users(session, flt, limit=page.limit, offset=page.offset)
    return UserList(items=[r.read() for r in records], total=total, limit=page.limit, offset=page.offset)


@router.get("/users/{user_id}", response_model=UserRead)
async def get_tenant_user(user_id: uuid.UUID, caller: TenantServiceCaller, session: SessionDep) -> UserRead:
    record = await users.get(session, user_id)
    if record is None or not record.is_tenant:
        raise NotFound("tenant user")
    return record.read()


@router.patch("/users/{user_id}", response_model=UserRead)
async def patch_tenant_user(
    user_id: uuid.UUID,
    body: InternalUserPatch,
    caller: TenantServiceCaller,
    session: SessionDep,
    state: AppState,
) -> UserRead:
    return (await service.patch(session, state, user_id, body)).read()


@router.post("/companies/{company_id}/disable-users", response_model=CompanyUsersResult)
async def disable_company_users(
    caller: TenantServiceCaller,
    session: SessionDep,
    company_id: Annotated[str, Path(min_length=1, max_length=64)],
    body: CompanyUsersStatus | None = None,
) -> CompanyUsersResult:
    """A company was deleted or inactivated: its users can no longer sign in and their sessions end.
    With `{"disabled": false}` (company reactivated) the users it disabled are enabled again."""
    disabled = (body or CompanyUsersStatus()).disabled
    changed = await service.set_company_users_disabled(session, company_id, disabled)
    return CompanyUsersResult(company_id=company_id, disabled=disabled, users_changed=changed)
