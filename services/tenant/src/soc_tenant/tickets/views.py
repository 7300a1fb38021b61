"""ServiceDesk Plus in the read model: ITSM tenants (accounts), tickets and their totals."""

from __future__ import annotations

from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Path, Query
from soc_shared.api import Page

from soc_tenant.db import ScopedSession
from soc_tenant.readmodel import lookups
from soc_tenant.readmodel import tables as t
from soc_tenant.readmodel.common import (
    DASHBOARD,
    AnyScope,
    IntegrationParam,
    PageParams,
    Range,
    ReadRoute,
    Scope,
    TextQuery,
    TimeRange,
    as_dict,
    list_responses,
    not_found,
    ordering,
    run_list,
    text_filter,
)
from soc_tenant.tickets.responses import ItsmTenant, TicketDetail, TicketSummary, TicketTotals

router = APIRouter(prefix="/tenant", tags=["itsm"], route_class=ReadRoute)
BIGINT = 2**63 - 1
k = t.itsm_ticket
# SDP status names are configurable per deployment; these are the ones that mean "done".
CLOSED_TICKET_STATUSES = ("closed", "resolved", "cancelled", "canceled", "completed")


def is_open(column: Any) -> sa.ColumnElement[bool]:
    return sa.func.lower(column).not_in(CLOSED_TICKET_STATUSES)


@router.get("/itsm-tenants/", response_model=Page[ItsmTenant], responses=list_responses())
async def list_itsm_tenants(
    session: ScopedSession,
    scope: AnyScope,
    page: PageParams,
    q: TextQuery = None,
    integration_id: IntegrationParam = None,
) -> Any:
    """SDP accounts (the seed's ITSM tenants): all for an admin without ``company_id``, the mapped
    ones for a company."""
    a = t.itsm_account
    stmt = sa.select(a.c.integration_id, a.c.account_id, a.c.name, a.c.updated_at).where(
        scope.itsm_filter(a), text_filter(q, a.c.name)
    )
    if integration_id:
        stmt = stmt.where(a.c.integration_id == integration_id)
    order = ordering(page.sort, {"name": a.c.name, "updated_at": a.c.updated_at}, "name", a.c.account_id)
    return await run_list(session, stmt, page, order, principal=scope.principal, name="itsm-tenants")


TICKET_COLUMNS = [
    k.c.id,
    k.c.integration_id,
    k.c.ticket_id,
    k.c.account_id,
    k.c.account_name,
    k.c.subject,
    k.c.short_description,
    k.c.status,
    k.c.priority,
    k.c.is_overdue,
    k.c.created_time,
    k.c.last_updated_time,
    k.c.created_by_name,
    k.c.soar_incident_id,
    k.c.version,
    k.c.technician_name,
    k.c.resolution,
    k.c.request_url,
]
TICKET_SORTS = {
    "created_time": k.c.created_time,
    "last_updated_time": k.c.last_updated_time,
    "status": k.c.status,
    "priority": k.c.priority,
    "subject": k.c.subject,
    "id": k.c.id,
}
ShortText = Annotated[str | None, Query(max_length=200)]


def ticket_filters(
    scope: Scope,
    window: TimeRange,
    q: str | None,
    status: str | None,
    priority: str | None,
    is_overdue: bool | None,
    open_only: bool | None,
    account_id: str | None,
) -> list[Any]:
    filters: list[Any] = [scope.itsm_filter(k)]
    if status:
        filters.append(sa.func.lower(k.c.status) == status.replace("\x00", "").lower())
    if priority:
        filters.append(sa.func.lower(k.c.priority) == priority.replace("\x00", "").lower())
    if is_overdue is not None:
        filters.append(k.c.is_overdue == is_overdue)
    if open_only is not None:
        filters.append(is_open(k.c.status) if open_only else sa.not_(is_open(k.c.status)))
    if account_id:
        filters.append(k.c.account_id == account_id.replace("\x00", ""))
    if window.start:
        filters.append(k.c.created_time >= window.start)
    if window.end:
        filters.append(k.c.created_time <= window.end)
    filters.append(text_filter(q, k.c.subject, k.c.short_description, k.c.ticket_id, k.c.soar_incident_id))
    return filters


