"""User administration routes (thin: rules live in ``user/flows.py``)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response

from soc_auth.audit import trail
from soc_auth.database import SessionDep
from soc_auth.deps import Actor, AdminWriter, AppState, PageDep, UserManagerReader, UserManagerWriter
from soc_auth.role.models import RoleName
from soc_auth.user import flows
from soc_auth.user import service as users
from soc_auth.user.models import UserCreate, UserList, UserPatch, UserRead, UserReplace, changes_of
from soc_auth.user.service import UserFilter

router = APIRouter(tags=["admin users"])


@router.get("/admin/users/", response_model=UserList)
async def list_users(
    actor: UserManagerReader,
    session: SessionDep,
    page: PageDep,
    kind: Literal["admin", "tenant"] | None = None,
    company_id: Annotated[str | None, Query(max_length=64)] = None,
    is_active: bool | None = None,
    is_deleted: Annotated[bool | None, Query(description="default false; omit deleted users")] = False,
    role: RoleName | None = None,
    auth_source: Literal["local", "ldap"] | None = None,
    q: Annotated[str | None, Query(max_length=200, description="text in user name, e-mail or name")] = None,
    sort: Annotated[
        str,
        Query(
            description="username, email, full_name, created_at, updated_at, last_login_at; '-' for descending"
        ),
    ] = "username",
) -> UserList:
    flt = flows.scoped_filter(
        actor,
        UserFilter(
            kind=kind,
            company_id=company_id,
            is_active=is_active,
            is_deleted=is_deleted,
            role=role,
            auth_source=auth_source,
            q=q,
            sort=sort,
        ),
    )
    records, total = await users.list_users(session, flt, limit=page.limit, offset=page.offset)
    return UserList(items=[r.read() for r in records], total=total, limit=page.limit, offset=page.offset)


async def _create(
    session: SessionDep, state: AppState, request: Request, actor: Actor, body: UserCreate
) -> UserRead:
    created = await flows.create(session, state, actor, body)
    after = trail.user_view(created)
    assert after is not None
    if body.password:
        after["password_set"] = True
    await trail.record(
        session,
        request,
        actor,
        "user.created",
        "user",
        created.id,
        company_id=created.company_id,
        after=after,
    )
    return created.read()


@router.post("/admin/users/", response_model=UserRead, status_code=201)
async def create_user(
    body: UserCreate, actor: UserManagerWriter, session: SessionDep, state: AppState, request: Request
) -> UserRead:
    """Create a user. Only super admins create administrators; tenant admins create users of their company."""
    return await _create(session, state, request, actor, body)


@router.post("/auth/create-user/", response_model=UserRead, status_code=201, tags=["auth"])
async def create_user_seed_path(
    body: UserCreate, actor: AdminWriter, session: SessionDep, state: AppState, request: Request
) -> UserRead:
    """The original product's path: create a user (administrators only)."""
    return await _create(session, state, request, actor, body)


@router.get("/admin/users/{user_id}/", response_model=UserRead)
async def get_user(user_id: uuid.UUID, actor: UserManagerReader, session: SessionDep) -> UserRead:
    return (await flows.get_visible(session, actor, user_id)).read()


async def _change(
    session: SessionDep,
    state: AppState,
    request: Request,
    actor: Actor,
    user_id: uuid.UUID,
    changes: dict[str, Any],
) -> UserRead:
    before = trail.user_view(await flows.get_visible(session, actor, user_id))
    changed = await flows.change(session, state, actor, user_id, changes)
    after = trail.user_view(changed)
    assert before is not None and after is not None
    if changes.get("password"):  # a reset by an administrator: that it happened, never the value
        before["password_reset"], after["password_reset"] = False, True
    action = "user.updated"
    if changed.is_deleted and not before["is_deleted"]:
        action = "user.deleted"
    elif before["is_deleted"] and not changed.is_deleted:
        action = "user.restored"
    await trail.record(
        session,
        request,
        actor,
        action,
        "user",
        user_id,
        company_id=changed.company_id,
        before=before,
        after=after,
    )
    return changed.read()


@router.put("/admin/users/{user_id}/", response_model=UserRead)
async def replace_user(
    user_id: uuid.UUID,
    body: UserReplace,
    actor: UserManagerWriter,
    session: SessionDep,
    state: AppState,
    request: Request,
) -> UserRead:
    return await _change(session, state, request, actor, user_id, body.model_dump())


@router.patch("/admin/users/{user_id}/", response_model=UserRead)
async def patch_user(
    user_id: uuid.UUID,
    body: UserPatch,
    actor: UserManagerWriter,
    session: SessionDep,
    state: AppState,
    request: Request,
) -> UserRead:
    return await _change(session, state, request, actor, user_id, changes_of(body))


@router.delete("/admin/users/{user_id}/", status_code=204, response_class=Response)
async def delete_user(
    user_id: uuid.UUID, actor: UserManagerWriter, session: SessionDep, state: AppState, request: Request
) -> Response:
    """Soft delete: the account stays (audit, history) but cannot sign in; PATCH is_deleted=false restores it."""
    await _change(session, state, request, actor, user_id, {"is_deleted": True})
    return Response(status_code=204)
