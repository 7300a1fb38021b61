"""The admin's tenant lifecycle (SEED-API admin section): create a tenant in one step (company, its
users through auth, mappings and contracted volumes, SLA choice, threat-intelligence integration),
tenant detail and settings, active / inactive lists, inactivate, reactivate, delete; the tools in
use per company; choices and the API version."""

from __future__ import annotations

import uuid
from decimal import Decimal
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Request, Response
from pydantic import Field
from soc_shared.api import Choice, Page
from sqlalchemy.ext.asyncio import AsyncSession

from soc_tenant.audit import views as audit
from soc_tenant.company.responses import Company
from soc_tenant.company.views import (
    CompanyCreate,
    CompanyUpdate,
    company_detail,
    company_view,
    create_company,
    delete_company,
    get_company_row,
    inactivate_company,
    reactivate_company,
    update_company,
)
from soc_tenant.control.deps import (
    AdminReader,
    AdminWriter,
    CompanyId,
    ControlTx,
    ManagerReader,
    Paging,
    Person,
    Tx,
    full_list,
    page,
    scoped_company,
)
from soc_tenant.control.models import (
    NO_CONTROL_CHARS,
    SLA_LEVEL_LABELS,
    VOLUME_TYPE_LABELS,
    SearchText,
    Strict,
    VolumeType,
    choices,
    text_rule,
)
from soc_tenant.control.tables import (
    company,
    integration,
    itsm_mapping,
    qradar_mapping,
    soar_mapping,
    tenant_member,
)
from soc_tenant.integrations.views import (
    IntegrationCreate,
    create_integration,
    integration_view,
    sync_reports_for,
)
from soc_tenant.mappings.views import (
    ITSM,
    QRADAR,
    SOAR,
    CollectorIds,
    Volume,
    create_mapping,
    mappings_of_company,
)
from soc_tenant.members.views import MemberCreate, create_member, members_of, undo_created_users
from soc_tenant.pending import service as pending
from soc_tenant.sla.views import CompanySlaIn, company_sla_view, load_defaults, replace_overrides
from soc_tenant.tenants.responses import (
    ApiVersion,
    CompanyTools,
    SlaLevelChoice,
    TenantDetail,
    TenantListItem,
)

router = APIRouter(tags=["tenants"])

AccountName = Annotated[str, text_rule(255), NO_CONTROL_CHARS]
InstanceName = Annotated[str, text_rule(100), NO_CONTROL_CHARS]


class TenantQradarMapping(Strict):
    integration_id: uuid.UUID
    domain_id: int = Field(ge=0, le=2**53)
    contracted_volume_type: VolumeType = VolumeType.EPS
    contracted_volume: Volume = Decimal(0)
    event_collector_ids: CollectorIds = []


class TenantSoarMapping(Strict):
    integration_id: uuid.UUID
    account: AccountName


class TenantItsmMapping(Strict):
    integration_id: uuid.UUID
    account_id: AccountName


class TenantThreatIntel(Strict):
    """The company's Cyware integration, created with the tenant."""

    instance_name: InstanceName
    base_url: str = Field(max_length=2048)
    port: int | None = Field(default=None, ge=1, le=65535)
    verify_tls: bool = True
    ca_pem: str | None = Field(default=None, max_length=65536)
    polling_interval_seconds: int = Field(default=300, ge=30, le=86400)
    credential_kind: Literal["SECRET_KEY_ACCESS_KEY"] = "SECRET_KEY_ACCESS_KEY"
    credentials: dict[str, Any]
    settings: dict[str, Any] = Field(default_factory=dict)


class TenantCreate(Strict):
    company: CompanyCreate
    users: list[MemberCreate] = Field(default_factory=list, max_length=100)
    qradar_mappings: list[TenantQradarMapping] = Field(default_factory=list, max_length=200)
    soar_mappings: list[TenantSoarMapping] = Field(default_factory=list, max_length=200)
    itsm_mappings: list[TenantItsmMapping] = Field(default_factory=list, max_length=200)
    sla: CompanySlaIn | None = None
    threat_intelligence: TenantThreatIntel | None = None


