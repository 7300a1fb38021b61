"""QRadar data in the read model (foundation slice: domains)."""

from __future__ import annotations

from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, FastAPI, Query
from sqlalchemy.dialects.postgresql import JSONB, insert

from soc_shared.bus import BatchConsumer, Delivery
from soc_shared.db import Database
from soc_shared.events import SiemDomain
from soc_shared.security import CurrentPrincipal, company_scope
from soc_tenant.db import ScopedSession

md = sa.MetaData()
qradar_domain = sa.Table(
    "qradar_domain", md,
    sa.Column("integration_id", sa.Text, primary_key=True),
    sa.Column("domain_id", sa.BigInteger, primary_key=True),
    sa.Column("name", sa.Text),
    sa.Column("description", sa.Text),
    sa.Column("deleted", sa.Boolean),
    sa.Column("details", JSONB),
    sa.Column("event_id", sa.Text),
    sa.Column("updated_at", sa.DateTime(timezone=True)),
)
qradar_mapping = sa.Table(
    "qradar_mapping", md,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("company_id", sa.Uuid),
    sa.Column("integration_id", sa.Text),
    sa.Column("domain_id", sa.BigInteger),
    sa.Column("contracted_volume_type", sa.Text),
    sa.Column("contracted_volume", sa.Numeric),
)

router = APIRouter(prefix="/tenant", tags=["siem"])


async def upsert_domains(db: Database, deliveries: list[Delivery]) -> None:
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    for d in deliveries:
        domain = d.payload
        if not isinstance(domain, SiemDomain):
            continue
        key = (d.envelope.integrationid or "", domain.domain_id)
        row = {
            "integration_id": key[0], "domain_id": domain.domain_id, "name": domain.name,
            "description": domain.description, "deleted": domain.deleted,
            "details": {"tenant_id": domain.tenant_id, "event_collector_ids": domain.event_collector_ids,
                        "log_source_ids": domain.log_source_ids},
            "event_id": d.envelope.id, "updated_at": d.envelope.time,
        }
        if key not in rows or rows[key]["updated_at"] <= row["updated_at"]:
            rows[key] = row
    if not rows:
        return
    stmt = insert(qradar_domain).values(list(rows.values()))
    stmt = stmt.on_conflict_do_update(
        index_elements=["integration_id", "domain_id"],
        set_={c: stmt.excluded[c] for c in ("name", "description", "deleted", "details", "event_id", "updated_at")},
        where=qradar_domain.c.updated_at <= stmt.excluded.updated_at,
    )
    async with db.session() as session:
        await session.execute(stmt)


async def start_consumer(app: FastAPI) -> None:
    db: Database = app.state.db

    async def handle(deliveries: list[Delivery]) -> None:
        await upsert_domains(db, deliveries)

    consumer = BatchConsumer(app.state.bus, "tenant.siem.domains", ["siem.domain.upserted"], handle,
                             batch_size=app.state.settings.consumer_batch_size)
    await consumer.start()
    app.state.siem_domain_consumer = consumer


async def stop_consumer(app: FastAPI) -> None:
    consumer = getattr(app.state, "siem_domain_consumer", None)
    if consumer is not None:
        await consumer.stop()


@router.get("/qradar-tenants/")
async def list_qradar_tenants(
    session: ScopedSession,
    principal: CurrentPrincipal,
    company_id: Annotated[str | None, Query(description="admins: one company's domains")] = None,
    q: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    """QRadar domains (the seed's QRadar tenants): all for admins, the mapped ones for a company."""
    scope = company_scope(principal, company_id)
    d, m = qradar_domain, qradar_mapping
    stmt = sa.select(d.c.integration_id, d.c.domain_id, d.c.name, d.c.description, d.c.deleted, d.c.updated_at)
    if scope is not None or not principal.is_admin:
        mapped = sa.select(m.c.id).where(m.c.integration_id == d.c.integration_id, m.c.domain_id == d.c.domain_id)
        if scope is not None:
            mapped = mapped.where(m.c.company_id == sa.cast(scope, sa.Uuid))
        stmt = stmt.where(mapped.exists())
    if q:
        stmt = stmt.where(d.c.name.ilike(f"%{q}%"))
    total = (await session.execute(sa.select(sa.func.count()).select_from(stmt.subquery()))).scalar_one()
    rows = (await session.execute(stmt.order_by(d.c.name, d.c.domain_id).limit(limit).offset(offset))).mappings().all()
    return {"items": [dict(r) for r in rows], "total": total, "limit": limit, "offset": offset}
