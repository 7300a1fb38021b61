"""Which SOAR incidents get a ServiceDesk Plus ticket: a rule per company, optionally per SOAR
integration or per XSOAR account, editable by admins and audited.

A rule names the incident priorities (``P1``..``P4``; the original product's labels such as
``P1 Critical`` and its level numbers 4..1 are understood and stored as ``P1``..``P4``), the
incident statuses and, optionally, the incident types (none: any type). The most specific rule
applies: this XSOAR account of this SOAR integration, then this SOAR integration, then the
company's own, then the default (today's rule: P1 and P2, pending or active, any type).
itsm-ingest reads the rule with each route (``GET /internal/ticket-routing``).

Every change is written to ``ticket_policy_audit`` (who, when, the rule before and after, the
request id) in the same transaction as the change.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field, field_validator
from soc_shared.context import request_id_var
from sqlalchemy.ext.asyncio import AsyncSession

from soc_tenant.audit import views as audit
from soc_tenant.company.views import require_live_company
from soc_tenant.control.deps import AdminWriter, CompanyId, ControlTx, ManagerReader, invalid, not_found
from soc_tenant.control.models import Strict, text
from soc_tenant.tables import ticket_policy, ticket_policy_audit

router = APIRouter(tags=["ticket policy"])


Status = Literal["pending", "active", "closed", "archived"]
DEFAULT_RULE: dict[str, Any] = {"priorities": ["P1", "P2"], "statuses": ["pending", "active"], "types": None}

# "P1", "p1", "P1 Critical", "P2 - High", "Critical" (the original's labels), 4..1 (its level numbers).
_P_LABEL = re.compile(r"^\s*p\s*([1-4])(?:\s*[-:–]?\s*(?:critical|high|medium|low))?\s*$", re.IGNORECASE)
_NAMES = {"critical": "P1", "high": "P2", "medium": "P3", "low": "P4"}
_LEVELS = {4: "P1", 3: "P2", 2: "P3", 1: "P4"}


def priority_of(label: Any) -> str | None:
    """A priority as the original product or an admin writes it → ``P1``..``P4`` (None: not one)."""
    if isinstance(label, bool):
        return None
    if isinstance(label, int):
        return _LEVELS.get(label)
    value = str(label).strip()
    if value.isdigit():
        return _LEVELS.get(int(value))
    match = _P_LABEL.match(value)
    if match:
        return f"P{match.group(1)}"
    return _NAMES.get(value.lower())


class TicketRuleIn(Strict):
    """A ticket qualification rule; without ``soar_integration_id``/``soar_account`` the company's."""

    soar_integration_id: text(200) | None = None  # type: ignore[valid-type]
    soar_account: text(255) | None = None  # type: ignore[valid-type]
    priorities: list[str | int] = Field(
        min_length=1,
        max_length=8,
        description="P1..P4, or the original's labels (`P1 Critical`, `P2 High`, ...) or level numbers (4 = P1)",
    )
    statuses: list[Status] = Field(min_length=1, max_length=4)
    types: list[text(200)] | None = Field(  # type: ignore[valid-type]
        default=None, max_length=100, description="incident types; null or absent: any type"
    )

    @field_validator("priorities")
    @classmethod
    def _priorities(cls, value: list[str | int]) -> list[str]:
        out: list[str] = []
        for label in value:
            level = priority_of(label)
            if level is None:
                raise ValueError(f"{label!r} is not a priority (P1..P4, e.g. 'P1 Critical', or 4..1)")
            if level not in out:
                out.append(level)
        return sorted(out)


class TicketRule(BaseModel):
    id: str | None = Field(description="null for the built-in default")
    company_id: str
    soar_integration_id: str | None
    soar_account: str | None
    priorities: list[str]
    statuses: list[str]
    types: list[str] | None
    updated_by: str | None = None
    updated_at: datetime | None = None


class TicketRules(BaseModel):
    default: dict[str, Any] = Field(description="the rule that applies where no rule is set")
    items: list[TicketRule]
    total: int