class TenantUpdate(Strict):
    company: CompanyUpdate | None = None
    sla: CompanySlaIn | None = None


# --- service ---------------------------------------------------------------------------------------
async def integrations_of_company(session: AsyncSession, company_id: uuid.UUID) -> list[dict[str, Any]]:
    """The integrations serving a company: through its active mappings, and its own threat intelligence."""
    ids = sa.union(
        *(
            sa.select(t.c.integration_id.label("iid")).where(t.c.company_id == company_id, t.c.active)
            for t in (qradar_mapping, soar_mapping, itsm_mapping)
        ),
        sa.select(sa.cast(integration.c.id, sa.Text).label("iid")).where(
            integration.c.company_id == company_id
        ),
    ).subquery()
    rows = (
        (
            await session.execute(
                sa.select(integration)
                .where(
                    sa.cast(integration.c.id, sa.Text).in_(sa.select(ids.c.iid)),
                    integration.c.deleted_at.is_(None),
                )
                .order_by(integration.c.integration_type, sa.func.lower(integration.c.instance_name))
            )
        )
        .mappings()
        .all()
    )
    found = [dict(r) for r in rows]
    reports = await sync_reports_for(session, [r["id"] for r in found])
    return [integration_view(r, reports.get(str(r["id"]), [])) for r in found]


async def tenant_detail(session: AsyncSession, company_id: uuid.UUID) -> dict[str, Any]:
    return {
        "company": await company_detail(session, company_id),
        "users": await members_of(session, company_id),
        "mappings": await mappings_of_company(session, company_id),
        "integrations": await integrations_of_company(session, company_id),
        "sla": await company_sla_view(session, company_id),
        "pending_actions": await pending.state(session, company_id),
    }


async def create_tenant(tx: Tx, body: TenantCreate, compensations: list[str]) -> uuid.UUID:
    company_id = await create_company(tx, body.company)
    for n, m in enumerate(body.qradar_mappings):
        await create_mapping(
            tx, QRADAR, {"company_id": company_id, **m.model_dump()}, loc=["body", "qradar_mappings", str(n)]
        )
    for n, sm in enumerate(body.soar_mappings):
        await create_mapping(
            tx, SOAR, {"company_id": company_id, **sm.model_dump()}, loc=["body", "soar_mappings", str(n)]
        )
    for n, im in enumerate(body.itsm_mappings):
        await create_mapping(
            tx, ITSM, {"company_id": company_id, **im.model_dump()}, loc=["body", "itsm_mappings", str(n)]
        )
    if body.sla is not None:
        await _apply_sla(tx, company_id, body.sla)
    if body.threat_intelligence is not None:
        ti = body.threat_intelligence
        await create_integration(
            tx,
            IntegrationCreate(
                integration_type="THREAT_INTELLIGENCE",
                subtype="CYWARE",
                company_id=company_id,
                **ti.model_dump(),
            ),
        )
    # Users last: everything of ours is validated before auth is asked to create anyone.
    for user in body.users:
        await create_member(tx, company_id, user, compensations=compensations)
    return company_id


async def _apply_sla(tx: Tx, company_id: uuid.UUID, sla: CompanySlaIn) -> None:
    if sla.is_default_sla is not None:
        await tx.session.execute(
            sa.update(company)
            .where(company.c.id == company_id)
            .values(is_default_sla=sla.is_default_sla, updated_at=sa.func.now())
        )
    if sla.overrides is not None:
        await replace_overrides(
            tx.session, company_id, sla.overrides, tx.principal.sub, ["body", "sla", "overrides"]
        )


