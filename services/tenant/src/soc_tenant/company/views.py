"""Companies: CRUD, profile picture, directory-group mapping, soft delete / inactivate / reactivate.

Admins manage every company; a tenant admin reads and edits the profile of its own (any other id
answers 404, as if it did not exist).
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Query, Request, Response
from soc_shared.api import Page, file_responses
from soc_shared.errors import ApiError
from soc_shared.events import CompanyChanged, DirectoryGroupRole
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from soc_tenant.audit import views as audit
from soc_tenant.company.responses import (
    Company,
    CompanyDetail,
    DirectoryGroup,
    NameAvailability,
    PictureStored,
)
from soc_tenant.control.deps import (
    AdminReader,
    AdminWriter,
    CompanyId,
    ControlTx,
    ManagerReader,
    ManagerWriter,
    Paging,
    Tx,
    full_list,
    invalid,
    not_found,
    page,
    scoped_company,
)
from soc_tenant.control.models import (
    DEFAULT_PERMISSIONS,
    DirectoryGroupIn,
    Name,
    Phone,
    SearchText,
    ShortText,
    Strict,
    TenantRole,
    storable,
)
from soc_tenant.control.tables import (
    company,
    directory_group,
    integration,
    itsm_mapping,
    qradar_mapping,
    soar_mapping,
)
from soc_tenant.pending import service as pending

router = APIRouter(tags=["companies"])

COMPANY_DELETED = "company_deleted"
MAPPING_TABLES = (qradar_mapping, soar_mapping, itsm_mapping)


# --- request bodies --------------------------------------------------------------------------------
class CompanyCreate(Strict):
    name: Name
    phone_number: Phone | None = None
    industry: ShortText | None = None
    country: ShortText | None = None
    is_default_sla: bool = True
    is_default_threat_intel: bool = True
    directory_groups: list[DirectoryGroupIn] = []


class CompanyUpdate(Strict):
    """Partial update: absent fields stay as they are. Tenant admins may change the profile only."""

    name: Name | None = None
    phone_number: Phone | None = None
    industry: ShortText | None = None
    country: ShortText | None = None
    is_default_sla: bool | None = None
    is_default_threat_intel: bool | None = None
    directory_groups: list[DirectoryGroupIn] | None = None


class DirectoryGroupsIn(Strict):
    items: list[DirectoryGroupIn]


ADMIN_ONLY_FIELDS = {"name", "is_default_sla", "is_default_threat_intel", "directory_groups"}


# --- reading ---------------------------------------------------------------------------------------
def company_status(row: Any) -> str:
    if row["deleted_at"] is not None:
        return "deleted"
    return "active" if row["is_active"] else "inactive"


_VIEW_COLUMNS = [c for c in company.c if c.name != "profile_picture"]


def company_view(row: Any) -> dict[str, Any]:
    out = {k: row[k] for k in (c.name for c in _VIEW_COLUMNS) if k in row}
    out.pop("profile_picture_type", None)
    out["status"] = company_status(row)
    has_picture = row.get("profile_picture_type") is not None
    out["has_profile_picture"] = has_picture
    out["profile_picture_url"] = f"/admin/companies/{row['id']}/picture/" if has_picture else None
    return out


async def get_company_row(
    session: AsyncSession, company_id: uuid.UUID, *, for_update: bool = False, include_deleted: bool = True
) -> dict[str, Any]:
    stmt = sa.select(*_VIEW_COLUMNS).where(company.c.id == company_id)
    if not include_deleted:
        stmt = stmt.where(company.c.deleted_at.is_(None))
    if for_update:
        stmt = stmt.with_for_update()
    row = (await session.execute(stmt)).mappings().first()
    if row is None:
        raise not_found("company")
    return dict(row)


async def require_live_company(session: AsyncSession, company_id: uuid.UUID) -> dict[str, Any]:
    """A company that exists and is not deleted (404 otherwise; RLS hides other companies too)."""
    return await get_company_row(session, company_id, include_deleted=False)


async def directory_groups_of(session: AsyncSession, company_id: uuid.UUID) -> list[dict[str, Any]]:
    g = directory_group
    rows = (
        (
            await session.execute(
                sa.select(g.c.ldap_group, g.c.tenant_role, g.c.permissions)
                .where(g.c.company_id == company_id)
                .order_by(sa.func.lower(g.c.ldap_group))
            )
        )
        .mappings()
        .all()
    )
    return [dict(r) for r in rows]


async def name_taken(session: AsyncSession, name: str, *, except_id: uuid.UUID | None = None) -> bool:
    stmt = sa.select(company.c.id).where(
        sa.func.lower(company.c.name) == name.lower(), company.c.deleted_at.is_(None)
    )
    if except_id is not None:
        stmt = stmt.where(company.c.id != except_id)
    return (await session.execute(stmt.limit(1))).first() is not None


def _name_conflict(name: str) -> ApiError:
    return ApiError(409, "company_name_taken", f"a company named {name!r} already exists", {"field": "name"})


# --- writing ---------------------------------------------------------------------------------------
async def publish_company_changed(tx: Tx, company_id: uuid.UUID) -> None:
    row = await get_company_row(tx.session, company_id)
    groups = await directory_groups_of(tx.session, company_id)
    payload = CompanyChanged(
        company_id=str(company_id),
        name=row["name"],
        active=row["is_active"] and row["deleted_at"] is None,
        deleted=row["deleted_at"] is not None,
        directory_groups=[DirectoryGroupRole(**g) for g in groups],
        changed_at=datetime.now(UTC),
    )
    await tx.publish("tenant.company.changed", payload, subject=str(company_id))


async def replace_directory_groups(
    session: AsyncSession, company_id: uuid.UUID, groups: list[DirectoryGroupIn]
) -> None:
    seen: set[str] = set()
    for i, g in enumerate(groups):
        key = g.ldap_group.lower()
        if key in seen:
            raise invalid(["body", "directory_groups", str(i), "ldap_group"], "the same group appears twice")
        seen.add(key)
    if seen:
        clash = (
            (
                await session.execute(
                    sa.select(directory_group.c.ldap_group).where(
                        sa.func.lower(directory_group.c.ldap_group).in_(seen),
                        directory_group.c.company_id != company_id,
                    )
                )
            )
            .scalars()
            .first()
        )
        if clash is not None:
            raise ApiError(
                409,
                "directory_group_taken",
                f"the directory group {clash!r} is mapped to another company",
                {"ldap_group": clash},
            )
    await session.execute(sa.delete(directory_group).where(directory_group.c.company_id == company_id))
    if groups:
        await session.execute(
            sa.insert(directory_group).values(
                [
                    {
                        "id": uuid.uuid4(),
                        "company_id": company_id,
                        "ldap_group": g.ldap_group,
                        "tenant_role": g.tenant_role.value,
                        "permissions": [p.value for p in g.permissions]
                        if g.permissions is not None
                        else DEFAULT_PERMISSIONS[TenantRole(g.tenant_role)],
                    }
                    for g in groups
                ]
            )
        )


async def create_company(tx: Tx, body: CompanyCreate) -> uuid.UUID:
    if await name_taken(tx.session, body.name):
        raise _name_conflict(body.name)
    company_id = uuid.uuid4()
    values = body.model_dump(exclude={"directory_groups"})
    try:
        async with tx.session.begin_nested():
            await tx.session.execute(
                sa.insert(company).values(
                    id=company_id,
                    created_by=tx.principal.sub,
                    modified_by=tx.principal.sub,
                    is_active=True,
                    **values,
                )
            )
    except IntegrityError:
        raise _name_conflict(body.name) from None
    await replace_directory_groups(tx.session, company_id, body.directory_groups)
    await publish_company_changed(tx, company_id)
    return company_id


async def update_company(tx: Tx, company_id: uuid.UUID, body: CompanyUpdate) -> None:
    changes = body.model_dump(exclude_unset=True)
    if not tx.principal.is_admin:
        forbidden = sorted(ADMIN_ONLY_FIELDS & changes.keys())
        if forbidden:
            raise ApiError(
                403, "admin_required", "only administrators change these fields", {"fields": forbidden}
            )
    for key in ("name", "is_default_sla", "is_default_threat_intel"):
        if key in changes and changes[key] is None:
            raise invalid(["body", key], "must not be null")
    row = await get_company_row(tx.session, company_id, for_update=True, include_deleted=False)
    groups = changes.pop("directory_groups", None)
    if (
        "name" in changes
        and changes["name"].lower() != row["name"].lower()
        and await name_taken(tx.session, changes["name"], except_id=company_id)
    ):
        raise _name_conflict(changes["name"])
    if changes:
        try:
            async with tx.session.begin_nested():
                await tx.session.execute(
                    sa.update(company)
                    .where(company.c.id == company_id)
                    .values(**changes, modified_by=tx.principal.sub, updated_at=sa.func.now())
                )
        except IntegrityError:
            raise _name_conflict(changes.get("name", "")) from None
    if groups is not None:
        await replace_directory_groups(tx.session, company_id, body.directory_groups or [])
    if changes or groups is not None:
        await publish_company_changed(tx, company_id)


async def _set_ti_integrations(tx: Tx, company_id: uuid.UUID, *, disable: bool) -> None:
    """A deleted company's threat-intelligence integration stops; it resumes (to be re-tested) on restore."""
    from soc_tenant.integrations.views import publish_integration_changed

    i = integration
    where = [i.c.company_id == company_id, i.c.deleted_at.is_(None)]
    where += (
        [i.c.status != "disabled"]
        if disable
        else [i.c.status == "disabled", i.c.status_message == COMPANY_DELETED]
    )
    ids = (
        (
            await tx.session.execute(
                sa.update(i)
                .where(*where)
                .values(
                    status="disabled" if disable else "pending",
                    status_message=COMPANY_DELETED if disable else None,
                    status_changed_at=sa.func.now(),
                    updated_at=sa.func.now(),
                    modified_by=tx.principal.sub,
                )
                .returning(i.c.id)
            )
        )
        .scalars()
        .all()
    )
    for integration_id in ids:
        await publish_integration_changed(tx, integration_id)


