"""Tenant users of a company (the seed's Tenant + TenantRole + permissions).

Auth alone creates users and holds their passwords: our routes ask auth's internal API and keep the
membership in ``tenant_member``, which ``auth.user.changed`` events keep current (users created at
their first directory login, disabled, renamed...). ``GET /tenant/`` tells a caller who it is here.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, FastAPI, Path, Query, Response
from loguru import logger
from pydantic import Field
from soc_shared.api import Choice, Page
from soc_shared.bus import BatchConsumer, Delivery
from soc_shared.db import Database
from soc_shared.errors import ApiError
from soc_shared.events import TenantMembershipChanged, UserChanged
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from soc_tenant.audit import views as audit
from soc_tenant.company.views import company_view, get_company_row
from soc_tenant.control.deps import (
    CompanyId,
    ControlTx,
    ManagerReader,
    ManagerWriter,
    Paging,
    Person,
    Tx,
    full_list,
    not_found,
    page,
    scoped_company,
)
from soc_tenant.control.models import (
    DEFAULT_PERMISSIONS,
    PERMISSION_LABELS,
    Email,
    LdapGroup,
    Permissions,
    SearchText,
    ShortText,
    Strict,
    TenantRole,
    Username,
    choices,
)
from soc_tenant.control.tables import company, directory_group, tenant_member
from soc_tenant.integrations.clients import UpstreamRejected, UpstreamUnavailable, auth_directory, auth_error
from soc_tenant.members.responses import Member, RoleChoice, WhoAmI

router = APIRouter(tags=["tenant users"])

UserId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:@-]+$")]


class MemberCreate(Strict):
    username: Username
    email: Email | None = None
    password: str | None = Field(
        default=None,
        min_length=1,
        max_length=1024,
        description="local users only; directory users log in with their directory password",
    )
    tenant_role: TenantRole = TenantRole.TENANT_USER
    permissions: Permissions | None = None
    ldap_group: LdapGroup | None = None
    country: ShortText | None = None


class MemberUpdate(Strict):
    email: Email | None = None
    password: str | None = Field(default=None, min_length=1, max_length=1024)
    tenant_role: TenantRole | None = None
    permissions: Permissions | None = None
    active: bool | None = None
    ldap_group: LdapGroup | None = None
    country: ShortText | None = None


_MEMBER_COLUMNS = [
    tenant_member.c[n]
    for n in (
        "user_id",
        "company_id",
        "username",
        "email",
        "tenant_role",
        "permissions",
        "ldap_group",
        "country",
        "active",
        "created_by",
        "created_at",
        "updated_at",
    )
]


def member_view(row: Any) -> dict[str, Any]:
    return {c.name: row[c.name] for c in _MEMBER_COLUMNS}


async def get_member(
    session: AsyncSession, company_id: uuid.UUID, user_id: str, *, for_update: bool = False
) -> dict[str, Any]:
    stmt = sa.select(*_MEMBER_COLUMNS).where(
        tenant_member.c.company_id == company_id, tenant_member.c.user_id == user_id
    )
    if for_update:
        stmt = stmt.with_for_update()
    row = (await session.execute(stmt)).mappings().first()
    if row is None:
        raise not_found("user")
    return dict(row)


async def members_of(session: AsyncSession, company_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = (
        (
            await session.execute(
                sa.select(*_MEMBER_COLUMNS)
                .where(tenant_member.c.company_id == company_id)
                .order_by(sa.func.lower(tenant_member.c.username))
            )
        )
        .mappings()
        .all()
    )
    return [member_view(r) for r in rows]


async def publish_membership(tx: Tx, member: dict[str, Any]) -> None:
    await tx.publish(
        "tenant.membership.changed",
        TenantMembershipChanged(
            user_id=member["user_id"],
            company_id=str(member["company_id"]),
            tenant_role=member["tenant_role"],
            permissions=list(member["permissions"]),
            active=bool(member["active"]),
            changed_at=datetime.now(UTC),
        ),
        subject=member["user_id"],
    )


async def create_member(
    tx: Tx, company_id: uuid.UUID, body: MemberCreate, *, compensations: list[str] | None = None
) -> dict[str, Any]:
    """Ask auth to create the user, then record the membership (in ``tx``). ``compensations`` collects
    the ids of users auth created, so a caller whose transaction fails can undo them."""
    permissions = (
        [p.value for p in body.permissions]
        if body.permissions is not None
        else DEFAULT_PERMISSIONS[body.tenant_role]
    )
    request = {
        "username": body.username,
        "email": body.email,
        "company_id": str(company_id),
        "tenant_role": body.tenant_role.value,
        "permissions": permissions,
    }
    if body.password is not None:
        request["password"] = body.password
    # A user reached through a directory group signs in with its directory password (auth's "ldap"
    # accounts); the group itself is told to auth by tenant.company.changed.
    request["auth_source"] = "ldap" if body.ldap_group is not None else "local"
    try:
        created = await auth_directory(tx.app).create_user(request)
    except (UpstreamUnavailable, UpstreamRejected) as exc:
        raise auth_error(exc) from None
    user_id = created.get("id") or created.get("user_id")
    if not user_id:
        raise ApiError(
            502, "auth_error", "the auth service created the user but did not say its id", {"service": "auth"}
        )
    user_id = str(user_id)
    if compensations is not None:
        compensations.append(user_id)
    values = {
        "company_id": company_id,
        "username": str(created.get("username") or body.username),
        "email": created.get("email", body.email),
        "tenant_role": body.tenant_role.value,
        "permissions": permissions,
        "ldap_group": body.ldap_group,
        "country": body.country,
        "active": True,
    }
    stmt = insert(tenant_member).values(
        id=uuid.uuid4(), user_id=user_id, created_by=tx.principal.sub, **values
    )
    # The auth.user.changed of this very user may have been consumed already: ours is the fuller record.
    await tx.session.execute(
        stmt.on_conflict_do_update(index_elements=["user_id"], set_={**values, "updated_at": sa.func.now()})
    )
    member = await get_member(tx.session, company_id, user_id)
    await publish_membership(tx, member)
    return member


async def undo_created_users(app: FastAPI, user_ids: list[str]) -> None:
    """Compensation: users auth created for a tenant whose creation then failed on our side."""
    for user_id in user_ids:
        try:
            await auth_directory(app).update_user(user_id, {"is_active": False, "is_deleted": True})
        except Exception as exc:  # logged for an operator; the company they point to does not exist
            logger.warning("could not remove user {} created for a failed tenant: {}", user_id, exc)


def auth_changes(body: MemberUpdate) -> dict[str, Any]:
    changes = body.model_dump(exclude_unset=True, exclude={"country", "ldap_group"})
    out: dict[str, Any] = {}
    for key, value in changes.items():
        if key == "active":
            out["is_active"] = value
        elif key == "tenant_role":
            out["tenant_role"] = value.value if value is not None else None
        elif key == "permissions":
            out["permissions"] = [p.value for p in value] if value is not None else None
        else:
            out[key] = value
    return out


# --- routes ----------------------------------------------------------------------------------------
@router.get("/admin/companies/{company_id}/users/", response_model=Page[Member])
async def list_members(
    tx: ControlTx,
    principal: ManagerReader,
    paging: Paging,
    company_id: CompanyId,
    q: SearchText = None,
    active: bool | None = None,
    tenant_role: TenantRole | None = None,
) -> dict[str, Any]:
    company_id = scoped_company(principal, company_id)
    await get_company_row(tx.session, company_id)
    m = tenant_member
    stmt = sa.select(*_MEMBER_COLUMNS).where(m.c.company_id == company_id)
    if q:
        like = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        stmt = stmt.where(sa.or_(m.c.username.ilike(like, escape="\\"), m.c.email.ilike(like, escape="\\")))
    if active is not None:
        stmt = stmt.where(m.c.active == active)
    if tenant_role is not None:
        stmt = stmt.where(m.c.tenant_role == tenant_role.value)
    total = (await tx.session.execute(sa.select(sa.func.count()).select_from(stmt.subquery()))).scalar_one()
    rows = (
        (
            await tx.session.execute(
                stmt.order_by(sa.func.lower(m.c.username), m.c.user_id)
                .limit(paging.limit)
                .offset(paging.offset)
            )
        )
        .mappings()
        .all()
    )
    return page([member_view(r) for r in rows], total, paging)


@router.post("/admin/companies/{company_id}/users/", status_code=201, response_model=Member)
async def create_member_route(
    tx: ControlTx, principal: ManagerWriter, company_id: CompanyId, body: MemberCreate
) -> dict[str, Any]:
    company_id = scoped_company(principal, company_id)
    row = await get_company_row(tx.session, company_id, include_deleted=False)
    if not row["is_active"]:
        raise ApiError(409, "company_inactive", "the company is inactive; reactivate it before adding users")
    created: list[str] = []
    try:
        view = member_view(await create_member(tx, company_id, body, compensations=created))
        await audit.record(
            tx, "tenant_user.created", "tenant_user", view["user_id"], company_id=company_id, after=view
        )
        return view
    except Exception:
        await undo_created_users(tx.app, created)
        raise


@router.get("/admin/companies/{company_id}/users/{user_id}/", response_model=Member)
async def get_member_route(
    tx: ControlTx, principal: ManagerReader, company_id: CompanyId, user_id: UserId
) -> dict[str, Any]:
    company_id = scoped_company(principal, company_id)
    return member_view(await get_member(tx.session, company_id, user_id))


@router.put("/admin/companies/{company_id}/users/{user_id}/", response_model=Member)
async def update_member_route(
    tx: ControlTx, principal: ManagerWriter, company_id: CompanyId, user_id: UserId, body: MemberUpdate
) -> dict[str, Any]:
    company_id = scoped_company(principal, company_id)
    member = await get_member(tx.session, company_id, user_id, for_update=True)
    before = member_view(member)
    for key in ("tenant_role", "active", "permissions"):
        if key in body.model_fields_set and getattr(body, key) is None:
            raise ApiError(
                422,
                "validation_error",
                "the request is not valid",
                {"errors": [{"loc": ["body", key], "msg": "must not be null", "type": "value_error"}]},
            )
    if user_id == principal.sub and (body.active is False or body.tenant_role == TenantRole.TENANT_USER):
        raise ApiError(409, "cannot_demote_self", "you cannot deactivate or demote your own account")
    changes = auth_changes(body)
    if changes:
        try:
            await auth_directory(tx.app).update_user(user_id, changes)
        except (UpstreamUnavailable, UpstreamRejected) as exc:
            raise auth_error(exc) from None
    values = body.model_dump(exclude_unset=True, exclude={"password"})
    if "tenant_role" in values:
        values["tenant_role"] = values["tenant_role"].value
    if "permissions" in values:
        values["permissions"] = [p.value for p in values["permissions"]]
    if values:
        await tx.session.execute(
            sa.update(tenant_member)
            .where(tenant_member.c.user_id == user_id)
            .values(**values, updated_at=sa.func.now())
        )
    member = await get_member(tx.session, company_id, user_id)
    if values.keys() & {"tenant_role", "permissions", "active"}:
        await publish_membership(tx, member)
    after = member_view(member)
    if body.password is not None:
        after["password_changed"] = True
    await audit.record(
        tx, "tenant_user.updated", "tenant_user", user_id, company_id=company_id, before=before, after=after
    )
    return member_view(member)


@router.delete("/admin/companies/{company_id}/users/{user_id}/", status_code=204)
async def delete_member_route(
    tx: ControlTx, principal: ManagerWriter, company_id: CompanyId, user_id: UserId
) -> Response:
    """Removes the user from the company: auth soft-deletes the account; the membership is kept, inactive."""
    company_id = scoped_company(principal, company_id)
    before = member_view(await get_member(tx.session, company_id, user_id, for_update=True))
    if user_id == principal.sub:
        raise ApiError(409, "cannot_demote_self", "you cannot remove your own account")
    try:
        await auth_directory(tx.app).update_user(user_id, {"is_active": False, "is_deleted": True})
    except (UpstreamUnavailable, UpstreamRejected) as exc:
        if not (isinstance(exc, UpstreamRejected) and exc.status == 404):
            raise auth_error(exc) from None
    await tx.session.execute(
        sa.update(tenant_member)
        .where(tenant_member.c.user_id == user_id)
        .values(active=False, updated_at=sa.func.now())
    )
    member = await get_member(tx.session, company_id, user_id)
    await publish_membership(tx, member)
    await audit.record(
        tx,
        "tenant_user.deleted",
        "tenant_user",
        user_id,
        company_id=company_id,
        before=before,
        after=member_view(member),
    )
    return Response(status_code=204)


@router.get("/tenant/", response_model=WhoAmI)
async def who_am_i(
    tx: ControlTx,
    principal: Person,
    company_id: Annotated[uuid.UUID | None, Query(description="admins: show this company")] = None,
) -> dict[str, Any]:
    """The caller's company, tenant role and permissions (admins: their roles, optionally a company)."""
    scope = scoped_company(principal, company_id)
    company_out = None
    member = None
    if scope is not None:
        company_out = company_view(await get_company_row(tx.session, scope))
    if principal.kind == "tenant":
        row = (
            (
                await tx.session.execute(
                    sa.select(*_MEMBER_COLUMNS).where(
                        tenant_member.c.user_id == principal.sub, tenant_member.c.company_id == scope
                    )
                )
            )
            .mappings()
            .first()
        )
        member = member_view(row) if row else None
    tenant_role = None
    if principal.kind == "tenant":
        tenant_role = (
            member["tenant_role"]
            if member
            else (
                TenantRole.TENANT_ADMIN.value if principal.is_tenant_admin else TenantRole.TENANT_USER.value
            )
        )
    return {
        "user": {
            "id": principal.sub,
            "username": principal.username,
            "kind": principal.kind,
            "read_only": principal.read_only,
        },
        "is_admin": principal.is_admin,
        "roles": principal.roles,
        "tenant_role": tenant_role,
        "permissions": sorted(principal.permissions),
        "company": company_out,
        "membership": member,
    }


