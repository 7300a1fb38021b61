"""The audit trail: who changed what through the control plane, written in the same transaction as
the change (a change that fails writes nothing) and published as ``audit.recorded`` after the commit
through the outbox.

Routes call :func:`record` with the target's view before and after the change; only the fields
that changed are kept, and anything secret-looking is masked. The table is append-only for the API
role (INSERT and SELECT only; a trigger refuses UPDATE for every role and DELETE for all but the
retention purge) and row-level security keys on the company the change concerns, so a tenant
administrator reads their own company's records.

The store also files the other services' records (``audit.recorded`` from the auth service, written
to its outbox in the change's transaction) and every sign-in attempt (``auth.login.*``), once per
event id, so one view and one export answer "who did what" across the suite.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, FastAPI, Query, Request, Response
from loguru import logger
from pydantic import Field
from soc_shared.api import CSV, ApiModel, Page, file_responses
from soc_shared.audit import MASK, changes, mask, trace_id
from soc_shared.bus import BatchConsumer, Delivery
from soc_shared.context import request_id_var
from soc_shared.db import Database
from soc_shared.events import AuditRecorded, LoginAttempt
from soc_shared.loop import BackgroundLoop
from soc_shared.security import Principal
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from soc_tenant.control.deps import (
    AdminWriter,
    CompanyId,
    ControlTx,
    ManagerReader,
    Paging,
    Tx,
    client_address,
    invalid,
    not_found,
    page,
    scoped_company,
)
from soc_tenant.readmodel.common import csv_response
from soc_tenant.tables import audit_record, audit_retention, company, tenant_member

router = APIRouter(tags=["audit"])


__all__ = ["MASK", "changes", "mask", "record"]
CSV_LIMIT = 50_000
# Services whose audit.recorded events are filed (the tenant's own are written directly).
FILED_SOURCES = frozenset({"/auth"})


def _uuid_or_none(value: Any) -> uuid.UUID | None:
    if value is None:
        return None
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except ValueError:
        return None


def request_tx(request: Request, session: AsyncSession, principal: Principal) -> Tx:
    """A :class:`Tx` over a route's own session (routes that do not use ``ControlTx``), so that
    :func:`record` writes in that session's transaction; call ``await tx.committed()`` after the
    commit to publish the record's event at once (else the outbox relay does)."""
    tx = Tx(request.app, session, principal)
    tx.client_address = client_address(request)
    tx.forwarded_for = request.headers.get("x-forwarded-for") or None
    return tx