async def delete_company(tx: Tx, company_id: uuid.UUID) -> None:
    """Soft delete: the company's users are disabled (through auth, retried while auth is down), its
    data is no longer attributed to it (mappings deactivated, never deleted); nothing stored is lost."""
    row = await get_company_row(tx.session, company_id, for_update=True)
    if row["deleted_at"] is not None:
        return
    await tx.session.execute(
        sa.update(company)
        .where(company.c.id == company_id)
        .values(
            deleted_at=sa.func.now(),
            deleted_by=tx.principal.sub,
            is_active=False,
            updated_at=sa.func.now(),
            modified_by=tx.principal.sub,
        )
    )
    for table in MAPPING_TABLES:
        await tx.session.execute(
            sa.update(table)
            .where(table.c.company_id == company_id, table.c.active)
            .values(active=False, inactive_reason=COMPANY_DELETED, updated_at=sa.func.now())
        )
    await _set_ti_integrations(tx, company_id, disable=True)
    await _disable_users_after_commit(tx, company_id)
    await publish_company_changed(tx, company_id)


async def inactivate_company(tx: Tx, company_id: uuid.UUID) -> None:
    """Inactive: its users cannot log in; its data keeps flowing (nothing is missing on reactivation)."""
    row = await get_company_row(tx.session, company_id, for_update=True, include_deleted=False)
    if not row["is_active"]:
        return
    await tx.session.execute(
        sa.update(company)
        .where(company.c.id == company_id)
        .values(is_active=False, updated_at=sa.func.now(), modified_by=tx.principal.sub)
    )
    await _disable_users_after_commit(tx, company_id)
    await publish_company_changed(tx, company_id)


