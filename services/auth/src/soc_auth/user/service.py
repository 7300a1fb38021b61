"""Plain functions over users, taking a session. Authorisation lives in ``user/flows.py``."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from soc_shared.errors import ApiError
from soc_shared.events import UserChanged
from sqlalchemy import Select, Text, cast, delete, false, func, insert, or_, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from soc_auth.database import utcnow
from soc_auth.outbox.service import enqueue
from soc_auth.role.models import (
    ROLE_IDS,
    AdminRole,
    Permission,
    RoleName,
    TenantRole,
    role,
    role_permission,
    user_role,
)
from soc_auth.user.models import SORTABLE, UserRead, users

ADMIN_ROLES = {r.value for r in AdminRole}
TENANT_ROLES = {r.value for r in TenantRole}

_EMPTY = text("'{}'::text[]")
_roles_of_user = (
    select(func.coalesce(func.array_agg(cast(role.c.name, Text)), _EMPTY))
    .select_from(user_role.join(role, role.c.id == user_role.c.role_id))
    .where(user_role.c.user_id == users.c.id)
    .scalar_subquery()
)
_role_permissions_of_user = (
    select(func.coalesce(func.array_agg(cast(role_permission.c.permission, Text).distinct()), _EMPTY))
    .select_from(user_role.join(role_permission, role_permission.c.role_id == user_role.c.role_id))
    .where(user_role.c.user_id == users.c.id)
    .scalar_subquery()
)


@dataclass
class UserRecord:
    """A user row with its roles and role permissions."""

    row: Any
    roles: list[str] = field(default_factory=list)
    role_permissions: list[str] = field(default_factory=list)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.row, name)

    @property
    def kind(self) -> str:
        return "admin" if self.row.is_admin else "tenant"

    @property
    def role(self) -> str | None:
        wanted = ADMIN_ROLES if self.row.is_admin else TENANT_ROLES
        order = [r.value for r in AdminRole] + [r.value for r in TenantRole]
        found = [r for r in order if r in wanted and r in self.roles]
        return found[0] if found else None

    @property
    def permissions(self) -> list[str]:
        granted = self.role_permissions if self.row.is_admin else list(self.row.permissions or [])
        return sorted(set(granted))

    @property
    def can_log_in(self) -> bool:
        return self.row.is_active and not self.row.is_deleted

    @property
    def is_super_admin(self) -> bool:
        return self.row.is_admin and RoleName.SUPER_ADMIN in self.roles

    def claims(self) -> dict[str, Any]:
        """The identity part of an access token."""
        return {
            "sub": str(self.row.id),
            "username": self.row.username,
            "kind": self.kind,
            "roles": sorted(self.roles),
            "permissions": self.permissions,
            "company_id": self.row.company_id,
            "read_only": bool(self.row.is_read_only),
        }

    def read(self) -> UserRead:
        r = self.row
        return UserRead(
            id=r.id,
            username=r.username,
            email=r.email,
            full_name=r.full_name,
            kind=self.kind,
            auth_source=r.auth_source,
            roles=sorted(self.roles),
            role=self.role,
            permissions=self.permissions,
            company_id=r.company_id,
            is_admin=r.is_admin,
            is_tenant=r.is_tenant,
            is_read_only=r.is_read_only,
            is_active=r.is_active,
            is_deleted=r.is_deleted,
            directory_dn=r.directory_dn,
            directory_groups=list(r.directory_groups or []),
            created_at=r.created_at,
            updated_at=r.updated_at,
            deleted_at=r.deleted_at,
            last_login_at=r.last_login_at,
            password_changed_at=r.password_changed_at,
        )


def _select() -> Select[Any]:
    return select(users, _roles_of_user.label("roles"), _role_permissions_of_user.label("role_permissions"))


def _record(row: Any) -> UserRecord:
    return UserRecord(row, list(row.roles or []), list(row.role_permissions or []))


async def get(
    session: AsyncSession, user_id: uuid.UUID | str, *, for_update: bool = False
) -> UserRecord | None:
    try:
        uid = user_id if isinstance(user_id, uuid.UUID) else uuid.UUID(str(user_id))
    except ValueError:
        return None
    if for_update:
        await session.execute(select(users.c.id).where(users.c.id == uid).with_for_update())
    row = (await session.execute(_select().where(users.c.id == uid))).first()
    return None if row is None else _record(row)


async def get_by_username(session: AsyncSession, username: str) -> UserRecord | None:
    row = (
        await session.execute(_select().where(func.lower(users.c.username) == username.strip().lower()))
    ).first()
    return None if row is None else _record(row)


async def get_by_login(session: AsyncSession, login: str, *, upn_domain: str = "") -> UserRecord | None:
    """The account ``login`` names: a user name, an e-mail address, or ``user@<upn_domain>``."""
    value = login.strip().lower()
    conditions = [func.lower(users.c.username) == value]
    if "@" in value:
        conditions.append(func.lower(users.c.email) == value)
        local, _, domain = value.rpartition("@")
        if local and upn_domain and domain == upn_domain.lower():
            conditions.append(func.lower(users.c.username) == local)
    rows = (await session.execute(_select().where(or_(*conditions)))).all()
    if not rows:
        return None
    # A user name that equals someone's e-mail address wins over the address.
    exact = [r for r in rows if r.username.lower() == value]
    return _record((exact or rows)[0])


@dataclass
class UserFilter:
    kind: str | None = None
    company_id: str | None = None
    is_active: bool | None = None
    is_deleted: bool | None = False
    role: str | None = None
    auth_source: str | None = None
    q: str | None = None
    sort: str = "username"
    nothing: bool = False


def _like(text_value: str) -> str:
    escaped = text_value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def list_users(
    session: AsyncSession, flt: UserFilter, *, limit: int, offset: int
) -> tuple[list[UserRecord], int]:
    conditions: list[Any] = [false()] if flt.nothing else []
    if flt.kind == "admin":
        conditions.append(users.c.is_admin.is_(True))
    elif flt.kind == "tenant":
        conditions.append(users.c.is_tenant.is_(True))
    if flt.company_id is not None:
        conditions.append(users.c.company_id == flt.company_id)
    if flt.is_active is not None:
        conditions.append(users.c.is_active.is_(flt.is_active))
    if flt.is_deleted is not None:
        conditions.append(users.c.is_deleted.is_(flt.is_deleted))
    if flt.auth_source is not None:
        conditions.append(users.c.auth_source == flt.auth_source)
    if flt.role is not None:
        conditions.append(
            select(user_role.c.user_id)
            .where(user_role.c.user_id == users.c.id, user_role.c.role_id == ROLE_IDS.get(flt.role, -1))
            .exists()
        )
    if flt.q:
        pattern = _like(flt.q.strip())
        conditions.append(
            or_(
                users.c.username.ilike(pattern, escape="\\"),
                users.c.email.ilike(pattern, escape="\\"),
                users.c.full_name.ilike(pattern, escape="\\"),
            )
        )
    total = (await session.execute(select(func.count()).select_from(users).where(*conditions))).scalar_one()
    descending = flt.sort.startswith("-")
    column_name = flt.sort.lstrip("-")
    if column_name not in SORTABLE:
        raise ApiError(422, "invalid_sort", f"cannot sort by {column_name!r}", {"allowed": sorted(SORTABLE)})
    column = users.c[column_name]
    order = column.desc().nulls_last() if descending else column.asc().nulls_last()
    rows = (
        await session.execute(
            _select().where(*conditions).order_by(order, users.c.id).limit(limit).offset(offset)
        )
    ).all()
    return [_record(r) for r in rows], total


async def set_role(session: AsyncSession, user_id: uuid.UUID, role_name: str) -> None:
    """Give the user exactly one admin role, or USER plus one tenant role."""
    names = [role_name] if role_name in ADMIN_ROLES else [RoleName.USER.value, role_name]
    await session.execute(delete(user_role).where(user_role.c.user_id == user_id))
    await session.execute(
        insert(user_role).values([{"user_id": user_id, "role_id": ROLE_IDS[n]} for n in names])
    )


async def default_permissions(session: AsyncSession, role_name: str) -> list[str]:
    rows = await session.execute(
        select(role_permission.c.permission).where(role_permission.c.role_id == ROLE_IDS[role_name])
    )
    return sorted(rows.scalars().all())


async def insert_user(session: AsyncSession, values: dict[str, Any], role_name: str) -> UserRecord:
    now = utcnow()
    user_id = values.pop("id", None) or uuid.uuid4()
    try:
        async with session.begin_nested():
            await session.execute(insert(users).values(id=user_id, created_at=now, updated_at=now, **values))
    except IntegrityError as exc:
        raise _conflict(exc) from None
    await set_role(session, user_id, role_name)
    record = await get(session, user_id)
    assert record is not None
    await publish_changed(session, record)
    return record


async def update_user(
    session: AsyncSession, user_id: uuid.UUID, values: dict[str, Any], *, role_name: str | None = None
) -> UserRecord:
    if values:
        try:
            async with session.begin_nested():
                await session.execute(
                    update(users).where(users.c.id == user_id).values(updated_at=utcnow(), **values)
                )
        except IntegrityError as exc:
            raise _conflict(exc) from None
    if role_name is not None:
        await set_role(session, user_id, role_name)
        if not values:
            await session.execute(update(users).where(users.c.id == user_id).values(updated_at=utcnow()))
    record = await get(session, user_id)
    assert record is not None
    if values or role_name is not None:
        await publish_changed(session, record)
    return record


def _conflict(exc: IntegrityError) -> ApiError:
    message = str(exc.orig) if exc.orig is not None else str(exc)
    if "ux_users_username" in message:
        return ApiError(409, "username_taken", "a user with this user name already exists")
    if "ux_users_email" in message:
        return ApiError(409, "email_taken", "a user with this e-mail address already exists")
    if "tenant_has_company" in message:
        return ApiError(422, "company_required", "a tenant user belongs to a company: company_id is required")
    return ApiError(409, "conflict", "the change conflicts with another user")


async def publish_changed(
    session: AsyncSession, record: UserRecord, *, tokens_not_before: datetime | None = None
) -> None:
    r = record.row
    await enqueue(
        session,
        "auth.user.changed",
        UserChanged(
            user_id=str(r.id),
            username=r.username,
            email=r.email,
            kind=record.kind,
            company_id=r.company_id,
            active=bool(r.is_active and not r.is_deleted),
            deleted=r.is_deleted,
            read_only=r.is_read_only,
            roles=sorted(record.roles),
            changed_at=r.updated_at,
            tokens_not_before=tokens_not_before,
        ),
        subject=str(r.id),
    )


async def count_super_admins(session: AsyncSession, *, excluding: uuid.UUID | None = None) -> int:
    query = (
        select(func.count())
        .select_from(users.join(user_role, user_role.c.user_id == users.c.id))
        .where(
            user_role.c.role_id == ROLE_IDS[RoleName.SUPER_ADMIN],
            users.c.is_active.is_(True),
            users.c.is_deleted.is_(False),
        )
    )
    if excluding is not None:
        query = query.where(users.c.id != excluding)
    return (await session.execute(query)).scalar_one()


async def company_user_ids(session: AsyncSession, company_id: str) -> list[uuid.UUID]:
    rows = await session.execute(
        select(users.c.id).where(users.c.company_id == company_id, users.c.is_tenant.is_(True))
    )
    return list(rows.scalars().all())


def valid_permissions(values: list[str] | None) -> list[str]:
    return sorted({p for p in (values or []) if p in Permission.__members__})
