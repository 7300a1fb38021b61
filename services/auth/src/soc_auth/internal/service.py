"""What the tenant service may do to tenant users (it owns companies and memberships)."""

from __future__ import annotations

import uuid
from typing import Any

from soc_shared.errors import ApiError, NotFound
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from soc_auth.database import utcnow
from soc_auth.internal.models import InternalUserCreate, InternalUserPatch
from soc_auth.login.flows import set_password_hash
from soc_auth.password import policy
from soc_auth.token import service as tokens
from soc_auth.user import service as users
from soc_auth.user.models import AuthSource
from soc_auth.user.models import users as users_table
from soc_auth.user.service import UserRecord


async def _password_hash(state: Any, username: str, password: str | None, auth_source: str) -> str | None:
    if not password:
        return None
    if auth_source != AuthSource.LOCAL:
        raise ApiError(422, "directory_account", "a directory account's password lives in the directory")
    policy.check(password, username=username, min_length=state.settings.password_min_length)
    return await state.passwords.hash(password)


async def create_or_update(
    session: AsyncSession, state: Any, body: InternalUserCreate
) -> tuple[UserRecord, bool]:
    existing = await users.get_by_username(session, body.username)
    role_name = str(body.tenant_role)
    if existing is None:
        permissions = (
            users.valid_permissions([str(p) for p in body.permissions])
            if body.permissions is not None
            else await users.default_permissions(session, role_name)
        )
        values: dict[str, Any] = {
            "username": body.username,
            "email": body.email,
            "full_name": body.full_name,
            "auth_source": str(body.auth_source),
            "password_hash": await _password_hash(state, body.username, body.password, body.auth_source),
            "is_admin": False,
            "is_tenant": True,
            "is_read_only": False,
            "is_active": body.is_active,
            "company_id": body.company_id,
            "permissions": permissions,
        }
        if values["password_hash"]:
            values["password_changed_at"] = utcnow()
        return await users.insert_user(session, values, role_name), True
    if (
        not existing.is_tenant
        or existing.company_id != body.company_id
        or existing.auth_source != body.auth_source
    ):
        raise ApiError(
            409,
            "username_taken",
            "this user name is already used by another account",
            {"user_id": str(existing.id)}
            if existing.is_tenant and existing.company_id == body.company_id
            else {},
        )
    await session.execute(users_table.select().where(users_table.c.id == existing.id).with_for_update())
    values = {
        "email": body.email,
        "full_name": body.full_name,
        "is_active": body.is_active,
        "is_deleted": False,
        "deleted_at": None,
    }
    if body.permissions is not None:
        values["permissions"] = users.valid_permissions([str(p) for p in body.permissions])
    if body.is_active:
        values["disabled_by_company"] = False
    changed = {k: v for k, v in values.items() if getattr(existing, k) != v}
    new_role = role_name if role_name != existing.role else None
    if body.password and not existing.password_hash:
        await set_password_hash(
            session,
            existing.id,
            await _password_hash(state, body.username, body.password, body.auth_source) or "",
        )
    record = await users.update_user(session, existing.id, changed, role_name=new_role)
    if "is_active" in changed and not body.is_active:
        await tokens.revoke_user(session, existing.id, "account_changed")
    return record, False


async def patch(session: AsyncSession, state: Any, user_id: uuid.UUID, body: InternalUserPatch) -> UserRecord:
    target = await users.get(session, user_id, for_update=True)
    if target is None or not target.is_tenant:
        raise NotFound("tenant user")
    changes = body.model_dump(exclude_unset=True)
    values: dict[str, Any] = {}
    revoke = False
    for name in ("email", "full_name"):
        if name in changes and (changes[name] is not None or name == "email"):
            values[name] = changes[name]
    if changes.get("company_id") and changes["company_id"] != target.company_id:
        values["company_id"] = changes["company_id"]
        revoke = True
    if changes.get("permissions") is not None:
        values["permissions"] = users.valid_permissions([str(p) for p in changes["permissions"]])
        revoke = revoke or values["permissions"] != sorted(target.row.permissions or [])
    if changes.get("is_active") is not None and changes["is_active"] != target.is_active:
        values["is_active"] = changes["is_active"]
        values["disabled_by_company"] = False
        revoke = revoke or not changes["is_active"]
    if changes.get("is_deleted") is not None and changes["is_deleted"] != target.is_deleted:
        if changes["is_deleted"]:
            values.update(is_deleted=True, is_active=False, deleted_at=utcnow())
            revoke = True
        else:
            values.update(is_deleted=False, deleted_at=None)
    role_name = (
        str(changes["tenant_role"])
        if changes.get("tenant_role") and changes["tenant_role"] != target.role
        else None
    )
    if changes.get("password"):
        new_hash = await _password_hash(state, target.username, changes["password"], target.auth_source)
        await set_password_hash(session, target.id, new_hash or "")
    revoke = revoke or role_name is not None  # tokens and refresh families state the old role
    record = await users.update_user(session, target.id, values, role_name=role_name)
    if revoke:
        await tokens.revoke_user(session, target.id, "account_changed")
    return record


async def set_company_users_disabled(session: AsyncSession, company_id: str, disabled: bool) -> int:
    """Disable every active user of the company (remembering why), or re-enable exactly those."""
    now = utcnow()
    base = update(users_table).where(
        users_table.c.company_id == company_id, users_table.c.is_tenant.is_(True)
    )
    if disabled:
        statement = base.where(users_table.c.is_active.is_(True), users_table.c.is_deleted.is_(False)).values(
            is_active=False, disabled_by_company=True, updated_at=now
        )
    else:
        statement = base.where(users_table.c.disabled_by_company.is_(True)).values(
            is_active=True, disabled_by_company=False, updated_at=now
        )
    changed_ids = (await session.execute(statement.returning(users_table.c.id))).scalars().all()
    for user_id in changed_ids:
        if disabled:
            await tokens.revoke_user(session, user_id, "company_disabled")
        record = await users.get(session, user_id)
        if record is not None:
            await users.publish_changed(session, record)
    return len(changed_ids)