async def reactivate_company(tx: Tx, company_id: uuid.UUID) -> None:
    """Back to active, from inactive or deleted (a deleted company gets its mappings back)."""
    row = await get_company_row(tx.session, company_id, for_update=True)
    if row["is_active"] and row["deleted_at"] is None:
        return
    if row["deleted_at"] is not None:
        if await name_taken(tx.session, row["name"], except_id=company_id):
            raise ApiError(
                409,
                "company_name_taken",
                f"another company is now named {row['name']!r}; rename it before restoring this one",
                {"field": "name"},
            )
        for table in MAPPING_TABLES:
            await tx.session.execute(
                sa.update(table)
                .where(table.c.company_id == company_id, table.c.inactive_reason == COMPANY_DELETED)
                .values(active=True, inactive_reason=None, updated_at=sa.func.now())
            )
        await _set_ti_integrations(tx, company_id, disable=False)
    await tx.session.execute(
        sa.update(company)
        .where(company.c.id == company_id)
        .values(
            is_active=True,
            deleted_at=None,
            deleted_by=None,
            updated_at=sa.func.now(),
            modified_by=tx.principal.sub,
        )
    )
    action = await pending.enqueue(tx.session, pending.ENABLE_COMPANY_USERS, company_id)
    tx.on_commit(lambda: pending.run(tx.app, [action]))
    await publish_company_changed(tx, company_id)


