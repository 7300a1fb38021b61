"""How long the read model keeps a company's growing vendor records (offenses, incidents, EPS
and metric samples): the deployment's ``SOC_TENANT_RECORD_RETENTION_DAYS`` unless the company has its own.
Applied by the read model's maintenance (``soc_tenant.readmodel.partitions``)."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter
from pydantic import Field
from soc_shared.api import ApiModel
from sqlalchemy.dialects.postgresql import insert as pg_insert

from soc_tenant.audit.views import record
from soc_tenant.control.deps import (
    AdminWriter,
    CompanyId,
    ControlTx,
    ManagerReader,
    not_found,
    scoped_company,
)
from soc_tenant.tables import company, record_retention

router = APIRouter(tags=["companies"])


class CompanyRecordRetention(ApiModel):
    company_id: uuid.UUID
    days: int


class RecordRetention(ApiModel):
    """How long offenses, incidents, EPS and metric samples are kept after their vendor time."""

    default_days: int = Field(description="the deployment's retention (0: for ever)")
    companies: list[CompanyRecordRetention] = Field(description="companies with their own retention")


class RecordRetentionBody(ApiModel):
    days: int | None = Field(
        ge=1, le=36500, description="the company's own retention in days; null: the deployment's"
    )


@router.get("/admin/record-retention/", response_model=RecordRetention)
async def get_record_retention(tx: ControlTx, principal: ManagerReader) -> dict[str, Any]:
    """The deployment's retention of vendor records and the companies' own (a tenant administrator
    sees their own)."""
    r = record_retention.c
    where = []
    scope = scoped_company(tx.principal, None)
    if scope is not None:
        where.append(r.company_id == scope)
    rows = (
        await tx.session.execute(sa.select(r.company_id, r.days).where(*where).order_by(r.company_id))
    ).all()
    return {
        "default_days": tx.app.state.settings.record_retention_days,
        "companies": [{"company_id": x.company_id, "days": x.days} for x in rows],
    }


@router.put("/admin/companies/{company_id}/record-retention/", response_model=RecordRetention)
async def put_record_retention(
    tx: ControlTx, principal: AdminWriter, company_id: CompanyId, body: RecordRetentionBody
) -> dict[str, Any]:
    """Set a company's own retention of vendor records (``days``), or return it to the
    deployment's (``null``). Records past it are removed by the next maintenance round."""
    if (await tx.session.execute(sa.select(company.c.id).where(company.c.id == company_id))).first() is None:
        raise not_found("company")
    r = record_retention.c
    before = (
        await tx.session.execute(sa.select(r.days).where(r.company_id == company_id))
    ).scalar_one_or_none()
    if body.days is None:
        await tx.session.execute(sa.delete(record_retention).where(r.company_id == company_id))
    else:
        stmt = pg_insert(record_retention).values(company_id=company_id, days=body.days)
        await tx.session.execute(
            stmt.on_conflict_do_update(
                index_elements=["company_id"], set_={"days": body.days, "updated_at": sa.func.now()}
            )
        )
    await record(
        tx,
        "company.record_retention_updated",
        "company",
        company_id,
        company_id=company_id,
        before={"record_retention_days": before},
        after={"record_retention_days": body.days},
    )
    return await get_record_retention(tx, principal)