async def _tenant_list(tx: Tx, paging: Any, *, inactive: bool, q: str | None) -> dict[str, Any]:
    c = company
    users = (
        sa.select(sa.func.count())
        .select_from(tenant_member)
        .where(tenant_member.c.company_id == c.c.id, tenant_member.c.active)
        .scalar_subquery()
    )
    mapped = sum(
        (
            sa.select(sa.func.count())
            .select_from(t)
            .where(t.c.company_id == c.c.id, t.c.active)
            .scalar_subquery()
            for t in (qradar_mapping, soar_mapping, itsm_mapping)
        ),
        sa.literal(0),
    )
    columns = [col for col in c.c if col.name != "profile_picture"]
    stmt = sa.select(*columns, users.label("user_count"), mapped.label("mapping_count"))
    if inactive:
        stmt = stmt.where(sa.or_(c.c.deleted_at.is_not(None), ~c.c.is_active))
    else:
        stmt = stmt.where(c.c.deleted_at.is_(None), c.c.is_active)
    if q:
        stmt = stmt.where(
            c.c.name.ilike(
                "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%", escape="\\"
            )
        )
    total = (await tx.session.execute(sa.select(sa.func.count()).select_from(stmt.subquery()))).scalar_one()
    rows = (
        (
            await tx.session.execute(
                stmt.order_by(sa.func.lower(c.c.name), c.c.id).limit(paging.limit).offset(paging.offset)
            )
        )
        .mappings()
        .all()
    )
    items = []
    for r in rows:
        view = company_view(r)
        view["user_count"], view["mapping_count"] = r["user_count"], r["mapping_count"]
        items.append(view)
    return page(items, total, paging)


# --- routes ----------------------------------------------------------------------------------------
@router.post("/admin/tenants/", status_code=201, response_model=TenantDetail)
async def create_tenant_route(tx: ControlTx, principal: AdminWriter, body: TenantCreate) -> dict[str, Any]:
    """Company, users (created by auth), mappings with contracted volumes, SLA and threat intelligence
    in one step: our side is one transaction; users auth created for a tenant that then fails are
    removed again."""
    created: list[str] = []
    try:
        company_id = await create_tenant(tx, body, created)
        view = await tenant_detail(tx.session, company_id)
        await audit.record(tx, "tenant.created", "company", company_id, company_id=company_id, after=view)
        return view
    except Exception:
        if created:
            await undo_created_users(tx.app, created)
        raise


@router.get("/admin/tenants/", response_model=Page[TenantListItem])
async def list_tenants(
    tx: ControlTx, principal: AdminReader, paging: Paging, q: SearchText = None
) -> dict[str, Any]:
    return await _tenant_list(tx, paging, inactive=False, q=q)


@router.get("/admin/tenants/inactive/", response_model=Page[TenantListItem])
async def list_inactive_tenants(
    tx: ControlTx, principal: AdminReader, paging: Paging, q: SearchText = None
) -> dict[str, Any]:
    """Inactive and deleted companies (the seed's deleted tenants)."""
    return await _tenant_list(tx, paging, inactive=True, q=q)


@router.get("/admin/tenants/{company_id}/", response_model=TenantDetail)
async def get_tenant(tx: ControlTx, principal: ManagerReader, company_id: CompanyId) -> dict[str, Any]:
    company_id = scoped_company(principal, company_id)
    await get_company_row(tx.session, company_id)
    return await tenant_detail(tx.session, company_id)


@router.put("/admin/tenants/{company_id}/", response_model=TenantDetail)
async def update_tenant(
    tx: ControlTx, principal: AdminWriter, company_id: CompanyId, body: TenantUpdate
) -> dict[str, Any]:
    await get_company_row(tx.session, company_id, include_deleted=False)
    before = await tenant_detail(tx.session, company_id)
    if body.company is not None:
        await update_company(tx, company_id, body.company)
    if body.sla is not None:
        await _apply_sla(tx, company_id, body.sla)
    view = await tenant_detail(tx.session, company_id)
    await audit.record(
        tx, "tenant.updated", "company", company_id, company_id=company_id, before=before, after=view
    )
    return view


