"""QRadar in the read model: vendor tenants (domains), event collectors, offenses, assets (log
sources), EPS against the contracted volume, and the event-log catalogue."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import Response
from soc_shared.api import CSV, XLSX, Page, file_responses
from soc_shared.errors import ApiError

from soc_tenant.db import ScopedSession
from soc_tenant.offenses.responses import (
    Asset,
    AssetCounts,
    AssetsPerTenant,
    EpsGraph,
    EpsUsage,
    EventCollector,
    EventLogFamilies,
    EventLogSample,
    OffenseCategoryCount,
    OffenseDetail,
    OffenseSummary,
    QradarTenant,
)
from soc_tenant.readmodel import tables as t
from soc_tenant.readmodel.common import (
    ASSETS,
    DASHBOARD,
    AnyScope,
    Bounded,
    CompanyScope,
    IntegrationParam,
    PageParams,
    Range,
    ReadRoute,
    Scope,
    TextQuery,
    TimeRange,
    as_dict,
    bad_param,
    csv_response,
    day_end,
    day_start,
    like_pattern,
    list_responses,
    not_found,
    ordering,
    parse_day,
    run_list,
    text_filter,
    xlsx_response,
)
from soc_tenant.threatintel import matches as timatches

router = APIRouter(prefix="/tenant", tags=["siem"], route_class=ReadRoute)

BIGINT = 2**63 - 1
# QRadar does not report event sizes: GB/day contracts are compared with an estimate from the EPS.
AVERAGE_EVENT_BYTES = 700


class OffenseStatusParam(StrEnum):
    OPEN = "OPEN"
    HIDDEN = "HIDDEN"
    CLOSED = "CLOSED"


# ------------------------------------------------------------------------------ vendor tenants
@router.get("/qradar-tenants/", response_model=Page[QradarTenant], responses=list_responses())
async def list_qradar_tenants(
    session: ScopedSession,
    scope: AnyScope,
    page: PageParams,
    q: TextQuery = None,
    integration_id: IntegrationParam = None,
) -> Any:
    """QRadar domains (the seed's QRadar tenants): every domain for an admin without ``company_id``
    (to map them), the mapped ones for a company, with the contracted volume."""
    d, m = t.qradar_domain, t.qradar_mapping
    contract = sa.select(m.c.contracted_volume_type, m.c.contracted_volume, m.c.company_id).where(
        m.c.integration_id == d.c.integration_id, m.c.domain_id == d.c.domain_id, m.c.active
    )
    if not scope.everything:
        contract = contract.where(sa.cast(m.c.company_id, sa.Text) == scope.company_id)
    contract_sq = contract.limit(1).lateral("contract")
    stmt = (
        sa.select(
            d.c.integration_id,
            d.c.domain_id,
            d.c.name,
            d.c.description,
            d.c.deleted,
            d.c.updated_at,
            contract_sq.c.company_id.label("mapped_company_id"),
            contract_sq.c.contracted_volume_type,
            contract_sq.c.contracted_volume,
        )
        .select_from(d.outerjoin(contract_sq, sa.true()))
        .where(scope.qradar_filter(d), text_filter(q, d.c.name, d.c.description))
    )
    if integration_id:
        stmt = stmt.where(d.c.integration_id == integration_id)
    order = ordering(
        page.sort,
        {"name": d.c.name, "domain_id": d.c.domain_id, "updated_at": d.c.updated_at},
        "name",
        d.c.domain_id,
    )
    return await run_list(session, stmt, page, order, principal=scope.principal, name="qradar-tenants")


@router.get("/event-collectors/", response_model=Page[EventCollector], responses=list_responses())
async def list_event_collectors(
    session: ScopedSession,
    scope: AnyScope,
    page: PageParams,
    q: TextQuery = None,
    integration_id: IntegrationParam = None,
) -> Any:
    """QRadar event collectors: all for an admin without ``company_id``; for a company, those its
    mappings name, its domains list, or its log sources report through."""
    c = t.qradar_event_collector
    stmt = sa.select(
        c.c.integration_id, c.c.collector_id, c.c.name, c.c.host_id, c.c.component_name, c.c.updated_at
    )
    if not scope.everything:
        m, d, ls = t.qradar_mapping, t.qradar_domain, t.qradar_log_source
        by_mapping = sa.exists().where(
            sa.cast(m.c.company_id, sa.Text) == scope.company_id,
            m.c.active,
            m.c.integration_id == c.c.integration_id,
            sa.or_(
                m.c.event_collector_ids.contains(sa.func.to_jsonb(c.c.collector_id)),
                sa.exists()
                .where(
                    d.c.integration_id == m.c.integration_id,
                    d.c.domain_id == m.c.domain_id,
                    d.c.details["event_collector_ids"].contains(sa.func.to_jsonb(c.c.collector_id)),
                )
                .correlate_except(d),
            ),
        )
        by_log_source = sa.exists().where(
            ls.c.integration_id == c.c.integration_id,
            ls.c.event_collector_id == c.c.collector_id,
            scope.qradar_filter(ls),
        )
        stmt = stmt.where(sa.or_(by_mapping, by_log_source))
    stmt = stmt.where(text_filter(q, c.c.name, c.c.component_name))
    if integration_id:
        stmt = stmt.where(c.c.integration_id == integration_id)
    order = ordering(
        page.sort, {"name": c.c.name, "collector_id": c.c.collector_id}, "name", c.c.collector_id
    )
    return await run_list(session, stmt, page, order, principal=scope.principal, name="event-collectors")


# ------------------------------------------------------------------------------------ offenses
o = t.qradar_offense
OFFENSE_LIST_COLUMNS = [
    o.c.id,
    o.c.integration_id,
    o.c.offense_id,
    o.c.domain_id,
    o.c.description,
    o.c.status,
    o.c.severity,
    o.c.magnitude,
    o.c.credibility,
    o.c.relevance,
    o.c.event_count,
    o.c.flow_count,
    o.c.assigned_to,
    o.c.categories,
    o.c.offense_source,
    o.c.offense_type,
    o.c.start_time,
    o.c.last_updated_time,
    o.c.close_time,
    o.c.closing_reason,
    o.c.version,
]
OFFENSE_SORTS = {
    "start_time": o.c.start_time,
    "last_updated_time": o.c.last_updated_time,
    "severity": o.c.severity,
    "magnitude": o.c.magnitude,
    "event_count": o.c.event_count,
    "offense_id": o.c.offense_id,
    "id": o.c.id,
    "status": o.c.status,
}


@router.get(
    "/offenses/", dependencies=[DASHBOARD], response_model=Page[OffenseSummary], responses=list_responses()
)
async def list_offenses(
    session: ScopedSession,
    scope: AnyScope,
    page: PageParams,
    window: Range,
    q: TextQuery = None,
    status: Annotated[list[OffenseStatusParam] | None, Query()] = None,
    severity_min: Annotated[int | None, Query(ge=0, le=10)] = None,
    severity_max: Annotated[int | None, Query(ge=0, le=10)] = None,
    domain_id: Annotated[int | None, Query(ge=0, le=BIGINT)] = None,
    assigned_to: Annotated[str | None, Query(max_length=200)] = None,
    has_ti_match: Annotated[
        bool | None,
        Query(description="only offenses a threat-intel alert names (true) or none names (false)"),
    ] = None,
) -> Any:
    """QRadar offenses of the company (filter: status, severity range, start time from/to, text,
    threat-intel match)."""
    filters = [scope.qradar_filter(o)]
    r = t.offense_totals
    rollup_filters = [scope.qradar_filter(r)]
    if status:
        filters.append(o.c.status.in_([s.value for s in status]))
        rollup_filters.append(r.c.status.in_([s.value for s in status]))
    if severity_min is not None:
        filters.append(o.c.severity >= severity_min)
        rollup_filters.append(r.c.severity >= severity_min)
    if severity_max is not None:
        filters.append(o.c.severity <= severity_max)
        rollup_filters.append(r.c.severity <= severity_max)
    if domain_id is not None:
        filters.append(o.c.domain_id == domain_id)
        rollup_filters.append(r.c.domain_id == domain_id)
    if window.start:
        filters.append(o.c.start_time >= window.start)
    if window.end:
        filters.append(o.c.start_time <= window.end)
    if assigned_to:
        filters.append(o.c.assigned_to == assigned_to.replace("\x00", ""))
    filters.append(text_filter(q, o.c.description, o.c.offense_source, o.c.offense_id))
    if has_ti_match is not None:
        matched = timatches.offense_has_match(scope)
        filters.append(matched if has_ti_match else ~matched)
    stmt = sa.select(*OFFENSE_LIST_COLUMNS).where(*filters)
    total = None
    if (
        not (q or window.start or window.end or assigned_to or has_ti_match is not None)
        and page.format == "json"
    ):
        # The rollup holds exact counts per (domain, day, severity, status): no 1M-row count.
        total = int(
            (
                await session.execute(
                    sa.select(sa.func.coalesce(sa.func.sum(r.c.n), 0)).where(*rollup_filters)
                )
            ).scalar_one()
        )
    order = ordering(page.sort, OFFENSE_SORTS, "-start_time", o.c.id)
    return await run_list(session, stmt, page, order, principal=scope.principal, name="offenses", total=total)


async def offense_detail(
    session: ScopedSession, scope: Scope, condition: sa.ColumnElement[bool]
) -> dict[str, Any]:
    row = (await session.execute(sa.select(o).where(condition, scope.qradar_filter(o)))).first()
    if row is None:
        raise not_found("offense")
    offense = as_dict(row)
    n = t.qradar_offense_notes
    notes = (
        await session.execute(
            sa.select(n.c.notes).where(
                n.c.integration_id == offense["integration_id"], n.c.offense_id == offense["offense_id"]
            )
        )
    ).scalar_one_or_none()
    if notes is not None:  # notes read as their own resource; else what an offense version carried
        offense["notes"] = notes
    d = t.qradar_domain
    offense["domain_name"] = (
        await session.execute(
            sa.select(d.c.name).where(
                d.c.integration_id == offense["integration_id"], d.c.domain_id == offense["domain_id"]
            )
        )
    ).scalar_one_or_none()
    ids = [
        s.get("id") for s in offense["log_sources"] if isinstance(s, dict) and isinstance(s.get("id"), int)
    ]
    assets: list[dict[str, Any]] = []
    if ids:
        ls = t.qradar_log_source
        assets = [
            as_dict(r)
            for r in (
                await session.execute(
                    sa.select(
                        ls.c.id,
                        ls.c.log_source_id,
                        ls.c.name,
                        ls.c.type_name,
                        ls.c.status,
                        ls.c.sending_ip,
                        ls.c.average_eps,
                        ls.c.enabled,
                    )
                    .where(
                        ls.c.integration_id == offense["integration_id"], ls.c.log_source_id.in_(ids[:500])
                    )
                    .order_by(ls.c.name)
                )
            ).all()
        ]
    offense["assets"] = assets
    offense["flows"] = {
        "flow_count": offense["flow_count"],
        "event_count": offense["event_count"],
        "source_address_ids": offense["source_address_ids"],
        "local_destination_address_ids": offense["local_destination_address_ids"],
        "source_addresses": offense["source_addresses"],
        "local_destination_addresses": offense["local_destination_addresses"],
        "destination_networks": offense["destination_networks"],
    }
    from soc_tenant.incidents.views import incidents_for_offense

    offense["incidents"] = await incidents_for_offense(session, scope, offense)
    offense["ti_matches"] = (
        await timatches.record_matches(
            session,
            scope,
            "offense",
            offense["integration_id"],
            str(offense["domain_id"]),
            str(offense["offense_id"]),
        )
        if timatches.may_see(scope)
        else None
    )
    return offense


@router.get(
    "/offenses/by-qradar-id/{integration_id}/{offense_id}/",
    dependencies=[DASHBOARD],
    response_model=OffenseDetail,
)
async def get_offense_by_qradar_id(
    session: ScopedSession,
    scope: AnyScope,
    integration_id: Annotated[str, Path(max_length=200)],
    offense_id: Annotated[int, Path(ge=0, le=BIGINT)],
) -> dict[str, Any]:
    """One offense by the QRadar integration and QRadar's own offense id."""
    return await offense_detail(
        session,
        scope,
        sa.and_(o.c.integration_id == integration_id.replace("\x00", ""), o.c.offense_id == offense_id),
    )


@router.get("/offenses/{offense_pk:int}/", dependencies=[DASHBOARD], response_model=OffenseDetail)
async def get_offense(
    session: ScopedSession, scope: AnyScope, offense_pk: Annotated[int, Path(ge=0, le=BIGINT)]
) -> dict[str, Any]:
    """One offense by our id: categories, rules, addresses, log sources (assets), flows, the
    SOAR incidents (and their tickets) that reference it, and the threat-intel alerts naming its
    indicators (``ti_matches``, with THREAT_INTELLIGENCE)."""
    return await offense_detail(session, scope, o.c.id == offense_pk)


@router.get(
    "/offense-categories/",
    dependencies=[DASHBOARD],
    response_model=Page[OffenseCategoryCount],
    responses=list_responses(),
)
async def list_offense_categories(
    session: ScopedSession,
    scope: AnyScope,
    page: PageParams,
    window: Range,
    q: TextQuery = None,
    include_fp: Annotated[
        bool | None,
        Query(
            description="the original's view: count the SOAR incidents per QRadar category (created "
            "within from/to) — true positives, plus false positives unless false"
        ),
    ] = None,
) -> Any:
    """Offense categories with the number of offenses in each (start day within from/to). With
    ``include_fp`` (the original's parameter), the original's figure instead: incidents per
    ``qradar_category``, counting true positives and, with ``include_fp=true``, false positives."""
    if include_fp is not None:
        from soc_tenant.dashboard import positives as positives

        i = t.soar_incident
        rule = positives.rule()
        counted = sa.or_(rule.true_sql(i), rule.false_sql(i)) if include_fp else rule.true_sql(i)
        filters = [scope.soar_filter(i), counted, i.c.qradar_category.is_not(None)]
        filters.append(text_filter(q, i.c.qradar_category))
        if window.start:
            filters.append(i.c.created >= window.start)
        if window.end:
            filters.append(i.c.created <= window.end)
        n = sa.func.count().label("offenses")
        stmt = (
            sa.select(i.c.qradar_category.label("category"), n).where(*filters).group_by(i.c.qradar_category)
        )
        order = ordering(
            page.sort, {"offenses": n, "category": i.c.qradar_category}, "-offenses", i.c.qradar_category
        )
        return await run_list(
            session, stmt, page, order, principal=scope.principal, name="offense-categories"
        )
    r = t.offense_category_daily
    filters = [scope.qradar_filter(r), text_filter(q, r.c.category)]
    if window.start:
        filters.append(r.c.day >= window.start.date())
    if window.end:
        filters.append(r.c.day <= window.end.date())
    count = sa.func.sum(r.c.n).label("offenses")
    stmt = (
        sa.select(r.c.category, count).where(*filters).group_by(r.c.category).having(sa.func.sum(r.c.n) > 0)
    )
    order = ordering(page.sort, {"offenses": count, "category": r.c.category}, "-offenses", r.c.category)
    return await run_list(session, stmt, page, order, principal=scope.principal, name="offense-categories")


# -------------------------------------------------------------------------------------- assets
ls = t.qradar_log_source


def asset_select() -> sa.Select[Any]:
    lt, ec, d, g = (
        t.qradar_log_source_type,
        t.qradar_event_collector,
        t.qradar_domain,
        t.qradar_log_source_group,
    )
    groups = (
        sa.select(
            sa.func.coalesce(
                sa.func.jsonb_agg(sa.func.jsonb_build_object("id", g.c.group_id, "name", g.c.name)),
                sa.text("'[]'::jsonb"),
            )
        )
        .where(g.c.integration_id == ls.c.integration_id, g.c.group_id == sa.func.any(ls.c.group_ids))
        .scalar_subquery()
        .label("groups")
    )
    return sa.select(
        ls.c.id,
        ls.c.integration_id,
        ls.c.log_source_id,
        ls.c.name,
        ls.c.description,
        ls.c.domain_id,
        d.c.name.label("domain_name"),
        ls.c.type_id,
        sa.func.coalesce(lt.c.name, ls.c.type_name).label("type_name"),
        ls.c.event_collector_id,
        ec.c.name.label("event_collector_name"),
        ls.c.sending_ip,
        ls.c.enabled,
        ls.c.status,
        ls.c.status_messages,
        ls.c.group_ids,
        groups,
        ls.c.average_eps,
        ls.c.creation_time,
        ls.c.modified_time,
        ls.c.last_event_time,
    ).select_from(
        ls.outerjoin(lt, sa.and_(lt.c.integration_id == ls.c.integration_id, lt.c.type_id == ls.c.type_id))
        .outerjoin(
            ec,
            sa.and_(ec.c.integration_id == ls.c.integration_id, ec.c.collector_id == ls.c.event_collector_id),
        )
        .outerjoin(d, sa.and_(d.c.integration_id == ls.c.integration_id, d.c.domain_id == ls.c.domain_id))
    )


ASSET_SORTS = {
    "name": ls.c.name,
    "average_eps": ls.c.average_eps,
    "last_event_time": ls.c.last_event_time,
    "status": ls.c.status,
    "creation_time": ls.c.creation_time,
    "id": ls.c.id,
}


def asset_filters(
    scope: Scope,
    q: str | None,
    status: str | None,
    enabled: bool | None,
    type_id: int | None,
    domain_id: int | None,
) -> list[sa.ColumnElement[bool]]:
    filters = [
        scope.qradar_filter(ls),
        text_filter(q, ls.c.name, ls.c.description, ls.c.sending_ip, ls.c.type_name),
    ]
    if status:
        filters.append(sa.func.upper(ls.c.status) == status.replace("\x00", "").upper())
    if enabled is not None:
        filters.append(ls.c.enabled == enabled)
    if type_id is not None:
        filters.append(ls.c.type_id == type_id)
    if domain_id is not None:
        filters.append(ls.c.domain_id == domain_id)
    return filters


StatusParam = Annotated[str | None, Query(max_length=50)]
TypeParam = Annotated[int | None, Query(ge=0, le=BIGINT)]
DomainParam = Annotated[int | None, Query(ge=0, le=BIGINT)]


@dataclass
class AssetExtra:
    """The original's asset filters."""

    clauses: list[sa.ColumnElement[bool]]


def asset_extra_params(
    average_eps: Annotated[float | None, Query(ge=0, le=1e12, description="exactly this average EPS")] = None,
    sub_status: Annotated[
        str | None, Query(max_length=200, description="comma-separated texts, any of them in the status")
    ] = None,
    last_event_date: Annotated[
        str | None, Query(max_length=32, description="last event on this day, YYYY-MM-DD")
    ] = None,
    start_date: Annotated[
        str | None, Query(max_length=32, description="created on or after, YYYY-MM-DD")
    ] = None,
    end_date: Annotated[
        str | None, Query(max_length=32, description="created on or before, YYYY-MM-DD")
    ] = None,
    log_source_type: Annotated[
        str | None, Query(max_length=200, description="text in the log source type's name")
    ] = None,
) -> AssetExtra:
    out: list[sa.ColumnElement[bool]] = []
    if average_eps is not None:
        out.append(ls.c.average_eps == average_eps)
    if sub_status and sub_status.replace("\x00", "").strip():
        parts = [p.strip() for p in sub_status.replace("\x00", "").split(",") if p.strip()]
        out.append(sa.or_(*[ls.c.status.ilike(like_pattern(p), escape="\\") for p in parts]))
    day = parse_day("last_event_date", last_event_date)
    if day is not None:
        out += [ls.c.last_event_time >= day_start(day), ls.c.last_event_time <= day_end(day)]
    first, last = parse_day("start_date", start_date), parse_day("end_date", end_date)
    if first and last and first > last:
        raise bad_param("start_date", "start_date must not be after end_date")
    if first:
        out.append(ls.c.creation_time >= day_start(first))
    if last:
        out.append(ls.c.creation_time <= day_end(last))
    if log_source_type and log_source_type.replace("\x00", "").strip():
        out.append(ls.c.type_name.ilike(like_pattern(log_source_type.strip()), escape="\\"))
    return AssetExtra(out)


AssetExtraParams = Annotated[AssetExtra, Depends(asset_extra_params)]


@router.get("/assets/", dependencies=[ASSETS], response_model=Page[Asset], responses=list_responses())
async def list_assets(
    session: ScopedSession,
    scope: AnyScope,
    page: PageParams,
    q: TextQuery = None,
    status: StatusParam = None,
    enabled: bool | None = None,
    type_id: TypeParam = None,
    domain_id: DomainParam = None,
    extra: AssetExtraParams = AssetExtra([]),
) -> Any:
    """Log sources (the seed's assets) with status, type, collector, groups and average EPS
    (filter: text, status, enabled, type, domain, and the original's average_eps, sub_status,
    last_event_date, start_date/end_date of creation, log_source_type by name)."""
    stmt = asset_select().where(*asset_filters(scope, q, status, enabled, type_id, domain_id), *extra.clauses)
    order = ordering(page.sort, ASSET_SORTS, "name", ls.c.id)
    return await run_list(session, stmt, page, order, principal=scope.principal, name="assets")


@router.get("/assets/counts/", dependencies=[ASSETS], response_model=AssetCounts)
async def asset_counts(session: ScopedSession, scope: AnyScope) -> dict[str, Any]:
    """Totals: all, enabled, disabled, per status and per type."""
    return await asset_health(session, scope)


async def asset_health(session: ScopedSession, scope: Scope) -> dict[str, Any]:
    """Totals, per status and per type, in one pass (GROUPING SETS)."""
    status_expr = sa.func.coalesce(sa.func.upper(ls.c.status), "UNKNOWN").label("status")
    type_expr = sa.func.coalesce(ls.c.type_name, sa.cast(ls.c.type_id, sa.Text), "unknown").label("type_name")
    rows = (
        await session.execute(
            sa.select(
                sa.func.grouping(status_expr, type_expr).label("g"),
                status_expr,
                type_expr,
                sa.func.count().label("n"),
                sa.func.count().filter(ls.c.enabled).label("enabled"),
                sa.func.coalesce(sa.func.sum(ls.c.average_eps), 0.0).label("eps"),
            )
            .where(scope.qradar_filter(ls))
            .group_by(sa.func.grouping_sets(sa.tuple_(), sa.tuple_(status_expr), sa.tuple_(type_expr)))
        )
    ).all()
    total = enabled = 0
    eps = 0.0
    by_status: dict[str, int] = {}
    by_type: list[dict[str, Any]] = []
    for r in rows:
        if r.g == 3:  # the grand total
            total, enabled, eps = int(r.n), int(r.enabled), float(r.eps)
        elif r.g == 1:  # per status (type aggregated away)
            by_status[r.status] = int(r.n)
        else:
            by_type.append({"type_name": r.type_name, "count": int(r.n)})
    by_type.sort(key=lambda x: (-x["count"], x["type_name"]))
    return {
        "total": total,
        "enabled": enabled,
        "disabled": total - enabled,
        "total_average_eps": eps,
        "by_status": by_status,
        "by_type": by_type[:50],
    }


ASSET_EXPORT_COLUMNS = [
    "id",
    "integration_id",
    "log_source_id",
    "name",
    "description",
    "domain_id",
    "domain_name",
    "type_name",
    "event_collector_name",
    "sending_ip",
    "enabled",
    "status",
    "groups",
    "average_eps",
    "creation_time",
    "modified_time",
    "last_event_time",
]


@router.get(
    "/assets/export/", dependencies=[ASSETS], response_class=Response, responses=file_responses(CSV, XLSX)
)
async def export_assets(
    session: ScopedSession,
    scope: AnyScope,
    file_type: Annotated[Literal["csv", "xlsx"], Query()] = "csv",
    q: TextQuery = None,
    status: StatusParam = None,
    enabled: bool | None = None,
    type_id: TypeParam = None,
    domain_id: DomainParam = None,
    extra: AssetExtraParams = AssetExtra([]),
) -> Response:
    """The asset list as CSV or Excel (the same filters as the list)."""
    stmt = (
        asset_select()
        .where(*asset_filters(scope, q, status, enabled, type_id, domain_id), *extra.clauses)
        .order_by(ls.c.name, ls.c.id)
    )
    rows = []
    for r in (await session.execute(stmt.limit(100_000))).all():
        row = as_dict(r)
        row["groups"] = [g.get("name") for g in row["groups"] or []]
        rows.append(row)
    if file_type == "xlsx":
        return xlsx_response(ASSET_EXPORT_COLUMNS, rows, "assets")
    return csv_response(ASSET_EXPORT_COLUMNS, rows, "assets")


@router.get("/assets/top-log-sources/", dependencies=[ASSETS], response_model=Page[Asset])
async def top_log_sources(
    session: ScopedSession, scope: AnyScope, limit: Annotated[int, Query(ge=1, le=100)] = 10
) -> dict[str, Any]:
    """The busiest log sources by average EPS."""
    rows = (
        await session.execute(
            asset_select()
            .where(scope.qradar_filter(ls))
            .order_by(ls.c.average_eps.desc(), ls.c.id)
            .limit(limit)
        )
    ).all()
    return {"items": [as_dict(r) for r in rows], "total": len(rows), "limit": limit, "offset": 0}


@router.get("/assets/per-tenant/", dependencies=[ASSETS], response_model=Page[AssetsPerTenant])
async def assets_per_tenant(session: ScopedSession, scope: AnyScope) -> dict[str, Any]:
    """Assets per QRadar tenant (domain): total, enabled, in error, EPS."""
    d = t.qradar_domain
    status = sa.func.upper(ls.c.status)
    rows = (
        await session.execute(
            sa.select(
                ls.c.integration_id,
                ls.c.domain_id,
                sa.func.max(d.c.name).label("domain_name"),
                sa.func.count().label("total"),
                sa.func.count().filter(ls.c.enabled).label("enabled"),
                sa.func.count().filter(status == "ERROR").label("error"),
                sa.func.coalesce(sa.func.sum(ls.c.average_eps), 0.0).label("average_eps"),
            )
            .select_from(
                ls.outerjoin(
                    d, sa.and_(d.c.integration_id == ls.c.integration_id, d.c.domain_id == ls.c.domain_id)
                )
            )
            .where(scope.qradar_filter(ls))
            .group_by(ls.c.integration_id, ls.c.domain_id)
            .order_by(sa.text("total DESC"), ls.c.domain_id)
        )
    ).all()
    return {"items": [as_dict(r) for r in rows], "total": len(rows), "limit": len(rows), "offset": 0}


# ----------------------------------------------------------------------------------------- eps
def eps_series(scope: Scope, granularity: str, window: TimeRange) -> sa.Select[Any]:
    """EPS per (domain, window): the domain-level sample where there is one, else the collectors' sum."""
    e = t.eps_sample
    has_domain_row = sa.func.bool_or(e.c.collector == "")
    avg = sa.case(
        (has_domain_row, sa.func.max(e.c.average_eps).filter(e.c.collector == "")),
        else_=sa.func.sum(e.c.average_eps),
    )
    peak = sa.case(
        (has_domain_row, sa.func.max(e.c.peak_eps).filter(e.c.collector == "")),
        else_=sa.func.sum(e.c.peak_eps),
    )
    return (
        sa.select(
            e.c.integration_id,
            e.c.domain_id,
            e.c.window_start,
            sa.func.max(e.c.window_end).label("window_end"),
            avg.label("average_eps"),
            peak.label("peak_eps"),
        )
        .where(
            scope.qradar_filter(e),
            e.c.granularity == granularity,
            e.c.window_start >= window.start,
            e.c.window_start <= window.end,
        )
        .group_by(e.c.integration_id, e.c.domain_id, e.c.window_start)
    )


def utilisation(
    volume_type: str | None, contracted: float | None, average_eps: float | None, peak_eps: float | None
) -> dict[str, Any]:
    """Usage against the contract: EPS directly, GB/day through an estimate from the EPS."""
    average_eps = average_eps or 0.0
    gb_per_day = round(average_eps * 86400 * AVERAGE_EVENT_BYTES / 1e9, 3)
    out: dict[str, Any] = {
        "estimated_gb_per_day": gb_per_day,
        "utilisation_pct": None,
        "peak_utilisation_pct": None,
    }
    if contracted and contracted > 0:
        if volume_type == "GB_PER_DAY":
            out["utilisation_pct"] = round(gb_per_day / contracted * 100, 2)
        else:
            out["utilisation_pct"] = round(average_eps / contracted * 100, 2)
            out["peak_utilisation_pct"] = round((peak_eps or 0.0) / contracted * 100, 2)
    return out


def eps_window(granularity: str, window: TimeRange) -> Bounded:
    return window.bounded(days=1 if granularity == "hour" else 30)


async def eps_summary(
    session: ScopedSession, scope: Scope, granularity: str, window: TimeRange
) -> list[dict[str, Any]]:
    window = eps_window(granularity, window)
    series = eps_series(scope, granularity, window).subquery()
    stats = {
        (r.integration_id, r.domain_id): r
        for r in (
            await session.execute(
                sa.select(
                    series.c.integration_id,
                    series.c.domain_id,
                    sa.func.avg(series.c.average_eps).label("average_eps"),
                    sa.func.max(series.c.peak_eps).label("peak_eps"),
                    sa.func.count().label("samples"),
                    sa.func.max(series.c.window_end).label("last_window_end"),
                ).group_by(series.c.integration_id, series.c.domain_id)
            )
        ).all()
    }
    m, d = t.qradar_mapping, t.qradar_domain
    mapped = (
        await session.execute(
            sa.select(
                m.c.integration_id,
                m.c.domain_id,
                m.c.contracted_volume_type,
                m.c.contracted_volume,
                sa.cast(m.c.company_id, sa.Text).label("company_id"),
                d.c.name,
            )
            .select_from(
                m.outerjoin(
                    d, sa.and_(d.c.integration_id == m.c.integration_id, d.c.domain_id == m.c.domain_id)
                )
            )
            .where(
                m.c.active,
                sa.true() if scope.everything else sa.cast(m.c.company_id, sa.Text) == scope.company_id,
            )
            .order_by(m.c.integration_id, m.c.domain_id)
        )
    ).all()
    out = []
    for row in mapped:
        s = stats.get((row.integration_id, row.domain_id))
        avg = float(s.average_eps) if s and s.average_eps is not None else None
        peak = float(s.peak_eps) if s and s.peak_eps is not None else None
        contracted = float(row.contracted_volume) if row.contracted_volume is not None else None
        out.append(
            {
                "company_id": row.company_id,
                "integration_id": row.integration_id,
                "domain_id": row.domain_id,
                "domain_name": row.name,
                "granularity": granularity,
                "from": window.start.isoformat(),
                "to": window.end.isoformat(),
                "average_eps": None if avg is None else round(avg, 3),
                "peak_eps": peak,
                "samples": s.samples if s else 0,
                "last_window_end": s.last_window_end.isoformat() if s and s.last_window_end else None,
                "contracted_volume_type": row.contracted_volume_type,
                "contracted_volume": contracted,
                **utilisation(row.contracted_volume_type, contracted, avg, peak),
            }
        )
    return out


Granularity = Annotated[Literal["hour", "day"], Query()]


@router.get("/eps/", dependencies=[DASHBOARD], response_model=Page[EpsUsage])
async def eps(
    session: ScopedSession, scope: CompanyScope, window: Range, granularity: Granularity = "hour"
) -> dict[str, Any]:
    """Average and peak EPS per QRadar tenant over the window (hourly samples: last 24 h by
    default; daily: last 30 days) against the contracted volume, with utilisation %."""
    items = await eps_summary(session, scope, granularity, window)
    return {"items": items, "total": len(items), "limit": len(items), "offset": 0}


@router.get("/eps/graph/", dependencies=[DASHBOARD], response_model=EpsGraph)
async def eps_graph(
    session: ScopedSession, scope: CompanyScope, window: Range, granularity: Granularity = "hour"
) -> dict[str, Any]:
    """EPS over time for the company (its domains summed per window) and its contracted EPS."""
    window = eps_window(granularity, window)
    series = eps_series(scope, granularity, window).subquery()
    points = [
        {
            "window_start": r.window_start.isoformat(),
            "average_eps": round(float(r.average_eps or 0), 3),
            "peak_eps": float(r.peak_eps or 0),
        }
        for r in (
            await session.execute(
                sa.select(
                    series.c.window_start,
                    sa.func.sum(series.c.average_eps).label("average_eps"),
                    sa.func.sum(series.c.peak_eps).label("peak_eps"),
                )
                .group_by(series.c.window_start)
                .order_by(series.c.window_start)
                .limit(5000)
            )
        ).all()
    ]
    m = t.qradar_mapping
    contracted = (
        await session.execute(
            sa.select(sa.func.sum(m.c.contracted_volume)).where(
                m.c.active,
                sa.cast(m.c.company_id, sa.Text) == scope.company_id,
                m.c.contracted_volume_type == "EPS",
            )
        )
    ).scalar_one()
    return {
        "granularity": granularity,
        "from": window.start.isoformat(),
        "to": window.end.isoformat(),
        "contracted_eps": float(contracted) if contracted is not None else None,
        "points": points,
    }


# ---------------------------------------------------------------------------------- event logs
EVENT_LOG_FAMILIES = (
    "event_counts",
    "daily_events",
    "correlated",
    "weekly_correlated",
    "suspicious",
    "dos",
    "top_dos",
    "top_alerts",
    "daily_closure_reasons",
    "total_traffic",
    "destination_addresses",
    "top_destination_connections",
    "successful_logons",
    "remote_users",
    "weekly_avg_eps",
    "monthly_avg_eps",
    "last_month_avg_eps",
    "total_events",
    "daily_event_counts",
    "reconnaissance",
    "source_geolocation",
)


@router.get("/event-logs/", dependencies=[DASHBOARD], response_model=EventLogFamilies)
async def event_log_families() -> dict[str, Any]:
    """The event-log catalogue's families."""
    return {
        "items": list(EVENT_LOG_FAMILIES),
        "total": len(EVENT_LOG_FAMILIES),
        "limit": len(EVENT_LOG_FAMILIES),
        "offset": 0,
    }


@router.get(
    "/event-logs/{family}/",
    dependencies=[DASHBOARD],
    response_model=Page[EventLogSample],
    responses=list_responses(),
)
async def event_logs(
    session: ScopedSession,
    scope: AnyScope,
    page: PageParams,
    window: Range,
    family: Annotated[str, Path(max_length=64)],
    granularity: Annotated[Literal["hour", "day", "week", "month", "window"] | None, Query()] = None,
    domain_id: DomainParam = None,
) -> Any:
    """Results of one event-log family (an AQL query per domain and window) within from/to (default:
    the last 30 days), newest window first."""
    if family not in EVENT_LOG_FAMILIES:
        raise ApiError(
            404,
            "unknown_family",
            f"no event-log family {family[:64]!r}",
            {"families": list(EVENT_LOG_FAMILIES)},
        )
    window = window.bounded(days=30)
    s = t.metric_sample
    filters = [
        scope.qradar_filter(s),
        s.c.family == family,
        s.c.window_start >= window.start,
        s.c.window_start <= window.end,
    ]
    if granularity:
        filters.append(s.c.granularity == granularity)
    if domain_id is not None:
        filters.append(s.c.domain_id == domain_id)
    stmt = sa.select(
        s.c.integration_id,
        s.c.domain_id,
        s.c.family,
        s.c.granularity,
        s.c.window_start,
        s.c.window_end,
        s.c.rows,
    ).where(*filters)
    order = ordering(
        page.sort,
        {"window_start": s.c.window_start, "domain_id": s.c.domain_id},
        "-window_start",
        s.c.domain_id,
    )
    return await run_list(session, stmt, page, order, principal=scope.principal, name=f"event-logs-{family}")


def since(days: int) -> datetime:
    return datetime.now(UTC) - timedelta(days=days)
