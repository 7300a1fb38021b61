"""Cortex XSOAR in the read model: SOAR tenants (accounts), incidents with notes, MITRE mapping,
SLA and cross references (offense → incident → ticket), distributions and downloads."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import Response
from soc_shared.api import CSV, XLSX, Page, file_responses
from soc_shared.events import ticket_reference
from soc_shared.security import CurrentPrincipal

from soc_tenant.dashboard import positives as positives
from soc_tenant.db import ScopedSession
from soc_tenant.incidents.responses import (
    FileTypeChoice,
    IncidentCards,
    IncidentDetail,
    IncidentOwnerCount,
    IncidentSummary,
    IncidentTypeCount,
    SoarTenant,
    UseCaseCount,
)
from soc_tenant.readmodel import lookups
from soc_tenant.readmodel import tables as t
from soc_tenant.readmodel.common import (
    DASHBOARD,
    REPORTS,
    AnyScope,
    IntegrationParam,
    PageParams,
    Range,
    ReadRoute,
    Scope,
    TextQuery,
    TimeRange,
    as_dict,
    bad_param,
    clean_str,
    csv_response,
    day_end,
    day_start,
    download,
    like_pattern,
    list_responses,
    not_found,
    ordering,
    parse_day,
    parse_levels,
    run_list,
    text_filter,
    xlsx_response,
)
from soc_tenant.sla import rules as slamath
from soc_tenant.threatintel import matches as timatches

router = APIRouter(prefix="/tenant", tags=["soar"], route_class=ReadRoute)
BIGINT = 2**63 - 1
i = t.soar_incident
OPEN_STATUSES = ("pending", "active")
CLOSED_STATUSES = ("closed", "archived")


class IncidentStatusParam(StrEnum):
    pending = "pending"
    active = "active"
    closed = "closed"
    archived = "archived"


class SeverityParam(StrEnum):
    unknown = "unknown"
    informational = "informational"
    low = "low"
    medium = "medium"
    high = "high"
    critical = "critical"


class PriorityParam(StrEnum):
    P1 = "P1"
    P2 = "P2"
    P3 = "P3"
    P4 = "P4"


@router.get("/soar-tenants/", response_model=Page[SoarTenant], responses=list_responses())
async def list_soar_tenants(
    session: ScopedSession,
    scope: AnyScope,
    page: PageParams,
    q: TextQuery = None,
    integration_id: IntegrationParam = None,
) -> Any:
    """XSOAR accounts (the seed's SOAR tenants): all for an admin without ``company_id``, the
    mapped ones for a company."""
    a = t.soar_account
    stmt = sa.select(a.c.integration_id, a.c.account_id, a.c.name, a.c.display_name, a.c.updated_at).where(
        scope.soar_filter(a, "name"), text_filter(q, a.c.name, a.c.display_name)
    )
    if integration_id:
        stmt = stmt.where(a.c.integration_id == integration_id)
    order = ordering(page.sort, {"name": a.c.name, "updated_at": a.c.updated_at}, "name", a.c.account_id)
    return await run_list(session, stmt, page, order, principal=scope.principal, name="soar-tenants")


INCIDENT_LIST_COLUMNS = [
    i.c.id,
    i.c.integration_id,
    i.c.incident_id,
    i.c.account,
    i.c.name,
    i.c.type,
    i.c.status,
    i.c.severity,
    i.c.priority,
    i.c.owner,
    i.c.phase,
    i.c.created,
    i.c.modified,
    i.c.occurred,
    i.c.closed,
    i.c.close_reason,
    i.c.tta_at,
    i.c.ttn_at,
    i.c.ttdn_at,
    i.c.offense_ids,
    i.c.mitre_tactics,
    i.c.mitre_techniques,
    i.c.qradar_category,
    i.c.version,
]


def positive_column() -> sa.ColumnElement[str]:
    """The incident's class under the deployment's true/false-positive rule (built per query: the
    rule is configured when the service starts)."""
    rule = positives.rule()
    return sa.case(
        (rule.true_sql(i), sa.literal(positives.TRUE_POSITIVE)),
        (rule.false_sql(i), sa.literal(positives.FALSE_POSITIVE)),
        else_=sa.literal(positives.NOT_COUNTED),
    ).label("positive")


INCIDENT_SORTS = {
    "created": i.c.created,
    "modified": i.c.modified,
    "closed": i.c.closed,
    "priority": i.c.priority,
    "severity": i.c.severity,
    "status": i.c.status,
    "name": i.c.name,
    "id": i.c.id,
}

StatusList = Annotated[list[IncidentStatusParam] | None, Query()]
SeverityList = Annotated[list[SeverityParam] | None, Query()]
PriorityList = Annotated[list[PriorityParam] | None, Query()]
ShortText = Annotated[str | None, Query(max_length=200)]


class Preset(StrEnum):
    """The original's quick filters (``filter``)."""

    all = "all"
    unassigned = "unassigned"  # no owner
    pending = "pending"  # status pending (XSOAR 0)
    false_positive = "false-positive"  # a false positive under the true/false-positive rule
    closed = "closed"  # closed or archived
    error = "error"  # the ITSM sync reported an error


@dataclass
class IncidentFilters:
    """The original's incident filters, shared by the incident list, its download and the SLA lists."""

    mitre_tactic: str | None = None
    mitre_technique: str | None = None
    phase: str | None = None
    playbook: str | None = None
    configuration_item: str | None = None
    sla: int | None = None
    description: str | None = None
    occurred_start: date | None = None
    occurred_end: date | None = None
    assignee: str | None = None
    preset: Preset = Preset.all
    # The original's true/false-positive selection (readmodel.positives): ``false_positives`` true
    # → only false positives, false → only true positives; ``include_fp`` false → only true
    # positives, true → true and false positives (the original's lists).
    false_positives: bool | None = None
    include_fp: bool | None = None

    @property
    def active(self) -> bool:
        return (
            any(
                v is not None
                for v in (
                    self.mitre_tactic,
                    self.mitre_technique,
                    self.phase,
                    self.playbook,
                    self.configuration_item,
                    self.sla,
                    self.description,
                    self.occurred_start,
                    self.occurred_end,
                    self.assignee,
                    self.false_positives,
                    self.include_fp,
                )
            )
            or self.preset is not Preset.all
        )

    async def resolved_clauses(
        self, session: Any, scope: Scope, window: TimeRange | None = None
    ) -> list[sa.ColumnElement[bool]]:
        """:meth:`clauses` with the value lookups run first (``lookups.resolve_values``): what a
        list page uses, so the planner sees the matching values."""
        return [await lookups.resolve_values(session, c) for c in self.clauses(scope, window)]

    def clauses(self, scope: Scope, window: TimeRange | None = None) -> list[sa.ColumnElement[bool]]:
        """The conditions on ``soar_incident``. Lists, substrings and case-insensitive names go
        through the filter lookups (``readmodel.lookups``) so that every condition on the incidents
        is a leakproof ``=`` or range an index answers under row-level security; ``window`` (the
        caller's created range) bounds the term lookups too."""
        start, end = (window.start, window.end) if window is not None else (None, None)
        out: list[sa.ColumnElement[bool]] = []
        if self.mitre_tactic:
            out.append(lookups.incident_has_term(scope, "mitre_tactic", self.mitre_tactic, start, end))
        if self.mitre_technique:
            out.append(lookups.incident_has_term(scope, "mitre_technique", self.mitre_technique, start, end))
        if self.phase:
            out.append(lookups.incident_value(scope, i.c.phase, "phase", self.phase, contains=False))
        if self.playbook:
            out.append(i.c.playbook_id == self.playbook)
        if self.configuration_item:
            out.append(
                lookups.incident_value(
                    scope,
                    i.c.configuration_item,
                    "configuration_item",
                    self.configuration_item,
                    contains=True,
                )
            )
        if self.sla is not None:
            out.append(i.c.sla == self.sla)
        if self.description:
            out.append(i.c.name.ilike(like_pattern(self.description), escape="\\"))
        if self.occurred_start:
            out.append(i.c.occurred >= day_start(self.occurred_start))
        if self.occurred_end:
            out.append(i.c.occurred <= day_end(self.occurred_end))
        if self.assignee:
            out.append(lookups.incident_value(scope, i.c.owner, "owner", self.assignee, contains=False))
        rule = positives.rule()

        def sync_status(status: str) -> sa.ColumnElement[bool]:
            # the rule's lower(status) = … again through the lookup: the index narrows first
            return lookups.incident_value(
                scope, i.c.itsm_sync_status, "itsm_sync_status", status, contains=False
            )

        if self.preset is Preset.unassigned:
            # soar-ingest stores a blank owner as NULL: one IS NULL, answered from the owner index alone
            out.append(i.c.owner.is_(None))
        elif self.preset is Preset.pending:
            out.append(i.c.status == "pending")
        elif self.preset is Preset.closed:
            out.append(i.c.status.in_(CLOSED_STATUSES))
        elif self.preset is Preset.false_positive:
            out += [sync_status(rule.false_status), rule.false_sql(i)]
        elif self.preset is Preset.error:
            out.append(sync_status("error"))
        if self.false_positives is not None:
            if self.false_positives:
                out += [sync_status(rule.false_status), rule.false_sql(i)]
            else:
                out += [sync_status(rule.true_status), rule.true_sql(i)]
        if self.include_fp is not None:
            if self.include_fp:
                out.append(sa.or_(rule.true_sql(i), rule.false_sql(i)))
            else:
                out += [sync_status(rule.true_status), rule.true_sql(i)]
        return out


def incident_filter_params(
    mitre_tactic: Annotated[
        str | None, Query(max_length=200, description="a MITRE ATT&CK tactic of the incident")
    ] = None,
    mitre_technique: Annotated[
        str | None, Query(max_length=200, description="a MITRE ATT&CK technique of the incident")
    ] = None,
    phase: Annotated[str | None, Query(max_length=200, description="phase (case-insensitive)")] = None,
    playbook: Annotated[str | None, Query(max_length=200, description="playbook id")] = None,
    configuration_item: Annotated[
        str | None, Query(max_length=200, description="text in the configuration item")
    ] = None,
    sla: Annotated[
        int | None, Query(ge=-(2**31), le=2**31 - 1, description="the incident's SLA field")
    ] = None,
    description: Annotated[
        str | None, Query(max_length=200, description="text in the incident's name")
    ] = None,
    occurred_start: Annotated[
        str | None, Query(max_length=32, description="occurred on or after, YYYY-MM-DD")
    ] = None,
    occurred_end: Annotated[
        str | None, Query(max_length=32, description="occurred on or before, YYYY-MM-DD")
    ] = None,
    assignee: Annotated[str | None, Query(max_length=200, description="owner (case-insensitive)")] = None,
    filter: Annotated[Preset, Query(description="quick filter")] = Preset.all,
    false_positives: Annotated[
        bool | None,
        Query(
            description="the original's: true = only false positives (ITSM sync status Done), "
            "false = only true positives (Ready with owner, TTA, TTN, TTDN and priority); "
            "absent = every incident"
        ),
    ] = None,
    include_fp: Annotated[
        bool | None,
        Query(description="the original's: false = only true positives, true = true and false positives"),
    ] = None,
) -> IncidentFilters:
    first, last = parse_day("occurred_start", occurred_start), parse_day("occurred_end", occurred_end)
    if first and last and first > last:
        raise bad_param("occurred_start", "occurred_start must not be after occurred_end")
    return IncidentFilters(
        mitre_tactic=clean_str(mitre_tactic) or None,
        mitre_technique=clean_str(mitre_technique) or None,
        phase=clean_str(phase) or None,
        playbook=clean_str(playbook) or None,
        configuration_item=clean_str(configuration_item) or None,
        sla=sla,
        description=clean_str(description) or None,
        occurred_start=first,
        occurred_end=last,
        assignee=clean_str(assignee) or None,
        preset=filter,
        false_positives=false_positives,
        include_fp=include_fp,
    )


IncidentFilterParams = Annotated[IncidentFilters, Depends(incident_filter_params)]


def incident_filters(
    scope: Scope,
    window: TimeRange,
    q: str | None,
    status: list[Any] | None,
    severity: list[Any] | None,
    priority: list[Any] | None,
    owner: str | None = None,
    incident_type: str | None = None,
    use_case: str | None = None,
    offense_id: int | None = None,
) -> list[sa.ColumnElement[bool]]:
    filters = [scope.soar_filter(i)]
    if status:
        filters.append(i.c.status.in_([s.value for s in status]))
    if severity:
        filters.append(i.c.severity.in_([s.value for s in severity]))
    if priority:
        filters.append(i.c.priority.in_([p.value for p in priority]))
    if window.start:
        filters.append(i.c.created >= window.start)
    if window.end:
        filters.append(i.c.created <= window.end)
    if owner:
        filters.append(i.c.owner == owner.replace("\x00", ""))
    if incident_type:
        filters.append(i.c.type == incident_type.replace("\x00", ""))
    if use_case:
        filters.append(lookups.incident_has_term(scope, "use_case", use_case, window.start, window.end))
    if offense_id is not None:
        filters.append(i.c.offense_ids.contains(sa.func.jsonb_build_array(offense_id)))
    filters.append(text_filter(q, i.c.name, i.c.incident_id, i.c.owner, i.c.type))
    return filters


async def rollup_total(
    session: ScopedSession,
    scope: Scope,
    status: list[Any] | None,
    severity: list[Any] | None,
    priority: list[Any] | None,
) -> int:
    r = t.incident_totals
    filters = [scope.soar_filter(r)]
    if status:
        filters.append(r.c.status.in_([s.value for s in status]))
    if severity:
        filters.append(r.c.severity.in_([s.value for s in severity]))
    if priority:
        filters.append(r.c.priority.in_([p.value for p in priority]))
    return int(
        (
            await session.execute(sa.select(sa.func.coalesce(sa.func.sum(r.c.n), 0)).where(*filters))
        ).scalar_one()
    )


@router.get(
    "/soar-incidents/",
    dependencies=[DASHBOARD],
    response_model=Page[IncidentSummary],
    responses=list_responses(),
)
async def list_incidents(
    session: ScopedSession,
    scope: AnyScope,
    page: PageParams,
    window: Range,
    q: TextQuery = None,
    status: StatusList = None,
    severity: SeverityList = None,
    priority: PriorityList = None,
    owner: ShortText = None,
    type: ShortText = None,
    use_case: ShortText = None,
    offense_id: Annotated[int | None, Query(ge=0, le=BIGINT)] = None,
    extra: IncidentFilterParams = IncidentFilters(),
    has_ti_match: Annotated[
        bool | None,
        Query(description="only incidents a threat-intel alert names (true) or none names (false)"),
    ] = None,
) -> Any:
    """SOAR incidents (filter: status, severity, priority, created from/to or filter_type, owner,
    type, use case (a rule), offense id, text, and the original's mitre_tactic, mitre_technique,
    phase, playbook, configuration_item, sla, description, occurred_start/occurred_end, assignee,
    ``filter`` presets; sort by a whitelisted field)."""
    filters = incident_filters(
        scope, window, q, status, severity, priority, owner, type, use_case, offense_id
    )
    if has_ti_match is not None:
        matched = timatches.incident_has_match(scope)
        filters.append(matched if has_ti_match else ~matched)
    stmt = sa.select(*INCIDENT_LIST_COLUMNS, positive_column()).where(
        *filters, *await extra.resolved_clauses(session, scope, window)
    )
    total = None
    if (
        not (q or window.start or window.end or owner or type or use_case or offense_id is not None)
        and has_ti_match is None
        and not extra.active
        and page.format == "json"
    ):
        total = await rollup_total(session, scope, status, severity, priority)
    order = ordering(page.sort, INCIDENT_SORTS, "-created", i.c.id)
    return await run_list(
        session, stmt, page, order, principal=scope.principal, name="soar-incidents", total=total
    )


@router.get(
    "/soar-incidents/all/",
    dependencies=[DASHBOARD],
    response_model=Page[IncidentSummary],
    responses=list_responses(),
)
async def list_all_incidents(
    session: ScopedSession,
    scope: AnyScope,
    page: PageParams,
    window: Range,
    q: TextQuery = None,
    status: StatusList = None,
    severity: SeverityList = None,
    priority: PriorityList = None,
) -> Any:
    """Every incident of the company, oldest first (the seed's "all incidents")."""
    filters = incident_filters(scope, window, q, status, severity, priority)
    stmt = sa.select(*INCIDENT_LIST_COLUMNS, positive_column()).where(*filters)
    order = ordering(page.sort, INCIDENT_SORTS, "created", i.c.id)
    return await run_list(session, stmt, page, order, principal=scope.principal, name="soar-incidents-all")


@router.get("/soar-incidents/recent/", dependencies=[DASHBOARD], response_model=Page[IncidentSummary])
async def recent_incidents(
    session: ScopedSession,
    scope: AnyScope,
    window: Range,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
    use_case: Annotated[
        str | None, Query(max_length=200, description="incidents raised by this rule")
    ] = None,
) -> dict[str, Any]:
    """The newest incidents (created within from/to or filter_type, of one use case), a page at a
    time."""
    filters = incident_filters(scope, window, None, None, None, None, use_case=clean_str(use_case) or None)
    if window.start or window.end or use_case:
        total = (
            await session.execute(sa.select(sa.func.count()).select_from(i).where(*filters))
        ).scalar_one()
    else:
        total = await rollup_total(session, scope, None, None, None)
    rows = (
        await session.execute(
            sa.select(*INCIDENT_LIST_COLUMNS, positive_column())
            .where(*filters)
            .order_by(i.c.created.desc(), i.c.id.desc())
            .limit(limit)
            .offset(offset)
        )
    ).all()
    return {"items": [as_dict(r) for r in rows], "total": int(total), "limit": limit, "offset": offset}


@router.get(
    "/soar-incidents/use-cases/",
    dependencies=[DASHBOARD],
    response_model=Page[UseCaseCount],
    responses=list_responses(),
)
async def use_case_incidents(
    session: ScopedSession, scope: AnyScope, page: PageParams, window: Range, q: TextQuery = None
) -> Any:
    """Incidents per use case (the QRadar rule that raised them), created within from/to (default:
    the last 30 days); filter the list with ``/soar-incidents/?use_case=``."""
    window = window.bounded(30)
    rule = sa.func.jsonb_array_elements_text(i.c.rules).table_valued("value").alias("rule")
    count = sa.func.count().label("incidents")
    open_count = sa.func.count().filter(i.c.status.in_(OPEN_STATUSES)).label("open")
    stmt = (
        sa.select(rule.c.value.label("use_case"), count, open_count)
        .select_from(i.join(rule, sa.true()))
        .where(
            scope.soar_filter(i),
            i.c.created >= window.start,
            i.c.created <= window.end,
            text_filter(q, rule.c.value),
        )
        .group_by(rule.c.value)
    )
    order = ordering(page.sort, {"incidents": count, "use_case": rule.c.value}, "-incidents", rule.c.value)
    return await run_list(session, stmt, page, order, principal=scope.principal, name="use-case-incidents")


def day_filters(table: sa.Table, window: TimeRange) -> list[sa.ColumnElement[bool]]:
    out = []
    if window.start:
        out.append(table.c.day >= window.start.date())
    if window.end:
        out.append(table.c.day <= window.end.date())
    return out


async def incident_cards(
    session: ScopedSession, scope: Scope, window: TimeRange, priorities: list[str] | None = None
) -> dict[str, Any]:
    # All time: the totals rollup (a few dozen rows); a window: the daily one.
    r = t.incident_daily if (window.start or window.end) else t.incident_totals
    filters = day_filters(r, window) if r is t.incident_daily else []
    if priorities:
        filters.append(r.c.priority.in_(priorities))
    rows = (
        await session.execute(
            sa.select(r.c.priority, r.c.severity, r.c.status, sa.func.sum(r.c.n))
            .where(scope.soar_filter(r), *filters)
            .group_by(r.c.priority, r.c.severity, r.c.status)
        )
    ).all()
    total = sum(int(n) for *_, n in rows)
    by_status: dict[str, int] = {}
    by_priority: dict[str, int] = {}
    open_by_priority: dict[str, int] = {}
    by_severity: dict[str, int] = {}
    for priority, severity, status, n in rows:
        n = int(n)
        by_status[status] = by_status.get(status, 0) + n
        by_priority[priority] = by_priority.get(priority, 0) + n
        by_severity[severity] = by_severity.get(severity, 0) + n
        if status in OPEN_STATUSES:
            open_by_priority[priority] = open_by_priority.get(priority, 0) + n
    open_total = sum(by_status.get(s, 0) for s in OPEN_STATUSES)
    return {
        "total": total,
        "open": open_total,
        "closed": total - open_total,
        "by_status": by_status,
        "by_priority": by_priority,
        "open_by_priority": open_by_priority,
        "by_severity": by_severity,
        "critical_open": sum(
            n
            for (p, sev, st, n) in ((a, b, c, int(d)) for a, b, c, d in rows)
            if sev == "critical" and st in OPEN_STATUSES
        ),
    }


@router.get("/soar-incidents/summary/", dependencies=[DASHBOARD], response_model=IncidentCards)
async def incident_summary(
    session: ScopedSession,
    scope: AnyScope,
    window: Range,
    priority: Annotated[
        list[str] | None,
        Query(max_length=20, description="P1..P4, or the original's SLA level numbers (4 P1 … 1 P4)"),
    ] = None,
) -> dict[str, Any]:
    """Summary cards: total, open, closed, per status, priority and severity (created day within
    from/to or filter_type; all time by default; ``priority`` narrows them)."""
    return await incident_cards(session, scope, window, parse_levels("priority", priority))


async def facet_distribution(
    session: ScopedSession, scope: Scope, facet: str, window: TimeRange, limit: int
) -> dict[str, Any]:
    f = t.incident_facet_daily
    n = sa.func.sum(f.c.n).label("incidents")
    rows = (
        await session.execute(
            sa.select(f.c.value, n)
            .where(scope.soar_filter(f), f.c.facet == facet, *day_filters(f, window))
            .group_by(f.c.value)
            .having(sa.func.sum(f.c.n) > 0)
            .order_by(n.desc(), f.c.value)
            .limit(limit)
        )
    ).all()
    items = [{facet: v or None, "incidents": int(c)} for v, c in rows]
    return {"items": items, "total": len(items), "limit": limit, "offset": 0}


@router.get(
    "/soar-incidents/type-distribution/", dependencies=[DASHBOARD], response_model=Page[IncidentTypeCount]
)
async def type_distribution(
    session: ScopedSession, scope: AnyScope, window: Range, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> dict[str, Any]:
    """Incidents per type (created day within from/to)."""
    return await facet_distribution(session, scope, "type", window, limit)


@router.get(
    "/soar-incidents/owner-distribution/", dependencies=[DASHBOARD], response_model=Page[IncidentOwnerCount]
)
async def owner_distribution(
    session: ScopedSession, scope: AnyScope, window: Range, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> dict[str, Any]:
    """Incidents per owner (created day within from/to)."""
    return await facet_distribution(session, scope, "owner", window, limit)


DOWNLOAD_COLUMNS = [
    "id",
    "integration_id",
    "incident_id",
    "account",
    "name",
    "type",
    "status",
    "severity",
    "priority",
    "owner",
    "phase",
    "created",
    "modified",
    "occurred",
    "closed",
    "close_reason",
    "tta_at",
    "ttn_at",
    "ttdn_at",
    "offense_ids",
    "mitre_tactics",
    "mitre_techniques",
    "qradar_category",
]


# The original's file types by number (2 = Excel; its PDF, 1, was never enabled), and ours.
FILE_TYPES = [
    {"value": "xlsx", "label": "EXCEL", "id": 2},
    {"value": "csv", "label": "CSV", "id": 3},
    {"value": "json", "label": "JSON", "id": 4},
]
FILE_TYPE_BY_ID = {str(f["id"]): str(f["value"]) for f in FILE_TYPES}


@router.get("/file-type-choices/", response_model=Page[FileTypeChoice])
async def file_type_choices(_: CurrentPrincipal) -> dict[str, Any]:
    """The file types ``/tenant/soar-incidents/download/?file_type=`` takes (by value or the
    original's number)."""
    return {"items": FILE_TYPES, "total": len(FILE_TYPES), "limit": len(FILE_TYPES), "offset": 0}


@router.get(
    "/soar-incidents/download/",
    dependencies=[REPORTS],
    response_class=Response,
    responses=file_responses(CSV, XLSX, "application/json"),
)
async def download_incidents(
    session: ScopedSession,
    scope: AnyScope,
    window: Range,
    file_type: Annotated[
        Literal["csv", "xlsx", "json", "2", "3", "4"], Query(description="csv, xlsx, json (or 2, 3, 4)")
    ] = "csv",
    q: TextQuery = None,
    status: StatusList = None,
    severity: SeverityList = None,
    priority: PriorityList = None,
    extra: IncidentFilterParams = IncidentFilters(),
) -> Response:
    """Incidents (created within from/to or filter_type, default the last 30 days) as CSV, Excel or
    JSON, with the list's filters."""
    window = window.bounded(30)
    file_type = FILE_TYPE_BY_ID.get(file_type, file_type)  # type: ignore[assignment]
    stmt = (
        sa.select(*INCIDENT_LIST_COLUMNS, positive_column())
        .where(
            *incident_filters(scope, window, q, status, severity, priority),
            *await extra.resolved_clauses(session, scope, window),
        )
        .order_by(i.c.created.desc(), i.c.id.desc())
        .limit(100_000)
    )
    rows = [as_dict(r) for r in (await session.execute(stmt)).all()]
    if file_type == "json":
        body = json.dumps(
            {
                "items": rows,
                "total": len(rows),
                "from": window.start.isoformat(),
                "to": window.end.isoformat(),
            }
        ).encode()
        return download(body, "application/json", "incidents.json")
    if file_type == "xlsx":
        return xlsx_response(DOWNLOAD_COLUMNS, rows, "incidents")
    return csv_response(DOWNLOAD_COLUMNS, rows, "incidents")


# ------------------------------------------------------------------------------ cross references
# Vendor ids repeat across vendor tenants (every XSOAR account numbers its incidents from 1), so a
# link between records of two vendors holds only within the company both vendor tenants map to.
def soar_accounts_of_qradar(integration_id: str, domain_id: int) -> sa.ColumnElement[bool]:
    """The incident belongs to an XSOAR account of the company this QRadar domain maps to."""
    return sa.tuple_(i.c.integration_id, i.c.account).in_(
        sa.text(
            "SELECT sm.integration_id::text, sm.account FROM soar_mapping sm JOIN qradar_mapping qm "
            "ON qm.company_id = sm.company_id WHERE sm.active AND qm.active "
            "AND qm.integration_id::text = :link_qi AND qm.domain_id = :link_qd"
        ).bindparams(link_qi=integration_id, link_qd=domain_id)
    )


def soar_accounts_of_itsm(integration_id: str, account_id: str) -> sa.ColumnElement[bool]:
    """The incident belongs to an XSOAR account of the company this SDP account maps to."""
    return sa.tuple_(i.c.integration_id, i.c.account).in_(
        sa.text(
            "SELECT sm.integration_id::text, sm.account FROM soar_mapping sm JOIN itsm_mapping im "
            "ON im.company_id = sm.company_id WHERE sm.active AND im.active "
            "AND im.integration_id::text = :link_ti AND im.account_id = :link_ta"
        ).bindparams(link_ti=integration_id, link_ta=account_id)
    )


def itsm_accounts_of_soar(integration_id: str, account: str) -> sa.ColumnElement[bool]:
    """The ticket belongs to an SDP account of the company this XSOAR account maps to."""
    k = t.itsm_ticket
    return sa.tuple_(k.c.integration_id, k.c.account_id).in_(
        sa.text(
            "SELECT im.integration_id::text, im.account_id FROM itsm_mapping im JOIN soar_mapping sm "
            "ON sm.company_id = im.company_id WHERE sm.active AND im.active "
            "AND sm.integration_id::text = :link_si AND sm.account = :link_sa"
        ).bindparams(link_si=integration_id, link_sa=account)
    )


async def tickets_for_incident(
    session: ScopedSession, scope: Scope, incident: dict[str, Any]
) -> list[dict[str, Any]]:
    """Tickets opened for one incident, with what the service desk did on them (status,
    technician, resolution) and the link into SDP. A ticket the SOC opened carries the incident's
    reference (over SOAR integration, XSOAR account and incident id), which names exactly this
    incident; one made by hand names the incident id only, and an id names one incident per
    XSOAR account, so only such tickets of the incident's own company count."""
    k = t.itsm_ticket
    reference = ticket_reference(
        str(incident["integration_id"]), incident.get("account") or "", str(incident["incident_id"])
    )
    rows = (
        await session.execute(
            sa.select(
                k.c.id,
                k.c.integration_id,
                k.c.ticket_id,
                k.c.subject,
                k.c.status,
                k.c.priority,
                k.c.is_overdue,
                k.c.created_time,
                k.c.last_updated_time,
                k.c.soar_incident_id,
                k.c.technician_name,
                k.c.resolution,
                k.c.request_url,
            )
            .where(
                k.c.soar_incident_id == incident["incident_id"],
                scope.itsm_filter(k),
                itsm_accounts_of_soar(incident["integration_id"], incident["account"]),
                sa.or_(k.c.reference.is_(None), k.c.reference == reference),
            )
            .order_by(k.c.created_time)
        )
    ).all()
    return [as_dict(r) for r in rows]


async def incidents_for_offense(
    session: ScopedSession, scope: Scope, offense: dict[str, Any]
) -> list[dict[str, Any]]:
    """SOAR incidents of the offense's company whose offense ids name this QRadar offense, each
    with its tickets."""
    rows = (
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
            )
            .where(
                i.c.offense_ids.contains(sa.func.jsonb_build_array(offense["offense_id"])),
                scope.soar_filter(i),
                soar_accounts_of_qradar(offense["integration_id"], offense["domain_id"]),
            )
            .order_by(i.c.created)
            .limit(100)
        )
    ).all()
    incidents = [as_dict(r) for r in rows]
    for incident in incidents:
        incident["tickets"] = await tickets_for_incident(session, scope, incident)
    return incidents


async def offenses_for_ids(
    session: ScopedSession, scope: Scope, offense_ids: list[int]
) -> list[dict[str, Any]]:
    ids = [x for x in offense_ids if isinstance(x, int) and 0 <= x <= BIGINT][:200]
    if not ids:
        return []
    o = t.qradar_offense
    rows = (
        await session.execute(
            sa.select(
                o.c.id,
                o.c.integration_id,
                o.c.offense_id,
                o.c.domain_id,
                o.c.description,
                o.c.status,
                o.c.severity,
                o.c.magnitude,
                o.c.start_time,
                o.c.close_time,
            )
            .where(o.c.offense_id.in_(ids), scope.qradar_filter(o))
            .order_by(o.c.offense_id)
        )
    ).all()
    return [as_dict(r) for r in rows]


async def incident_sla_of(
    session: ScopedSession, scope: Scope, incident: dict[str, Any]
) -> dict[str, Any] | None:
    if scope.everything:
        company_ids = (
            (
                await session.execute(
                    sa.text(
                        "SELECT company_id::text FROM soar_mapping WHERE active AND integration_id::text = :i AND account = :a LIMIT 1"
                    ),
                    {"i": incident["integration_id"], "a": incident["account"]},
                )
            )
            .scalars()
            .all()
        )
        if not company_ids:
            return None
        company_id = company_ids[0]
    else:
        company_id = scope.company_id
    assert company_id is not None
    company_sla = await slamath.load_company_sla(session, company_id)
    target = company_sla.target(incident["priority"], incident["integration_id"], incident["account"])
    parse = lambda v: datetime.fromisoformat(v) if v else None  # noqa: E731
    done = {s: parse(incident[f"{s}_at"]) for s in slamath.STEPS}
    positive = positives.rule().classify(
        itsm_sync_status=incident["itsm_sync_status"],
        owner=incident["owner"],
        tta_at=done["tta"],
        ttn_at=done["ttn"],
        ttdn_at=done["ttdn"],
        priority=incident["vendor_priority"],
    )
    clock = company_sla.clock_start
    out = slamath.incident_sla(
        slamath.clock_start(clock, parse(incident["occurred"]), parse(incident["created"])),
        done,
        target,
        datetime.now(UTC),
        clock=clock,
        true_positive=positive == positives.TRUE_POSITIVE,
    )
    out["positive"] = positive
    return out


@router.get("/soar-incidents/{incident_pk:int}/", dependencies=[DASHBOARD], response_model=IncidentDetail)
async def get_incident(
    session: ScopedSession, scope: AnyScope, incident_pk: Annotated[int, Path(ge=0, le=BIGINT)]
) -> dict[str, Any]:
    """One incident: every field, its notes, MITRE tactics and techniques (beside them the
    techniques its threat-intel alerts name), its SLA, the offenses it came from, the tickets
    opened for it, and the threat-intel alerts naming its indicators (``ti_matches``, with
    THREAT_INTELLIGENCE)."""
    row = (await session.execute(sa.select(i).where(i.c.id == incident_pk, scope.soar_filter(i)))).first()
    if row is None:
        raise not_found("incident")
    incident = as_dict(row)
    n = t.soar_note
    incident["notes"] = [
        as_dict(r)
        for r in (
            await session.execute(
                sa.select(n.c.note_id, n.c.author, n.c.created, n.c.content, n.c.category)
                .where(
                    n.c.integration_id == incident["integration_id"],
                    n.c.account == incident["account"],
                    n.c.incident_id == incident["incident_id"],
                )
                .order_by(n.c.created, n.c.note_id)
            )
        ).all()
    ]
    incident["mitre"] = {
        "tactics": incident["mitre_tactics"],
        "techniques": incident["mitre_techniques"],
        "alert_techniques": None,
    }
    incident["sla"] = await incident_sla_of(session, scope, incident)
    parse = lambda v: datetime.fromisoformat(v) if v else None  # noqa: E731
    incident["positive"] = positives.rule().classify(
        itsm_sync_status=incident["itsm_sync_status"],
        owner=incident["owner"],
        tta_at=parse(incident["tta_at"]),
        ttn_at=parse(incident["ttn_at"]),
        ttdn_at=parse(incident["ttdn_at"]),
        priority=incident["vendor_priority"],
    )
    incident["offenses"] = await offenses_for_ids(session, scope, incident["offense_ids"])
    incident["tickets"] = await tickets_for_incident(session, scope, incident)
    incident["ti_matches"] = None
    if timatches.may_see(scope):
        matches = await timatches.record_matches(
            session,
            scope,
            "incident",
            incident["integration_id"],
            incident["account"],
            incident["incident_id"],
        )
        incident["ti_matches"] = matches
        incident["mitre"]["alert_techniques"] = await timatches.alert_techniques(session, matches)
    return incident