class TicketRuleAudit(BaseModel):
    id: int
    company_id: str
    soar_integration_id: str | None
    soar_account: str | None
    action: Literal["set", "deleted"]
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    actor: str
    request_id: str | None
    at: datetime


class TicketRuleAudits(BaseModel):
    items: list[TicketRuleAudit]
    total: int


def _rule_view(row: Any) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "company_id": str(row["company_id"]),
        "soar_integration_id": row["soar_integration_id"],
        "soar_account": row["soar_account"],
        "priorities": list(row["priorities"]),
        "statuses": list(row["statuses"]),
        "types": None if row["types"] is None else list(row["types"]),
        "updated_by": row["updated_by"],
        "updated_at": row["updated_at"],
    }


def _content(row: Any) -> dict[str, Any]:
    return {"priorities": row["priorities"], "statuses": row["statuses"], "types": row["types"]}


def _scope(soar_integration_id: str | None, soar_account: str | None) -> list[Any]:
    p = ticket_policy
    return [
        sa.func.coalesce(p.c.soar_integration_id, "") == (soar_integration_id or ""),
        sa.func.coalesce(p.c.soar_account, "") == (soar_account or ""),
    ]


async def resolve_rule(
    session: AsyncSession, company_id: Any, soar_integration_id: str, soar_account: str
) -> dict[str, Any]:
    """The rule for an incident of (SOAR integration, XSOAR account) of this company: the most
    specific one set, else the default."""
    p = ticket_policy
    rows = (
        (
            await session.execute(
                sa.select(p).where(
                    p.c.company_id == company_id,
                    sa.or_(p.c.soar_integration_id.is_(None), p.c.soar_integration_id == soar_integration_id),
                    sa.or_(p.c.soar_account.is_(None), p.c.soar_account == soar_account),
                )
            )
        )
        .mappings()
        .all()
    )
    if not rows:
        return dict(DEFAULT_RULE)
    best = max(rows, key=lambda r: (r["soar_account"] is not None, r["soar_integration_id"] is not None))
    return _content(best)


async def _audit(
    session: AsyncSession,
    company_id: uuid.UUID,
    body_scope: tuple[str | None, str | None],
    action: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    actor: str,
) -> None:
    await session.execute(
        sa.insert(ticket_policy_audit).values(
            company_id=company_id,
            soar_integration_id=body_scope[0],
            soar_account=body_scope[1],
            action=action,
            before=before,
            after=after,
            actor=actor,
            request_id=request_id_var.get(None),
        )
    )


@router.get("/admin/companies/{company_id}/ticket-policies/", response_model=TicketRules)
async def list_rules(tx: ControlTx, principal: ManagerReader, company_id: CompanyId) -> dict[str, Any]:
    """The company's ticket qualification rules (and the default that applies elsewhere)."""
    await require_live_company(tx.session, company_id)
    p = ticket_policy
    rows = (
        (
            await tx.session.execute(
                sa.select(p)
                .where(p.c.company_id == company_id)
                .order_by(
                    sa.func.coalesce(p.c.soar_integration_id, ""), sa.func.coalesce(p.c.soar_account, "")
                )
            )
        )
        .mappings()
        .all()
    )
    items = [_rule_view(r) for r in rows]
    return {"default": DEFAULT_RULE, "items": items, "total": len(items)}