async def _disable_users_after_commit(tx: Tx, company_id: uuid.UUID) -> None:
    action = await pending.enqueue(tx.session, pending.DISABLE_COMPANY_USERS, company_id)
    tx.on_commit(lambda: pending.run(tx.app, [action]))


# --- picture ---------------------------------------------------------------------------------------
def sniff_image(data: bytes) -> str | None:
    """The image type from its magic bytes (never from the file name or the declared type)."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


async def read_upload(request: Request, limit: int) -> bytes:
    """The single file of a multipart upload, at most ``limit`` bytes (413 beyond, 400/422 if absent)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit + 64 * 1024:
        raise ApiError(
            413, "payload_too_large", f"the picture must be at most {limit} bytes", {"max_bytes": limit}
        )
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise ApiError(
            415, "unsupported_media_type", "send the picture as multipart/form-data (field 'file')"
        )
    try:
        form = await request.form(max_files=1, max_fields=10)
    except Exception:  # a broken multipart body is the caller's error, never a 500
        raise ApiError(400, "bad_request", "the multipart body cannot be parsed") from None
    try:
        upload = form.get("file") or next((v for v in form.values() if hasattr(v, "read")), None)
        if upload is None or not hasattr(upload, "read"):
            raise invalid(["body", "file"], "a file field named 'file' is required", "missing")
        data = await upload.read(limit + 1)
    finally:
        await form.close()
    if len(data) > limit:
        raise ApiError(
            413, "payload_too_large", f"the picture must be at most {limit} bytes", {"max_bytes": limit}
        )
    if not data:
        raise invalid(["body", "file"], "the file is empty")
    return data


# --- routes ----------------------------------------------------------------------------------------
SORTS = {
    "name": sa.func.lower(company.c.name),
    "created_at": company.c.created_at,
    "updated_at": company.c.updated_at,
}


@router.get("/admin/companies/", response_model=Page[Company])
async def list_companies(
    tx: ControlTx,
    principal: ManagerReader,
    paging: Paging,
    q: SearchText = None,
    status: Annotated[
        Literal["active", "inactive", "deleted", "all", "current"],
        Query(description="current = active and inactive (not deleted)"),
    ] = "current",
    sort: Annotated[
        Literal["name", "-name", "created_at", "-created_at", "updated_at", "-updated_at"], Query()
    ] = "name",
) -> dict[str, Any]:
    stmt = sa.select(*_VIEW_COLUMNS)
    own = scoped_company(principal, None)
    if own is not None:
        stmt = stmt.where(company.c.id == own)
    if q:
        stmt = stmt.where(company.c.name.ilike(f"%{_like(q)}%", escape="\\"))
    stmt = _status_filter(stmt, status)
    total = (await tx.session.execute(sa.select(sa.func.count()).select_from(stmt.subquery()))).scalar_one()
    column = SORTS[sort.lstrip("-")]
    stmt = stmt.order_by(column.desc() if sort.startswith("-") else column, company.c.id)
    rows = (await tx.session.execute(stmt.limit(paging.limit).offset(paging.offset))).mappings().all()
    return page([company_view(r) for r in rows], total, paging)


