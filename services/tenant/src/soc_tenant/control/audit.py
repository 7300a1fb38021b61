"""The audit trail: who changed what through the control plane, written in the same transaction as
the change (a change that fails writes nothing) and published as ``audit.recorded`` after the commit
through the outbox.

Routes call :func:`record` with the target's view before and after the change; only the fields
that changed are kept, and anything secret-looking is masked. The table is append-only for the API
role (INSERT and SELECT only; a trigger refuses UPDATE for every role) and row-level security keys on
the company the change concerns, so a tenant administrator reads their own company's records.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Query, Response
from opentelemetry import trace
from pydantic import Field
from soc_shared.api import CSV, ApiModel, Page, file_responses
from soc_shared.context import request_id_var
from soc_shared.events import AuditRecorded

from soc_tenant.control.deps import ControlTx, ManagerReader, Paging, Tx, invalid, page, scoped_company
from soc_tenant.readmodel.common import csv_response
from soc_tenant.tables import audit_record

router = APIRouter(tags=["audit"])


MASK = "***"
_SECRET_KEY = re.compile(r"pass(word)?|secret|token|api_?key|private|credential|access_?key|auth", re.I)
# Facts about a secret that are not the secret (when it was rotated, which version, which kind).
_NOT_SECRET_SUFFIXES = ("_at", "_version", "_kind", "_count")
# Bookkeeping that changes with every write and says nothing about what was changed.
_NOISE = frozenset({"updated_at", "modified_at", "status_changed_at", "health_since"})
CSV_LIMIT = 50_000


def mask(value: Any, key: str = "") -> Any:
    """``value`` with every value under a secret-looking key replaced by ``***`` (recursively)."""
    if (
        key
        and _SECRET_KEY.search(key)
        and not key.endswith(_NOT_SECRET_SUFFIXES)
        and not isinstance(value, (bool, int, float))
        and value not in (None, "", [], {})
    ):
        return MASK
    if isinstance(value, dict):
        return {str(k): mask(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [mask(v) for v in value]
    return value


def _jsonable(value: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if value is None else json.loads(json.dumps(value, default=str))


def changes(
    before: dict[str, Any] | None, after: dict[str, Any] | None
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The fields that differ (both sides), masked; a create keeps the whole ``after``, a delete the
    whole ``before``."""
    b, a = _jsonable(before), _jsonable(after)
    if b is not None and a is not None:
        keys = [k for k in {**b, **a} if k not in _NOISE and b.get(k) != a.get(k)]
        b = {k: b.get(k) for k in keys}
        a = {k: a.get(k) for k in keys}
    else:
        b = None if b is None else {k: v for k, v in b.items() if k not in _NOISE}
        a = None if a is None else {k: v for k, v in a.items() if k not in _NOISE}
    return mask(b), mask(a)


def _trace_id() -> str | None:
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None


def _uuid_or_none(value: Any) -> uuid.UUID | None:
    if value is None:
        return None
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except ValueError:
        return None


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
        "trace_id": _trace_id(),
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
                if k != "forwarded_for"
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
    actor_kind: str = Field(description="admin, tenant or service")
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
) -> dict[str, Any]:
    """Changes made through the portal, newest first. Admins see every record; a tenant administrator
    their own company's (row-level security). ``actor`` matches the user id or the username;
    ``from`` is inclusive, ``to`` exclusive."""
    where = _filters(tx, actor, action, target_type, target_id, company_id, since, until)
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
) -> Response:
    """The same filters as the list; at most 50,000 records (narrow the time range for more)."""
    where = _filters(tx, actor, action, target_type, target_id, company_id, since, until)
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