@router.put("/admin/companies/{company_id}/ticket-policies/", response_model=TicketRule)
async def set_rule(
    tx: ControlTx, principal: AdminWriter, company_id: CompanyId, body: TicketRuleIn
) -> dict[str, Any]:
    """Set the rule of the company, of one of its SOAR integrations, or of one XSOAR account
    (``soar_account`` needs ``soar_integration_id``). Audited."""
    await require_live_company(tx.session, company_id)
    if body.soar_account is not None and body.soar_integration_id is None:
        raise invalid(
            ["body", "soar_integration_id"], "an account's rule names its SOAR integration", "missing"
        )
    p = ticket_policy
    scope = _scope(body.soar_integration_id, body.soar_account)
    before = (
        (await tx.session.execute(sa.select(p).where(p.c.company_id == company_id, *scope).with_for_update()))
        .mappings()
        .first()
    )
    content = {"priorities": body.priorities, "statuses": sorted(set(body.statuses)), "types": body.types}
    if before is None:
        row = (
            (
                await tx.session.execute(
                    sa.insert(p)
                    .values(
                        id=uuid.uuid4(),
                        company_id=company_id,
                        soar_integration_id=body.soar_integration_id,
                        soar_account=body.soar_account,
                        updated_by=principal.sub,
                        **content,
                    )
                    .returning(*p.c)
                )
            )
            .mappings()
            .one()
        )
    else:
        row = (
            (
                await tx.session.execute(
                    sa.update(p)
                    .where(p.c.id == before["id"])
                    .values(updated_by=principal.sub, updated_at=sa.func.now(), **content)
                    .returning(*p.c)
                )
            )
            .mappings()
            .one()
        )
    await _audit(
        tx.session,
        company_id,
        (body.soar_integration_id, body.soar_account),
        "set",
        None if before is None else _content(before),
        content,
        principal.sub,
    )
    # Also in the suite's audit trail, beside every other change (the rule's own history stays).
    await audit.record(
        tx,
        "ticket_policy.created" if before is None else "ticket_policy.updated",
        "ticket_policy",
        row["id"],
        company_id=company_id,
        before=None if before is None else {**_rule_scope(row), **_content(before)},
        after={**_rule_scope(row), **content},
    )
    return _rule_view(row)


def _rule_scope(row: Any) -> dict[str, Any]:
    return {"soar_integration_id": row["soar_integration_id"], "soar_account": row["soar_account"]}


@router.delete("/admin/companies/{company_id}/ticket-policies/", status_code=204, response_class=Response)
async def delete_rule(
    tx: ControlTx,
    principal: AdminWriter,
    company_id: CompanyId,
    soar_integration_id: Annotated[str | None, Query(max_length=200)] = None,
    soar_account: Annotated[str | None, Query(max_length=255)] = None,
) -> Response:
    """Remove a rule (the next less specific one, or the default, applies again). Audited."""
    await require_live_company(tx.session, company_id)
    p = ticket_policy
    before = (
        (
            await tx.session.execute(
                sa.delete(p)
                .where(p.c.company_id == company_id, *_scope(soar_integration_id, soar_account))
                .returning(*p.c)
            )
        )
        .mappings()
        .first()
    )
    if before is None:
        raise not_found("ticket policy")
    await _audit(
        tx.session,
        company_id,
        (soar_integration_id, soar_account),
        "deleted",
        _content(before),
        None,
        principal.sub,
    )
    await audit.record(
        tx,
        "ticket_policy.deleted",
        "ticket_policy",
        before["id"],
        company_id=company_id,
        before={**_rule_scope(before), **_content(before)},
    )
    return Response(status_code=204)


@router.get("/admin/companies/{company_id}/ticket-policies/audit/", response_model=TicketRuleAudits)
async def rule_audit(
    tx: ControlTx,
    principal: ManagerReader,
    company_id: CompanyId,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    """Who changed the company's ticket rules, when, from what to what (newest first)."""
    await require_live_company(tx.session, company_id)
    a = ticket_policy_audit
    rows = (
        (
            await tx.session.execute(
                sa.select(a)
                .where(a.c.company_id == company_id)
                .order_by(a.c.at.desc(), a.c.id.desc())
                .limit(limit)
            )
        )
        .mappings()
        .all()
    )
    items = [{**dict(r), "company_id": str(r["company_id"])} for r in rows]
    return {"items": items, "total": len(items)}


__all__ = ["DEFAULT_RULE", "priority_of", "resolve_rule", "router", "ticket_policy", "ticket_policy_audit"]