def _status_filter(stmt: Any, status: str) -> Any:
    if status == "active":
        return stmt.where(company.c.deleted_at.is_(None), company.c.is_active)
    if status == "inactive":
        return stmt.where(company.c.deleted_at.is_(None), ~company.c.is_active)
    if status == "deleted":
        return stmt.where(company.c.deleted_at.is_not(None))
    if status == "current":
        return stmt.where(company.c.deleted_at.is_(None))
    return stmt


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@router.get("/admin/companies/name-available/", response_model=NameAvailability)
async def company_name_available(
    tx: ControlTx,
    principal: AdminReader,
    name: Annotated[str, Query(min_length=1, max_length=200)],
) -> dict[str, Any]:
    if not storable(name):
        raise invalid(["query", "name"], "must not contain NUL or lone surrogates")
    clean = name.strip()
    if not clean:
        raise invalid(["query", "name"], "must not be blank")
    return {"name": clean, "available": not await name_taken(tx.session, clean)}


@router.post("/admin/companies/", status_code=201, response_model=CompanyDetail)
async def create_company_route(tx: ControlTx, principal: AdminWriter, body: CompanyCreate) -> dict[str, Any]:
    company_id = await create_company(tx, body)
    view = await company_detail(tx.session, company_id)
    await audit.record(tx, "company.created", "company", company_id, company_id=company_id, after=view)
    return view


async def company_detail(session: AsyncSession, company_id: uuid.UUID) -> dict[str, Any]:
    view = company_view(await get_company_row(session, company_id))
    view["directory_groups"] = await directory_groups_of(session, company_id)
    return view


@router.get("/admin/companies/{company_id}/", response_model=CompanyDetail)
async def get_company_route(tx: ControlTx, principal: ManagerReader, company_id: CompanyId) -> dict[str, Any]:
    return await company_detail(tx.session, scoped_company(principal, company_id))


@router.put("/admin/companies/{company_id}/", response_model=CompanyDetail)
async def update_company_route(
    tx: ControlTx, principal: ManagerWriter, company_id: CompanyId, body: CompanyUpdate
) -> dict[str, Any]:
    company_id = scoped_company(principal, company_id)
    before = await company_detail(tx.session, company_id)
    await update_company(tx, company_id, body)
    view = await company_detail(tx.session, company_id)
    await audit.record(
        tx, "company.updated", "company", company_id, company_id=company_id, before=before, after=view
    )
    return view


@router.delete("/admin/companies/{company_id}/", status_code=204)
async def delete_company_route(tx: ControlTx, principal: AdminWriter, company_id: CompanyId) -> Response:
    before = await company_detail(tx.session, company_id)
    await delete_company(tx, company_id)
    after = await company_detail(tx.session, company_id)
    await audit.record(
        tx, "company.deleted", "company", company_id, company_id=company_id, before=before, after=after
    )
    return Response(status_code=204)


@router.get("/admin/companies/{company_id}/directory-groups/", response_model=Page[DirectoryGroup])
async def get_directory_groups(
    tx: ControlTx, principal: ManagerReader, company_id: CompanyId
) -> dict[str, Any]:
    company_id = scoped_company(principal, company_id)
    await get_company_row(tx.session, company_id)
    return full_list(await directory_groups_of(tx.session, company_id))