async def record(
    tx: Tx,
    action: str,
    target_type: str,
    target_id: Any,
    *,
    company_id: Any = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> int | None:
    """Write one audit record in ``tx`` (the change's own transaction) and stage its event. Given
    both sides and nothing differs (a repeated delete, an update to the same values), nothing
    changed and nothing is written."""
    b, a = changes(before, after)
    if before is not None and after is not None and not b and not a:
        return None
    p = tx.principal
    values = {
        "company_id": _uuid_or_none(company_id),
        "actor_id": p.sub,
        "actor_username": p.username,
        "actor_kind": p.kind,
        "actor_company_id": _uuid_or_none(p.company_id),
        "action": action,
        "target_type": target_type,
        "target_id": None if target_id is None else str(target_id),
        "before": b,
        "after": a,
        "client_address": tx.client_address,
        "forwarded_for": (tx.forwarded_for or None) and tx.forwarded_for[:512],
        "request_id": request_id_var.get(),
        "trace_id": trace_id(),
        "source": "tenant",
    }
    row = (
        await tx.session.execute(
            sa.insert(audit_record).values(**values).returning(audit_record.c.id, audit_record.c.at)
        )
    ).one()
    await tx.publish(
        "audit.recorded",
        AuditRecorded(
            id=row.id,
            at=row.at,
            **{
                k: (str(v) if isinstance(v, uuid.UUID) else v)
                for k, v in values.items()
                if k not in ("forwarded_for", "source")
            },
        ),
        subject=str(row.id),
    )
    return int(row.id)


# --- reading it back --------------------------------------------------------------------------------
class AuditRecord(ApiModel):
    """One change made through the portal."""

    id: int
    at: datetime
    company_id: uuid.UUID | None = Field(description="the company the change concerns (none: global)")
    actor_id: str
    actor_username: str
    actor_kind: str = Field(
        description="admin, tenant or service; for a sign-in: tenant (a company's user) or person"
    )
    actor_company_id: uuid.UUID | None
    action: str = Field(description="e.g. company.updated, integration.credentials_rotated")
    target_type: str
    target_id: str | None
    before: dict[str, Any] | None = Field(description="the changed fields before (secrets masked)")
    after: dict[str, Any] | None = Field(description="the changed fields after (secrets masked)")
    client_address: str | None
    forwarded_for: str | None = Field(description="X-Forwarded-For as received")
    request_id: str | None
    trace_id: str | None
    source: str = Field(description="the service that recorded it: tenant or auth (changes, sign-ins)")


_Text = Annotated[str | None, Query(max_length=200)]


def _filters(
    tx: Tx,
    actor: str | None,
    action: str | None,
    target_type: str | None,
    target_id: str | None,
    company_id: uuid.UUID | None,
    since: datetime | None,
    until: datetime | None,
    source: str | None = None,
) -> list[Any]:
    if since is not None and until is not None and since > until:
        raise invalid(["query", "from"], "must not be after 'to'")
    t = audit_record.c
    where: list[Any] = []
    scope = scoped_company(tx.principal, company_id)
    if scope is not None:
        where.append(t.company_id == scope)
    if actor:
        where.append(sa.or_(t.actor_id == actor, sa.func.lower(t.actor_username) == actor.lower()))
    if action:
        where.append(t.action == action)
    if target_type:
        where.append(t.target_type == target_type)
    if target_id:
        where.append(t.target_id == target_id)
    if source:
        where.append(t.source == source)
    if since is not None:
        where.append(t.at >= since)
    if until is not None:
        where.append(t.at < until)
    return where


@router.get("/admin/audit/", response_model=Page[AuditRecord])
async def list_audit(
    tx: ControlTx,
    principal: ManagerReader,
    paging: Paging,
    actor: _Text = None,
    action: _Text = None,
    target_type: _Text = None,
    target_id: _Text = None,
    company_id: uuid.UUID | None = None,
    since: Annotated[datetime | None, Query(alias="from")] = None,
    until: Annotated[datetime | None, Query(alias="to")] = None,
    source: _Text = None,
) -> dict[str, Any]:
    """Changes made through the portal and sign-in attempts (``auth.login.succeeded`` /
    ``auth.login.failed``), newest first. Admins see every record; a tenant administrator their own
    company's (row-level security). ``actor`` matches the user id or the username; ``source`` is the
    service (tenant, auth); ``from`` is inclusive, ``to`` exclusive."""
    where = _filters(tx, actor, action, target_type, target_id, company_id, since, until, source)
    t = audit_record.c
    total = (
        await tx.session.execute(sa.select(sa.func.count()).select_from(audit_record).where(*where))
    ).scalar_one()
    rows = (
        await tx.session.execute(
            sa.select(audit_record)
            .where(*where)
            .order_by(t.at.desc(), t.id.desc())
            .limit(paging.limit)
            .offset(paging.offset)
        )
    ).mappings()
    return page([dict(r) for r in rows], total, paging)


CSV_COLUMNS = [c.name for c in audit_record.columns]


@router.get(
    "/admin/audit/export.csv",
    response_class=Response,
    responses=file_responses(CSV, description="The filtered audit records as CSV (newest first)."),
)
async def export_audit(
    tx: ControlTx,
    principal: ManagerReader,
    actor: _Text = None,
    action: _Text = None,
    target_type: _Text = None,
    target_id: _Text = None,
    company_id: uuid.UUID | None = None,
    since: Annotated[datetime | None, Query(alias="from")] = None,
    until: Annotated[datetime | None, Query(alias="to")] = None,
    source: _Text = None,
) -> Response:
    """The same filters as the list; at most 50,000 records (narrow the time range for more)."""
    where = _filters(tx, actor, action, target_type, target_id, company_id, since, until, source)
    t = audit_record.c
    rows = (
        await tx.session.execute(
            sa.select(audit_record).where(*where).order_by(t.at.desc(), t.id.desc()).limit(CSV_LIMIT)
        )
    ).mappings()
    out = []
    for r in rows:
        row = dict(r)
        for key in ("before", "after"):
            row[key] = None if row[key] is None else json.dumps(row[key], sort_keys=True)
        out.append(row)
    return csv_response(CSV_COLUMNS, out, "audit")


# --- filing the other services' records and the sign-ins -------------------------------------------
def _filed_change(d: Delivery, p: AuditRecorded) -> dict[str, Any]:
    return {
        "at": p.at,
        "company_id": _uuid_or_none(p.company_id),
        "actor_id": p.actor_id[:200],
        "actor_username": p.actor_username[:255],
        "actor_kind": p.actor_kind[:32],
        "actor_company_id": _uuid_or_none(p.actor_company_id),
        "action": p.action[:200],
        "target_type": p.target_type[:100],
        "target_id": None if p.target_id is None else p.target_id[:200],
        # Masked again: the store never holds a secret, whoever sent the record.
        "before": mask(p.before),
        "after": mask(p.after),
        "client_address": (p.client_address or None) and p.client_address[:64],
        "request_id": (p.request_id or None) and p.request_id[:200],
        "trace_id": (p.trace_id or None) and p.trace_id[:64],
        "source": d.envelope.source.strip("/")[:64],
        "event_id": d.envelope.id,
    }


def _filed_login(d: Delivery, p: LoginAttempt, companies: dict[str, uuid.UUID]) -> dict[str, Any]:
    company_id = companies.get(p.user_id or "")
    return {
        "at": p.at,
        "company_id": company_id,
        "actor_id": p.user_id or "",
        "actor_username": p.username[:255],
        "actor_kind": "tenant" if company_id is not None else "person",
        "actor_company_id": company_id,
        "action": f"auth.login.{p.outcome}",
        "target_type": "user",
        "target_id": p.user_id,
        "before": None,
        "after": {"method": p.method, "reason": p.reason, "user_agent": p.user_agent},
        "client_address": p.client_ip,
        "request_id": None,
        "trace_id": None,
        "source": "auth",
        "event_id": d.envelope.id,
    }


async def file_records(db: Database, deliveries: list[Delivery]) -> int:
    """File ``audit.recorded`` events of other services and ``auth.login.*`` events in the audit
    store, each once (a re-delivered event id is skipped). Answers how many were new."""
    changes_: list[tuple[Delivery, AuditRecorded]] = []
    logins: list[tuple[Delivery, LoginAttempt]] = []
    for d in deliveries:
        source = d.envelope.source
        if isinstance(d.payload, AuditRecorded):
            if source in FILED_SOURCES:
                changes_.append((d, d.payload))
            elif source != "/tenant":  # ours are written in the change's own transaction
                logger.warning("audit.recorded from {!r} ignored", source[:64])
        elif isinstance(d.payload, LoginAttempt):
            if source == "/auth":
                logins.append((d, d.payload))
            else:
                logger.warning("{} from {!r} ignored", d.routing_key, source[:64])
    if not changes_ and not logins:
        return 0
    async with db.session() as session:
        companies: dict[str, uuid.UUID] = {}
        user_ids = {p.user_id for _, p in logins if p.user_id}
        if user_ids:
            m = tenant_member.c
            rows = await session.execute(sa.select(m.user_id, m.company_id).where(m.user_id.in_(user_ids)))
            companies = {r.user_id: r.company_id for r in rows}
        values = list(
            {
                v["event_id"]: v
                for v in [_filed_change(d, p) for d, p in changes_]
                + [_filed_login(d, p, companies) for d, p in logins]
            }.values()
        )
        # One cached statement, executed for many rows (not a statement compiled per batch).
        result = await session.execute(
            pg_insert(audit_record)
            .on_conflict_do_nothing(index_elements=["event_id"])
            .returning(audit_record.c.id),
            values,
        )
        return len(result.all())


async def start_consumer(app: FastAPI) -> BatchConsumer:
    async def handle(deliveries: list[Delivery]) -> None:
        await file_records(app.state.db, deliveries)

    consumer = BatchConsumer(
        app.state.bus,
        "tenant.control.audit",
        ["audit.recorded", "auth.login.succeeded", "auth.login.failed"],
        handle,
        batch_size=500,
    )
    await consumer.start()
    return consumer


# --- retention ----------------------------------------------------------------------------------------
async def purge(db: Database, default_days: int) -> int:
    """Delete the records older than their retention (a company's own, else ``default_days``; 0 keeps
    them). The only way a record is ever deleted."""
    async with db.session() as session:
        return int(
            (
                await session.execute(sa.text("SELECT audit_record_purge(:d)"), {"d": int(default_days)})
            ).scalar_one()
        )


def purge_loop(app: FastAPI, interval: float | None = None) -> BackgroundLoop:
    """The retention purge at start and every ``audit_purge_interval_seconds`` (or ``interval``),
    backing off while the database is away."""
    settings = app.state.settings

    async def step() -> None:
        purged = await purge(app.state.db, settings.audit_retention_days)
        if purged:
            logger.info("audit retention: {} records purged", purged)

    return BackgroundLoop(
        "tenant-audit-retention",
        step,
        interval=interval or settings.audit_purge_interval_seconds,
        immediate=True,
    )


class CompanyRetention(ApiModel):
    company_id: uuid.UUID
    days: int


class AuditRetention(ApiModel):
    """How long the audit store keeps records."""

    default_days: int = Field(description="the deployment's retention (0: for ever)")
    companies: list[CompanyRetention] = Field(description="companies with their own retention")


class RetentionBody(ApiModel):
    days: int | None = Field(
        ge=1, le=36500, description="the company's own retention in days; null: the deployment's"
    )


@router.get("/admin/audit/retention/", response_model=AuditRetention)
async def get_retention(tx: ControlTx, principal: ManagerReader) -> dict[str, Any]:
    """The deployment's retention and the companies' own (a tenant administrator sees their own)."""
    r = audit_retention.c
    where = []
    scope = scoped_company(tx.principal, None)
    if scope is not None:
        where.append(r.company_id == scope)
    rows = (
        await tx.session.execute(sa.select(r.company_id, r.days).where(*where).order_by(r.company_id))
    ).all()
    return {
        "default_days": tx.app.state.settings.audit_retention_days,
        "companies": [{"company_id": x.company_id, "days": x.days} for x in rows],
    }


@router.put("/admin/companies/{company_id}/audit-retention/", response_model=AuditRetention)
async def put_retention(
    tx: ControlTx, principal: AdminWriter, company_id: CompanyId, body: RetentionBody
) -> dict[str, Any]:
    """Set a company's own retention (``days``), or return it to the deployment's (``null``)."""
    if (await tx.session.execute(sa.select(company.c.id).where(company.c.id == company_id))).first() is None:
        raise not_found("company")
    r = audit_retention.c
    before = (
        await tx.session.execute(sa.select(r.days).where(r.company_id == company_id))
    ).scalar_one_or_none()
    if body.days is None:
        await tx.session.execute(sa.delete(audit_retention).where(r.company_id == company_id))
    else:
        stmt = pg_insert(audit_retention).values(company_id=company_id, days=body.days)
        await tx.session.execute(
            stmt.on_conflict_do_update(
                index_elements=["company_id"], set_={"days": body.days, "updated_at": sa.func.now()}
            )
        )
    await record(
        tx,
        "audit.retention_updated",
        "company",
        company_id,
        company_id=company_id,
        before={"retention_days": before},
        after={"retention_days": body.days},
    )
    return await get_retention(tx, principal)