@router.get(
    "/itsm-tickets/", dependencies=[DASHBOARD], response_model=Page[TicketSummary], responses=list_responses()
)
async def list_tickets(
    session: ScopedSession,
    scope: AnyScope,
    page: PageParams,
    window: Range,
    q: TextQuery = None,
    status: ShortText = None,
    priority: ShortText = None,
    is_overdue: bool | None = None,
    open: bool | None = None,
    account_id: ShortText = None,
    created_by: Annotated[
        str | None, Query(max_length=200, description="text in the requester's name")
    ] = None,
    account_name: Annotated[
        str | None, Query(max_length=200, description="text in the account's name")
    ] = None,
    has_ti_match: Annotated[
        bool | None,
        Query(description="only tickets a threat-intel alert names (true) or none names (false)"),
    ] = None,
) -> Any:
    """ITSM tickets (filter: status, priority, overdue, open, account, created from/to or
    filter_type, text, the original's created_by and account_name, threat-intel match)."""
    from soc_tenant.threatintel import matches as timatches

    stmt = sa.select(*TICKET_COLUMNS).where(
        *ticket_filters(scope, window, q, status, priority, is_overdue, open, account_id),
    )
    # substrings through the lookup of the accounts' names (readmodel.lookups): an index, not a scan
    if created_by and created_by.replace("\x00", "").strip():
        by = lookups.ticket_value(scope, k.c.created_by_name, "created_by", created_by)
        stmt = stmt.where(await lookups.resolve_values(session, by))
    if account_name and account_name.replace("\x00", "").strip():
        named = lookups.ticket_value(scope, k.c.account_name, "account_name", account_name)
        stmt = stmt.where(await lookups.resolve_values(session, named))
    if has_ti_match is not None:
        matched = timatches.ticket_has_match(scope)
        stmt = stmt.where(matched if has_ti_match else ~matched)
    total = None
    if (
        not (q or window.start or window.end or created_by or account_name or has_ti_match is not None)
        and page.format == "json"
    ):
        # Exact counts per (account, status, priority, overdue) are in the totals rollup.
        r = t.ticket_totals
        filters: list[Any] = [scope.itsm_filter(r)]
        if status:
            filters.append(sa.func.lower(r.c.status) == status.replace("\x00", "").lower())
        if priority:
            filters.append(sa.func.lower(r.c.priority) == priority.replace("\x00", "").lower())
        if is_overdue is not None:
            filters.append(r.c.is_overdue == is_overdue)
        if open is not None:
            filters.append(is_open(r.c.status) if open else sa.not_(is_open(r.c.status)))
        if account_id:
            filters.append(r.c.account_id == account_id.replace("\x00", ""))
        total = int(
            (
                await session.execute(sa.select(sa.func.coalesce(sa.func.sum(r.c.n), 0)).where(*filters))
            ).scalar_one()
        )
    order = ordering(page.sort, TICKET_SORTS, "-created_time", k.c.id)
    return await run_list(
        session, stmt, page, order, principal=scope.principal, name="itsm-tickets", total=total
    )


async def ticket_totals(
    session: ScopedSession, scope: Scope, window: TimeRange | None = None
) -> list[dict[str, Any]]:
    r, a = t.ticket_daily, t.itsm_account
    filters = [scope.itsm_filter(r)]
    if window and window.start:
        filters.append(r.c.day >= window.start.date())
    if window and window.end:
        filters.append(r.c.day <= window.end.date())
    rows = (
        await session.execute(
            sa.select(
                r.c.integration_id,
                r.c.account_id,
                sa.func.sum(r.c.n).label("total"),
                sa.func.coalesce(sa.func.sum(r.c.n).filter(is_open(r.c.status)), 0).label("open"),
                sa.func.coalesce(sa.func.sum(r.c.n).filter(is_open(r.c.status), r.c.is_overdue), 0).label(
                    "overdue"
                ),
            )
            .where(*filters)
            .group_by(r.c.integration_id, r.c.account_id)
        )
    ).all()
    names = {
        (x.integration_id, x.account_id): x.name
        for x in (
            await session.execute(
                sa.select(a.c.integration_id, a.c.account_id, a.c.name).where(scope.itsm_filter(a))
            )
        ).all()
    }
    out = [
        {
            "integration_id": x.integration_id,
            "account_id": x.account_id,
            "account_name": names.get((x.integration_id, x.account_id)),
            "total": int(x.total),
            "open": int(x.open),
            "overdue": int(x.overdue),
            "closed": int(x.total) - int(x.open),
        }
        for x in rows
    ]
    return sorted(out, key=lambda x: (-x["total"], x["account_id"]))


@router.get("/itsm-tickets/totals/", dependencies=[DASHBOARD], response_model=Page[TicketTotals])
async def tickets_per_tenant(session: ScopedSession, scope: AnyScope, window: Range) -> dict[str, Any]:
    """Tickets per ITSM tenant: total, open, overdue (open ones), closed."""
    items = await ticket_totals(session, scope, window)
    return {"items": items, "total": len(items), "limit": len(items), "offset": 0}


@router.get("/itsm-tickets/{ticket_pk:int}/", dependencies=[DASHBOARD], response_model=TicketDetail)
async def get_ticket(
    session: ScopedSession, scope: AnyScope, ticket_pk: Annotated[int, Path(ge=0, le=BIGINT)]
) -> dict[str, Any]:
    """One ticket, with the SOAR incident it was opened for, that incident's offenses, and the
    threat-intel alerts naming the ticket's indicators (``ti_matches``, with THREAT_INTELLIGENCE)."""
    row = (await session.execute(sa.select(k).where(k.c.id == ticket_pk, scope.itsm_filter(k)))).first()
    if row is None:
        raise not_found("ticket")
    ticket = as_dict(row)
    ticket["incident"] = None
    ticket["offenses"] = []
    if ticket["soar_incident_id"]:
        from soc_tenant.incidents.views import offenses_for_ids, soar_accounts_of_itsm

        i = t.soar_incident
        incident = (
            await session.execute(
                sa.select(
                    i.c.id,
                    i.c.integration_id,
                    i.c.incident_id,
                    i.c.account,
                    i.c.name,
                    i.c.status,
                    i.c.severity,
                    i.c.priority,
                    i.c.created,
                    i.c.closed,
                    i.c.offense_ids,
                )
                .where(
                    i.c.incident_id == ticket["soar_incident_id"],
                    scope.soar_filter(i),
                    # An id names one incident per XSOAR account: the one of the ticket's company.
                    soar_accounts_of_itsm(ticket["integration_id"], ticket["account_id"]),
                )
                .order_by(i.c.id)
                .limit(1)
            )
        ).first()
        if incident is not None:
            ticket["incident"] = as_dict(incident)
            ticket["offenses"] = await offenses_for_ids(session, scope, ticket["incident"]["offense_ids"])
    from soc_tenant.threatintel import matches as timatches

    ticket["ti_matches"] = (
        await timatches.record_matches(
            session, scope, "ticket", ticket["integration_id"], ticket["account_id"], ticket["ticket_id"]
        )
        if timatches.may_see(scope)
        else None
    )
    return ticket
