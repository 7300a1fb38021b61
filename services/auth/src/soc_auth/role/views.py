"""Roles and permissions (read only: they are part of the product, seeded by the migrations)."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import select

from soc_auth.database import SessionDep
from soc_auth.deps import CurrentActor, UserManagerReader
from soc_auth.role.models import PERMISSION_TEXT, PermissionChoice, RoleRead, role, role_permission

router = APIRouter(tags=["roles"])


@router.get("/admin/roles/", response_model=list[RoleRead])
async def list_roles(actor: UserManagerReader, session: SessionDep) -> list[RoleRead]:
    roles = (await session.execute(select(role).order_by(role.c.id))).all()
    grants = (await session.execute(select(role_permission.c.role_id, role_permission.c.permission))).all()
    return [
        RoleRead(
            id=r.id,
            name=r.name,
            scope=r.scope,
            description=r.description,
            permissions=sorted(g.permission for g in grants if g.role_id == r.id),
        )
        for r in roles
    ]


@router.get("/auth/permission-choices/", response_model=list[PermissionChoice])
async def permission_choices(actor: CurrentActor) -> list[PermissionChoice]:
    return [PermissionChoice(value=p.value, label=label) for p, label in PERMISSION_TEXT.items()]