@router.get("/tenant/permission-choices/", response_model=Page[Choice])
async def permission_choices(principal: Person) -> dict[str, Any]:
    return full_list(choices(PERMISSION_LABELS))


@router.get("/tenant/role-choices/", response_model=Page[RoleChoice])
async def role_choices(principal: Person) -> dict[str, Any]:
    return full_list(
        [
            {
                "value": r.value,
                "label": r.value.replace("_", " ").title(),
                "default_permissions": DEFAULT_PERMISSIONS[r],
            }
            for r in TenantRole
        ]
    )


# --- auth.user.changed ------------------------------------------------------------------------------
async def _default_permissions(session: AsyncSession, company_id: uuid.UUID, role: str) -> list[str]:
    """A user created at its first directory login gets the permissions of its company's group with
    the same role (auth decided the role from that group), else the role's defaults."""
    found = (
        await session.execute(
            sa.select(directory_group.c.permissions)
            .where(directory_group.c.company_id == company_id, directory_group.c.tenant_role == role)
            .limit(1)
        )
    ).scalar_one_or_none()
    return list(found) if found is not None else DEFAULT_PERMISSIONS[TenantRole(role)]


async def apply_user_changes(db: Database, changes: list[UserChanged]) -> None:
    latest: dict[str, UserChanged] = {}
    for change in changes:
        prev = latest.get(change.user_id)
        if prev is None or change.changed_at >= prev.changed_at:
            latest[change.user_id] = change
    if not latest:
        return
    m = tenant_member
    async with db.session() as session:
        for change in latest.values():
            existing = (
                (await session.execute(sa.select(m).where(m.c.user_id == change.user_id).with_for_update()))
                .mappings()
                .first()
            )
            if (
                existing is not None
                and existing["user_changed_at"] is not None
                and existing["user_changed_at"] > change.changed_at
            ):
                continue  # an older version delivered late
            company_uuid = _uuid_or_none(change.company_id)
            if change.kind != "tenant" or company_uuid is None:
                if existing is not None:
                    await session.execute(
                        sa.update(m)
                        .where(m.c.user_id == change.user_id)
                        .values(active=False, user_changed_at=change.changed_at, updated_at=sa.func.now())
                    )
                continue
            known = (
                await session.execute(sa.select(company.c.id).where(company.c.id == company_uuid))
            ).first()
            if known is None:
                logger.info(
                    "user {} belongs to unknown company {}; membership not recorded",
                    change.user_id,
                    change.company_id,
                )
                continue
            role = (
                TenantRole.TENANT_ADMIN.value
                if TenantRole.TENANT_ADMIN.value in change.roles
                else TenantRole.TENANT_USER.value
            )
            values: dict[str, Any] = {
                "company_id": company_uuid,
                "username": change.username,
                "email": change.email,
                "tenant_role": role,
                "active": change.active and not change.deleted,
                "user_changed_at": change.changed_at,
            }
            if existing is None:
                await session.execute(
                    sa.insert(m).values(
                        id=uuid.uuid4(),
                        user_id=change.user_id,
                        permissions=await _default_permissions(session, company_uuid, role),
                        **values,
                    )
                )
            else:
                if existing["company_id"] != company_uuid:
                    values["permissions"] = await _default_permissions(session, company_uuid, role)
                await session.execute(
                    sa.update(m)
                    .where(m.c.user_id == change.user_id)
                    .values(**values, updated_at=sa.func.now())
                )


def _uuid_or_none(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError:
        return None


async def start_consumer(app: FastAPI) -> BatchConsumer:
    async def handle(deliveries: list[Delivery]) -> None:
        changes: list[UserChanged] = []
        for d in deliveries:
            if not isinstance(d.payload, UserChanged):
                continue
            if d.envelope.source != "/auth":  # accounts are the auth service's word alone
                logger.warning("auth.user.changed from {!r} ignored", d.envelope.source[:64])
                continue
            changes.append(d.payload)
            if d.payload.tokens_not_before is not None:
                verifier = getattr(app.state, "token_verifier", None)
                if verifier is not None:
                    verifier.revocations.apply(
                        d.payload.user_id, int(d.payload.tokens_not_before.timestamp() * 1000)
                    )
        await apply_user_changes(app.state.db, changes)

    consumer = BatchConsumer(
        app.state.bus, "tenant.control.users", ["auth.user.changed"], handle, batch_size=200
    )
    await consumer.start()
    return consumer
