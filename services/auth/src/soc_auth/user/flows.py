"""User administration with its rules: who may create, change and delete whom.

- Super admins manage everyone; only they create or change administrators.
- Admins manage tenant users of every company.
- Tenant admins manage the users of their own company only; other users answer 404.
- Read-only admins read (the routes' dependencies refuse their writes).
- Nobody disables, deletes or demotes their own account, and the last super admin stays.
"""

from __future__ import annotations

import uuid
from typing import Any

from soc_shared.errors import ApiError, NotFound
from sqlalchemy.ext.asyncio import AsyncSession

from soc_auth.database import utcnow
from soc_auth.deps import Actor
from soc_auth.login.flows import set_password_hash
from soc_auth.password import policy
from soc_auth.role.models import AdminRole, RoleName, TenantRole
from soc_auth.token import service as tokens
from soc_auth.user import service as users
from soc_auth.user.models import AuthSource, UserCreate
from soc_auth.user.service import ADMIN_ROLES, TENANT_ROLES, UserFilter, UserRecord


def scoped_filter(actor: Actor, flt: UserFilter) -> UserFilter:
    if actor.is_tenant_admin:
        # Asking for another company shows nothing, as if it did not exist.
        flt.nothing = flt.company_id is not None and flt.company_id != actor.company_id
        flt.company_id = actor.company_id
        flt.kind = "tenant"
    return flt


async def get_visible(
    session: AsyncSession, actor: Actor, user_id: uuid.UUID, *, for_update: bool = False
) -> UserRecord:
    record = await users.get(session, user_id, for_update=for_update)
    if record is None:
        raise NotFound("user")
    if actor.is_tenant_admin and (not record.is_tenant or record.company_id != actor.company_id):
        raise NotFound("user")
    return record


def _check_role_for_kind(kind: str, role_name: str) -> None:
    if kind == "admin" and role_name not in ADMIN_ROLES:
        raise ApiError(422, "invalid_role", f"an administrator's role is one of {sorted(ADMIN_ROLES)}")
    if kind == "tenant" and role_name not in TENANT_ROLES:
        raise ApiError(422, "invalid_role", f"a tenant user's role is one of {sorted(TENANT_ROLES)}")


async def create(session: AsyncSession, state: Any, actor: Actor, body: UserCreate) -> UserRecord:
    kind = body.kind
    company_id = body.company_id
    if actor.is_tenant_admin:
        if kind != "tenant":
            raise ApiError(
                403, "admin_required", "tenant administrators create users of their own company only"
            )
        if company_id is not None and company_id != actor.company_id:
            raise NotFound("company")
        company_id = actor.company_id
    if kind == "admin" and not actor.is_super_admin:
        raise ApiError(403, "super_admin_required", "only a super administrator creates administrators")
    role_name = str(body.role or (AdminRole.ADMIN if kind == "admin" else TenantRole.TENANT_USER))
    _check_role_for_kind(kind, role_name)
    if kind == "tenant" and not company_id:
        raise ApiError(422, "company_required", "a tenant user belongs to a company: company_id is required")
    if kind == "admin" and company_id:
        raise ApiError(422, "invalid_company", "administrators do not belong to a company")
    if body.auth_source == AuthSource.OIDC:
        raise ApiError(
            422, "invalid_auth_source", "identity-provider accounts are created at their first sign-in"
        )
    password_hash = None
    if body.auth_source == AuthSource.LOCAL:
        if not body.password:
            raise ApiError(422, "password_required", "a local account needs a password")
        policy.check(body.password, username=body.username, min_length=state.settings.password_min_length)
        password_hash = await state.passwords.hash(body.password)
    elif body.password:
        raise ApiError(422, "directory_account", "a directory account's password lives in the directory")
    permissions: list[str] = []
    if kind == "tenant":
        permissions = (
            users.valid_permissions([str(p) for p in body.permissions])
            if body.permissions is not None
            else await users.default_permissions(session, role_name)
        )
    values = {
        "username": body.username.strip(),
        "email": body.email,
        "full_name": body.full_name,
        "auth_source": str(body.auth_source),
        "password_hash": password_hash,
        "is_admin": kind == "admin",
        "is_tenant": kind == "tenant",
        "is_read_only": role_name == AdminRole.READ_ONLY_ADMIN,
        "is_active": body.is_active,
        "company_id": company_id if kind == "tenant" else None,
        "permissions": permissions,
        "created_by": actor.id,
        "password_changed_at": None,
    }
    return await users.insert_user(session, values, role_name)