@router.put("/admin/companies/{company_id}/directory-groups/", response_model=Page[DirectoryGroup])
async def put_directory_groups(
    tx: ControlTx, principal: AdminWriter, company_id: CompanyId, body: DirectoryGroupsIn
) -> dict[str, Any]:
    await require_live_company(tx.session, company_id)
    before = await directory_groups_of(tx.session, company_id)
    await replace_directory_groups(tx.session, company_id, body.items)
    await publish_company_changed(tx, company_id)
    after = await directory_groups_of(tx.session, company_id)
    await audit.record(
        tx,
        "company.directory_groups_replaced",
        "company",
        company_id,
        company_id=company_id,
        before={"directory_groups": before},
        after={"directory_groups": after},
    )
    return full_list(after)


@router.post("/admin/companies/{company_id}/picture/", response_model=PictureStored)
async def upload_picture(
    request: Request, tx: ControlTx, principal: ManagerWriter, company_id: CompanyId
) -> dict[str, Any]:
    company_id = scoped_company(principal, company_id)
    await require_live_company(tx.session, company_id)
    limit = int(request.app.state.settings.upload_max_bytes)
    data = await read_upload(request, limit)
    kind = sniff_image(data)
    if kind is None:
        raise ApiError(
            415,
            "unsupported_media_type",
            "the picture must be a PNG, JPEG or WebP image",
            {"accepted": ["image/png", "image/jpeg", "image/webp"]},
        )
    await tx.session.execute(
        sa.update(company)
        .where(company.c.id == company_id)
        .values(
            profile_picture=data,
            profile_picture_type=kind,
            profile_picture_updated_at=sa.func.now(),
            updated_at=sa.func.now(),
            modified_by=principal.sub,
        )
    )
    await audit.record(
        tx,
        "company.picture_uploaded",
        "company",
        company_id,
        company_id=company_id,
        after={"content_type": kind, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()},
    )
    return {
        "company_id": str(company_id),
        "content_type": kind,
        "size": len(data),
        "profile_picture_url": f"/admin/companies/{company_id}/picture/",
    }


@router.get(
    "/admin/companies/{company_id}/picture/",
    response_class=Response,
    responses=file_responses("image/png", "image/jpeg", "image/webp", description="The picture."),
)
async def get_picture(tx: ControlTx, principal: ManagerReader, company_id: CompanyId) -> Response:
    company_id = scoped_company(principal, company_id)
    row = (
        await tx.session.execute(
            sa.select(company.c.profile_picture, company.c.profile_picture_type).where(
                company.c.id == company_id
            )
        )
    ).first()
    if row is None:
        raise not_found("company")
    if row.profile_picture is None:
        raise ApiError(404, "no_picture", "this company has no profile picture")
    return Response(
        content=bytes(row.profile_picture),
        media_type=row.profile_picture_type,
        headers={
            "Cache-Control": "private, max-age=300",
            "X-Content-Type-Options": "nosniff",
            "Content-Disposition": "inline",
        },
    )


@router.delete("/admin/companies/{company_id}/picture/", status_code=204)
async def delete_picture(tx: ControlTx, principal: ManagerWriter, company_id: CompanyId) -> Response:
    company_id = scoped_company(principal, company_id)
    await require_live_company(tx.session, company_id)
    had = (
        await tx.session.execute(
            sa.select(company.c.profile_picture_type).where(
                company.c.id == company_id, company.c.profile_picture.is_not(None)
            )
        )
    ).scalar_one_or_none()
    if had is not None:
        await audit.record(
            tx,
            "company.picture_deleted",
            "company",
            company_id,
            company_id=company_id,
            before={"content_type": had},
        )
    await tx.session.execute(
        sa.update(company)
        .where(company.c.id == company_id)
        .values(
            profile_picture=None,
            profile_picture_type=None,
            profile_picture_updated_at=sa.func.now(),
            updated_at=sa.func.now(),
            modified_by=principal.sub,
        )
    )
    return Response(status_code=204)