@router.post("/admin/tenants/{company_id}/inactivate/", response_model=Company)
async def inactivate_tenant(tx: ControlTx, principal: AdminWriter, company_id: CompanyId) -> dict[str, Any]:
    before = company_view(await get_company_row(tx.session, company_id))
    await inactivate_company(tx, company_id)
    view = company_view(await get_company_row(tx.session, company_id))
    await audit.record(
        tx, "company.inactivated", "company", company_id, company_id=company_id, before=before, after=view
    )
    return view


@router.post("/admin/tenants/{company_id}/reactivate/", response_model=Company)
async def reactivate_tenant(tx: ControlTx, principal: AdminWriter, company_id: CompanyId) -> dict[str, Any]:
    before = company_view(await get_company_row(tx.session, company_id))
    await reactivate_company(tx, company_id)
    view = company_view(await get_company_row(tx.session, company_id))
    await audit.record(
        tx, "company.reactivated", "company", company_id, company_id=company_id, before=before, after=view
    )
    return view


@router.delete("/admin/tenants/{company_id}/", status_code=204)
async def delete_tenant(tx: ControlTx, principal: AdminWriter, company_id: CompanyId) -> Response:
    before = company_view(await get_company_row(tx.session, company_id))
    await delete_company(tx, company_id)
    after = company_view(await get_company_row(tx.session, company_id))
    await audit.record(
        tx, "company.deleted", "company", company_id, company_id=company_id, before=before, after=after
    )
    return Response(status_code=204)


@router.get("/admin/summary/tools/", response_model=Page[CompanyTools])
async def tools_in_use(
    tx: ControlTx, principal: AdminReader, paging: Paging, company_id: uuid.UUID | None = None
) -> dict[str, Any]:
    """Which integrations serve each company (through its mappings and its threat intelligence)."""
    stmt = sa.select(company.c.id, company.c.name, company.c.is_active).where(company.c.deleted_at.is_(None))
    if company_id is not None:
        stmt = stmt.where(company.c.id == company_id)
    total = (await tx.session.execute(sa.select(sa.func.count()).select_from(stmt.subquery()))).scalar_one()
    companies = (
        await tx.session.execute(
            stmt.order_by(sa.func.lower(company.c.name), company.c.id)
            .limit(paging.limit)
            .offset(paging.offset)
        )
    ).all()
    items = []
    for cid, name, active in companies:
        tools = await integrations_of_company(tx.session, cid)
        items.append(
            {
                "company_id": cid,
                "company_name": name,
                "is_active": active,
                "tools": [
                    {
                        k: t[k]
                        for k in (
                            "id",
                            "integration_type",
                            "subtype",
                            "instance_name",
                            "status",
                            "last_sync_at",
                        )
                    }
                    for t in tools
                ],
                "types": sorted({t["integration_type"] for t in tools}),
            }
        )
    return page(items, total, paging)


@router.get("/admin/choices/volume-types/", response_model=Page[Choice])
async def volume_types(principal: Person) -> dict[str, Any]:
    return full_list(choices(VOLUME_TYPE_LABELS))


@router.get("/admin/choices/sla-levels/", response_model=Page[SlaLevelChoice])
async def sla_levels(tx: ControlTx, principal: Person) -> dict[str, Any]:
    defaults = await load_defaults(tx.session)
    return full_list(
        [
            {
                **c,
                "default": {
                    k: v
                    for k, v in defaults.get(c["value"], {}).items()
                    if k in ("tta_minutes", "ttn_minutes", "ttdn_minutes")
                },
            }
            for c in choices(SLA_LEVEL_LABELS)
        ]
    )


@router.get("/admin/version/", response_model=ApiVersion)
async def api_version(request: Request, principal: Person) -> dict[str, Any]:
    try:
        package = version("soc-tenant")
    except PackageNotFoundError:
        package = "unknown"
    return {"service": "tenant", "api_version": request.app.version, "version": package}