async def change(
    session: AsyncSession, state: Any, actor: Actor, user_id: uuid.UUID, changes: dict[str, Any]
) -> UserRecord:
    """Apply ``changes`` (the fields of a PUT or the fields a PATCH carried)."""
    target = await get_visible(session, actor, user_id, for_update=True)
    if target.is_admin and not actor.is_super_admin:
        raise ApiError(403, "super_admin_required", "only a super administrator changes administrators")
    values: dict[str, Any] = {}
    role_name: str | None = None
    revoke = False

    if "email" in changes:
        values["email"] = changes["email"]
    if "full_name" in changes and changes["full_name"] is not None:
        values["full_name"] = changes["full_name"]
    if changes.get("role") is not None and str(changes["role"]) != target.role:
        role_name = str(changes["role"])
        _check_role_for_kind(target.kind, role_name)
        if target.id == actor.id:
            raise ApiError(409, "self_lockout", "you cannot change your own role")
        if target.is_admin:
            values["is_read_only"] = role_name == AdminRole.READ_ONLY_ADMIN
        if target.is_super_admin and role_name != RoleName.SUPER_ADMIN:
            await _keep_a_super_admin(session, actor, target, "demote")
        revoke = True  # tokens and refresh families state the old role
    if "company_id" in changes and changes["company_id"] != target.company_id:
        company_id = changes["company_id"]
        if target.is_admin:
            if company_id is not None:
                raise ApiError(422, "invalid_company", "administrators do not belong to a company")
        elif actor.is_tenant_admin:
            raise NotFound("company")
        elif not company_id:
            raise ApiError(
                422, "company_required", "a tenant user belongs to a company: company_id is required"
            )
        else:
            values["company_id"] = company_id
            revoke = True
    if target.is_tenant and changes.get("permissions") is not None:
        values["permissions"] = users.valid_permissions([str(p) for p in changes["permissions"]])
        revoke = revoke or values["permissions"] != sorted(target.row.permissions or [])
    if changes.get("is_active") is not None and changes["is_active"] != target.is_active:
        if not changes["is_active"]:
            await _keep_a_super_admin(session, actor, target, "disable")
            revoke = True
        values["is_active"] = changes["is_active"]
        values["disabled_by_company"] = False
    if changes.get("is_deleted") is not None and changes["is_deleted"] != target.is_deleted:
        if changes["is_deleted"]:
            await _keep_a_super_admin(session, actor, target, "delete")
            values.update(is_deleted=True, is_active=False, deleted_at=utcnow())
            revoke = True
        else:
            values.update(is_deleted=False, deleted_at=None)
    password = changes.get("password")
    if password:
        if target.auth_source != AuthSource.LOCAL:
            raise ApiError(409, "directory_account", "this account's password is managed in the directory")
        policy.check(password, username=target.username, min_length=state.settings.password_min_length)
        await set_password_hash(session, target.id, await state.passwords.hash(password))
    record = await users.update_user(session, target.id, values, role_name=role_name)
    if revoke:
        await tokens.revoke_user(session, target.id, "account_changed")
    return record


async def delete(session: AsyncSession, state: Any, actor: Actor, user_id: uuid.UUID) -> None:
    await change(session, state, actor, user_id, {"is_deleted": True})


async def _keep_a_super_admin(session: AsyncSession, actor: Actor, target: UserRecord, action: str) -> None:
    if target.id == actor.id:
        raise ApiError(409, "self_lockout", f"you cannot {action} your own account")
    if target.is_super_admin and await users.count_super_admins(session, excluding=target.id) == 0:
        raise ApiError(409, "last_super_admin", f"cannot {action} the last super administrator")
