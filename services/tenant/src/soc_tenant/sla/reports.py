"""SLA views: each incident's TTA / TTN / TTDN against the SLA that applies to it (the company's
own, or the default), compliance per priority, breaches, overview cards with MTTA and MTTR.

Incidents are those created within ``from``/``to`` (default: the last 30 days)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Query
from soc_shared.api import Page

from soc_tenant.dashboard import positives as positives
from soc_tenant.db import ScopedSession
from soc_tenant.incidents.views import OPEN_STATUSES, IncidentFilterParams, IncidentFilters, PriorityList
from soc_tenant.readmodel import tables as t
from soc_tenant.readmodel.common import (
    DASHBOARD,
    Bounded,
    CompanyScope,
    PageParams,
    Range,
    ReadRoute,
    Scope,
    TextQuery,
    TimeRange,
    as_dict,
    list_responses,
    ordering,
    parse_levels,
    run_list,
    text_filter,
)
from soc_tenant.sla import rules as slamath
from soc_tenant.sla.responses import (
    SeverityGraph,
    SeverityMetricsPage,
    SlaCompliance,
    SlaIncident,
    SlaOverview,
)

router = APIRouter(prefix="/tenant/sla", tags=["sla"], route_class=ReadRoute)

# SLA aggregates scan every incident of the window (~80k rows/month for a 1M-incident company,
# 0.3-0.7 s), and their answer moves slowly: they are kept for a minute per (company, window),
# the default window being aligned on the minute. Lists and details are always computed live.
SLA_CACHE_SECONDS = 60.0
_cache: dict[tuple[Any, ...], tuple[float, Any]] = {}


async def cached(key: tuple[Any, ...], compute: Any) -> Any:
    now = time.monotonic()
    hit = _cache.get(key)
    if hit is not None and now - hit[0] < SLA_CACHE_SECONDS:
        return hit[1]
    value = await compute()
    if len(_cache) > 10_000:
        _cache.clear()
    _cache[key] = (now, value)
    return value


def window_key(window: TimeRange) -> tuple[Any, ...]:
    """The window defaulted like the views do, with an open end rounded to the minute."""
    end = window.end or datetime.now(UTC).replace(second=0, microsecond=0)
    return (window.start or end - timedelta(days=30), end)


i = t.soar_incident
STEPS = slamath.STEPS


class SlaStatusParam(StrEnum):
    met = "met"
    breached = "breached"
    pending = "pending"
    no_sla = "no_sla"
    no_start = "no_start"


async def company_slas(session: ScopedSession, scope: Scope) -> dict[str, slamath.CompanySla]:
    assert scope.company_id is not None
    return {scope.company_id: await slamath.load_company_sla(session, scope.company_id)}


def sla_select(
    scope: Scope,
    slas: dict[str, slamath.CompanySla],
    window: TimeRange,
    now: datetime,
    pairs: list[tuple[str, str, str | None]] | None = None,
    inner: bool = False,
    extra: tuple[Any, ...] = (),
) -> sa.Select[Any]:
    """Incidents created within the window with their targets, the status of each step measured
    from the company's clock start, and the true/false-positive classification."""
    if pairs is None:
        pairs = [(integration_id, account, scope.company_id) for integration_id, account in scope.soar]
    targets = slamath.targets_values(pairs, slas).subquery("sla_targets")
    on = sa.and_(
        targets.c.integration_id == i.c.integration_id,
        targets.c.account == i.c.account,
        targets.c.level == i.c.priority,
    )
    start = slamath.start_sql(targets.c.clock, i.c.occurred, i.c.created)
    minutes = {s: (sa.extract("epoch", i.c[f"{s}_at"] - start) / 60.0) for s in STEPS}
    rule = positives.rule()
    filters = [i.c.created >= window.start, i.c.created <= window.end, *extra]
    if not inner:
        filters.append(scope.soar_filter(i))
    steps = (
        sa.select(
            i.c.id,
            i.c.integration_id,
            i.c.incident_id,
            i.c.account,
            i.c.name,
            i.c.status,
            i.c.severity,
            i.c.priority,
            i.c.owner,
            i.c.created,
            i.c.occurred,
            i.c.closed,
            i.c.tta_at,
            i.c.ttn_at,
            i.c.ttdn_at,
            i.c.itsm_sync_status,
            targets.c.company_id,
            sa.func.coalesce(targets.c.clock, slamath.CLOCK_OCCURRED).label("clock_start"),
            start.label("started"),
            rule.true_sql(i).label("true_positive"),
            rule.false_sql(i).label("false_positive"),
            sa.or_(start.is_(None), *[i.c[f"{s}_at"].is_(None) for s in STEPS]).label("missing_timestamps"),
            *[sa.cast(targets.c[f"{s}_minutes"], sa.Integer).label(f"{s}_target_minutes") for s in STEPS],
            *[minutes[s].label(f"{s}_minutes") for s in STEPS],
            *[
                slamath.status_sql(start, i.c[f"{s}_at"], targets.c[f"{s}_minutes"], now).label(f"{s}_status")
                for s in STEPS
            ],
            (sa.extract("epoch", i.c.closed - start) / 60.0).label("resolution_minutes"),
        )
        .select_from(i.join(targets, on) if inner else i.outerjoin(targets, on))
        .where(*filters)
        # OFFSET 0 keeps PostgreSQL from pulling the subquery up into the aggregates above it, which
        # would evaluate each step's status expression once per reference (dozens per row) instead
        # of once: 82k incidents' compliance took seconds instead of a fraction of one.
        .offset(0)
    ).subquery("sla_steps")
    judged = sa.and_(*[steps.c[f"{s}_status"].in_((slamath.MET, slamath.BREACHED)) for s in STEPS])
    breaches = sum(
        (sa.cast(steps.c[f"{s}_status"] == slamath.BREACHED, sa.Integer) for s in STEPS), sa.literal(0)
    )
    return sa.select(
        steps,
        slamath.overall_sql(*[steps.c[f"{s}_status"] for s in STEPS]).label("sla_status"),
        # The original's population: true positives whose three steps can be judged.
        sa.and_(steps.c.true_positive.is_(True), judged).label("counted"),
        breaches.label("breaches"),
    )


def sla_row(row: Any) -> dict[str, Any]:
    d = as_dict(row)
    d["sla"] = {
        s: {
            "status": d.pop(f"{s}_status"),
            "elapsed_minutes": _round(d.pop(f"{s}_minutes")),
            "target_minutes": d.pop(f"{s}_target_minutes"),
        }
        for s in STEPS
    }
    d["sla"]["overall"] = d.pop("sla_status")
    d["sla"]["clock_start"] = d.pop("clock_start")
    d["sla"]["started"] = d.pop("started")
    breaches = d.pop("breaches")
    d["sla"]["counted"] = bool(d["counted"])
    d["sla"]["compliance"] = (
        None
        if not d["counted"]
        else "fully_compliant"
        if breaches == 0
        else "non_compliant"
        if breaches == len(STEPS)
        else "partially_compliant"
    )
    d["positive"] = (
        positives.TRUE_POSITIVE
        if d.pop("true_positive")
        else positives.FALSE_POSITIVE
        if d.pop("false_positive")
        else positives.NOT_COUNTED
    )
    d.pop("false_positive", None)
    d.pop("counted")
    d.pop("missing_timestamps", None)
    d["resolution_minutes"] = _round(d["resolution_minutes"])
    d.pop("company_id", None)
    return d


def _round(value: Any) -> float | None:
    return None if value is None else round(float(value), 2)


SLA_SORTS = {"created": i.c.created, "priority": i.c.priority, "status": i.c.status, "id": i.c.id}


class SlaTypeParam(StrEnum):
    tta = "tta"
    ttn = "ttn"
    ttdn = "ttdn"


class ShowOnlyParam(StrEnum):
    all = "all"
    breached = "breached"
    achieved = "achieved"  # met


def parse_sla_levels(values: list[str] | None) -> list[str] | None:
    return parse_levels("sla_level", values)


async def sla_list(
    session: ScopedSession,
    scope: Scope,
    page: Any,
    window: TimeRange,
    q: str | None,
    priority: list[Any] | None,
    sla_status: list[Any] | None,
    name: str,
    incident: IncidentFilters | None = None,
    sla_type: SlaTypeParam | None = None,
    show_only: ShowOnlyParam = ShowOnlyParam.all,
    sla_level: list[str] | None = None,
) -> Any:
    """SLA rows of the window. ``sla_type`` judges one step (tta, ttn or ttdn) instead of the
    overall status; ``show_only`` keeps the breached or the achieved (met) ones; ``sla_status``
    keeps the listed statuses."""
    window = window.bounded(30)
    slas = await company_slas(session, scope)
    extra = [text_filter(q, i.c.name, i.c.incident_id)]
    if priority:
        extra.append(i.c.priority.in_([p.value for p in priority]))
    if sla_level:
        extra.append(i.c.priority.in_(sla_level))
    if incident is not None:
        extra += await incident.resolved_clauses(session, scope, window)
    sub = sla_select(scope, slas, window, datetime.now(UTC), extra=tuple(extra)).subquery("sla_incidents")
    judged = sub.c[f"{sla_type.value}_status"] if sla_type else sub.c.sla_status
    stmt = sa.select(sub)
    if sla_status:
        stmt = stmt.where(judged.in_([s.value for s in sla_status]))
    if show_only is ShowOnlyParam.breached:
        stmt = stmt.where(judged == slamath.BREACHED)
    elif show_only is ShowOnlyParam.achieved:
        stmt = stmt.where(judged == slamath.MET)
    sorts = {
        "created": sub.c.created,
        "priority": sub.c.priority,
        "status": sub.c.status,
        "id": sub.c.id,
        "sla_status": sub.c.sla_status,
    }
    order = ordering(page.sort, sorts, "-created", sub.c.id)
    return await run_list(session, stmt, page, order, principal=scope.principal, name=name, serialize=sla_row)


SlaStatusList = Annotated[list[SlaStatusParam] | None, Query()]
SlaLevelList = Annotated[
    list[str] | None,
    Query(max_length=20, description="the original's SLA level: 4 P1, 3 P2, 2 P3, 1 P4 (or P1..P4)"),
]
SlaTypeQuery = Annotated[
    SlaTypeParam | None,
    Query(description="judge one step only: tta, ttn or ttdn (default: the overall status)"),
]


@router.get(
    "/incidents/", dependencies=[DASHBOARD], response_model=Page[SlaIncident], responses=list_responses()
)
async def sla_incidents(
    session: ScopedSession,
    scope: CompanyScope,
    page: PageParams,
    window: Range,
    q: TextQuery = None,
    priority: PriorityList = None,
    sla_status: SlaStatusList = None,
    sla_type: SlaTypeQuery = None,
    show_only: Annotated[ShowOnlyParam, Query(description="all, breached or achieved")] = ShowOnlyParam.all,
    sla_level: SlaLevelList = None,
    incident: IncidentFilterParams = IncidentFilters(),
) -> Any:
    """Incidents with each SLA step met, breached or pending (filter by priority, SLA status, and
    every incident filter of ``/tenant/soar-incidents/``)."""
    return await sla_list(
        session,
        scope,
        page,
        window,
        q,
        priority,
        sla_status,
        "sla-incidents",
        incident,
        sla_type,
        show_only,
        parse_sla_levels(sla_level),
    )


@router.get(
    "/breached/", dependencies=[DASHBOARD], response_model=Page[SlaIncident], responses=list_responses()
)
async def breached_incidents(
    session: ScopedSession,
    scope: CompanyScope,
    page: PageParams,
    window: Range,
    q: TextQuery = None,
    priority: PriorityList = None,
    sla_type: SlaTypeQuery = None,
    show_only: Annotated[
        ShowOnlyParam, Query(description="breached (default), achieved, or all of the judged incidents")
    ] = ShowOnlyParam.breached,
    sla_level: SlaLevelList = None,
    incident: IncidentFilterParams = IncidentFilters(),
) -> Any:
    """Incidents with a breached SLA step — with ``sla_type``, breached at that step only
    (``show_only=achieved``: met at that step; ``all``: both), with every incident filter of
    ``/tenant/soar-incidents/``."""
    return await sla_list(
        session,
        scope,
        page,
        window,
        q,
        priority,
        [SlaStatusParam.breached, SlaStatusParam.met] if show_only is ShowOnlyParam.all else None,
        "sla-breached",
        incident,
        sla_type,
        show_only,
        parse_sla_levels(sla_level),
    )


def counts_sql(sub: Any) -> list[Any]:
    """One aggregate row: the original's figures over the counted incidents, ours over all."""
    counted = sub.c.counted.is_(True)
    cols = [
        sa.func.count().label("incidents"),
        sa.func.count().filter(counted).label("counted"),
        sa.func.count().filter(sub.c.true_positive.is_(True)).label("true_positives"),
        sa.func.count().filter(sub.c.false_positive.is_(True)).label("false_positives"),
        sa.func.count().filter(sub.c.missing_timestamps.is_(True)).label("missing_timestamps"),
    ]
    for s in STEPS:
        status = sub.c[f"{s}_status"]
        done = sub.c[f"{s}_at"].is_not(None)
        cols += [
            sa.func.count().filter(counted, status == slamath.MET).label(f"{s}_met"),
            sa.func.count().filter(counted, status == slamath.BREACHED).label(f"{s}_breached"),
            sa.func.count().filter(status == slamath.MET).label(f"{s}_all_met"),
            sa.func.count().filter(status == slamath.BREACHED, done).label(f"{s}_all_breached"),
            sa.func.count().filter(status == slamath.PENDING).label(f"{s}_pending"),
            sa.func.count().filter(status == slamath.BREACHED, sa.not_(done)).label(f"{s}_breaching"),
            sa.func.count().filter(status == slamath.NO_SLA).label(f"{s}_no_sla"),
            sa.func.count().filter(status == slamath.NO_START).label(f"{s}_no_start"),
        ]
    cols += [
        sa.func.count().filter(counted, sub.c.breaches == 0).label("fully_compliant"),
        sa.func.count()
        .filter(counted, sub.c.breaches.between(1, len(STEPS) - 1))
        .label("partially_compliant"),
        sa.func.count().filter(counted, sub.c.breaches == len(STEPS)).label("non_compliant"),
    ]
    for status in slamath.STATUSES:
        cols.append(sa.func.count().filter(sub.c.sla_status == status).label(f"overall_{status}"))
    return cols


def shape_counts(row: Any) -> dict[str, Any]:
    """The original's figures (``counted``, per step ``met``/``breached``/``compliance_pct``,
    ``overall``) and, under ``ours``, the figures the original did not have."""
    m = row if isinstance(row, dict) else row._mapping
    n = {k: int(v or 0) for k, v in m.items() if k not in ("priority", "company_id")}
    counted = n["counted"]
    out: dict[str, Any] = {
        "incidents": n["incidents"],
        "counted": counted,
    }
    for s in STEPS:
        out[s] = {
            "met": n[f"{s}_met"],
            "breached": n[f"{s}_breached"],
            "compliance_pct": slamath.compliance_pct(n[f"{s}_met"], counted),
        }
    out["overall"] = {
        "fully_compliant": n["fully_compliant"],
        "partially_compliant": n["partially_compliant"],
        "non_compliant": n["non_compliant"],
        "compliance_pct": slamath.compliance_pct(n["fully_compliant"], counted),
    }
    out["ours"] = {
        "true_positives": n["true_positives"],
        "false_positives": n["false_positives"],
        "not_counted": n["incidents"] - counted,
        "missing_timestamps": n["missing_timestamps"],
        "steps": {
            s: {
                "met": n[f"{s}_all_met"],
                "breached": n[f"{s}_all_breached"],
                "pending": n[f"{s}_pending"],
                "breaching": n[f"{s}_breaching"],
                "no_sla": n[f"{s}_no_sla"],
                "no_start": n[f"{s}_no_start"],
            }
            for s in STEPS
        },
        "overall": {status: n[f"overall_{status}"] for status in slamath.STATUSES},
    }
    return out


async def compliance(session: ScopedSession, scope: Scope, window: TimeRange) -> dict[str, Any]:
    start, end = window_key(window)
    return await cached(
        ("compliance", scope.company_id, start, end),
        lambda: _compliance(session, scope, Bounded(start, end)),
    )


async def _compliance(session: ScopedSession, scope: Scope, window: Bounded) -> dict[str, Any]:
    slas = await company_slas(session, scope)
    sub = sla_select(scope, slas, window, datetime.now(UTC)).subquery()
    rows = (
        await session.execute(
            sa.select(sub.c.priority, *counts_sql(sub)).group_by(sub.c.priority).order_by(sub.c.priority)
        )
    ).all()
    by_priority = {r.priority: shape_counts(r) for r in rows}
    sums: dict[str, int] = {}
    for r in rows:
        for key, value in r._mapping.items():
            if key != "priority":
                sums[key] = sums.get(key, 0) + int(value)
    total_row = sums or {c.name: 0 for c in counts_sql(sub)}
    targets = {
        lvl: {s: tgt.minutes(s) for s in STEPS}
        if (tgt := slas[scope.company_id or ""].defaults.get(lvl))
        else None
        for lvl in slamath.LEVELS
    }
    return {
        "from": window.start.isoformat(),
        "to": window.end.isoformat(),
        "clock_start": slas[scope.company_id or ""].clock_start,
        "counted_rule": positives.rule().describe(),
        "by_priority": by_priority,
        "total": shape_counts(total_row),
        "default_targets": targets,
        "uses_company_sla": slas[scope.company_id or ""].use_company,
    }


@router.get("/compliance/", dependencies=[DASHBOARD], response_model=SlaCompliance)
async def sla_compliance(session: ScopedSession, scope: CompanyScope, window: Range) -> dict[str, Any]:
    """Per priority and step, the original's figures over the counted incidents (true positives
    with all three step times): met, breached, compliance % = met ÷ counted; overall: fully /
    partially / non compliant, compliance % = fully compliant ÷ counted. Under ``ours``: every
    incident of the window by step status (pending, breaches in progress, …), false positives,
    incidents missing a timestamp."""
    return await compliance(session, scope, window)


@router.get("/severity-graph/", dependencies=[DASHBOARD], response_model=SeverityGraph)
async def severity_graph(
    session: ScopedSession,
    scope: CompanyScope,
    window: Range,
    by: Annotated[Literal["priority", "severity"], Query()] = "priority",
) -> dict[str, Any]:
    """Incidents per day per priority (or severity), from the daily rollup."""
    window = window.bounded(30)
    r = t.incident_daily
    dim = r.c[by]
    rows = (
        await session.execute(
            sa.select(r.c.day, dim, sa.func.sum(r.c.n))
            .where(scope.soar_filter(r), r.c.day >= window.start.date(), r.c.day <= window.end.date())
            .group_by(r.c.day, dim)
            .order_by(r.c.day, dim)
        )
    ).all()
    series: dict[str, dict[str, int]] = {}
    for day, key, n in rows:
        series.setdefault(day.isoformat(), {})[key] = int(n)
    return {
        "by": by,
        "from": window.start.isoformat(),
        "to": window.end.isoformat(),
        "points": [{"day": d, "counts": c} for d, c in series.items()],
    }


@router.get("/severity-metrics/", dependencies=[DASHBOARD], response_model=SeverityMetricsPage)
async def severity_metrics(session: ScopedSession, scope: CompanyScope, window: Range) -> dict[str, Any]:
    """Per priority — the original's figures over the counted incidents (true positives with all
    three step times): ``counted``, ``<step>_met``, ``<step>_breached``; ours over every incident
    of the window: incidents, open, closed, average minutes from the clock start to each step and
    to closure; and the targets."""
    window = window.bounded(30)
    slas = await company_slas(session, scope)
    sub = sla_select(scope, slas, window, datetime.now(UTC)).subquery()
    rows = (
        await session.execute(
            sa.select(
                sub.c.priority,
                sa.func.count().label("incidents"),
                sa.func.count().filter(sub.c.counted.is_(True)).label("counted"),
                sa.func.count().filter(sub.c.status.in_(OPEN_STATUSES)).label("open"),
                *[sa.func.avg(sub.c[f"{s}_minutes"]).label(f"avg_{s}_minutes") for s in STEPS],
                sa.func.avg(sub.c.resolution_minutes).label("avg_resolution_minutes"),
                *[
                    sa.func.count()
                    .filter(sub.c.counted.is_(True), sub.c[f"{s}_status"] == slamath.MET)
                    .label(f"{s}_met")
                    for s in STEPS
                ],
                *[
                    sa.func.count()
                    .filter(sub.c.counted.is_(True), sub.c[f"{s}_status"] == slamath.BREACHED)
                    .label(f"{s}_breached")
                    for s in STEPS
                ],
                *[sa.func.max(sub.c[f"{s}_target_minutes"]).label(f"{s}_target_minutes") for s in STEPS],
            )
            .group_by(sub.c.priority)
            .order_by(sub.c.priority)
        )
    ).all()
    items = []
    for r in rows:
        d = as_dict(r)
        d["closed"] = d["incidents"] - d["open"]
        for key in list(d):
            if key.startswith("avg_"):
                d[key] = _round(d[key])
        items.append(d)
    return {
        "from": window.start.isoformat(),
        "to": window.end.isoformat(),
        "items": items,
        "total": len(items),
        "limit": len(items),
        "offset": 0,
    }


async def overview(session: ScopedSession, scope: Scope, window: TimeRange) -> dict[str, Any]:
    start, end = window_key(window)
    return await cached(
        ("overview", scope.company_id, start, end), lambda: _overview(session, scope, Bounded(start, end))
    )


async def _overview(session: ScopedSession, scope: Scope, window: Bounded) -> dict[str, Any]:
    slas = await company_slas(session, scope)
    sub = sla_select(scope, slas, window, datetime.now(UTC)).subquery()
    row = (
        await session.execute(
            sa.select(
                *counts_sql(sub),
                sa.func.count().filter(sub.c.status.in_(OPEN_STATUSES)).label("open"),
                *[sa.func.avg(sub.c[f"{s}_minutes"]).label(f"mean_{s}") for s in STEPS],
                sa.func.avg(sub.c.resolution_minutes).label("mean_resolution"),
            )
        )
    ).one()
    mapping = dict(row._mapping)
    means = {k: mapping.pop(k) for k in ("mean_tta", "mean_ttn", "mean_ttdn", "mean_resolution")}
    open_count = int(mapping.pop("open") or 0)
    counts = shape_counts(mapping)
    ours = counts["ours"]
    return {
        "from": window.start.isoformat(),
        "to": window.end.isoformat(),
        "clock_start": slas[scope.company_id or ""].clock_start,
        # The original's figures (counted incidents).
        "counted": counts["counted"],
        "fully_compliant": counts["overall"]["fully_compliant"],
        "partially_compliant": counts["overall"]["partially_compliant"],
        "non_compliant": counts["overall"]["non_compliant"],
        "compliance_pct": counts["overall"]["compliance_pct"],
        "steps": {s: counts[s] for s in STEPS},
        # Ours.
        "total_incidents": counts["incidents"],
        "open_incidents": open_count,
        "closed_incidents": counts["incidents"] - open_count,
        "true_positives": ours["true_positives"],
        "false_positives": ours["false_positives"],
        "missing_timestamps": ours["missing_timestamps"],
        "pending": ours["overall"][slamath.PENDING],
        "breached": ours["overall"][slamath.BREACHED],
        "breaching": sum(ours["steps"][s]["breaching"] for s in STEPS),
        "mtta_minutes": _round(means["mean_tta"]),
        "mttn_minutes": _round(means["mean_ttn"]),
        "mttdn_minutes": _round(means["mean_ttdn"]),
        "mttr_minutes": _round(means["mean_resolution"]),
    }


@router.get("/overview/", dependencies=[DASHBOARD], response_model=SlaOverview)
async def sla_overview(session: ScopedSession, scope: CompanyScope, window: Range) -> dict[str, Any]:
    """Cards. The original's: ``counted`` incidents (true positives with all three step times),
    fully / partially / non compliant, ``compliance_pct`` = fully compliant ÷ counted, per step met
    and breached. Ours: every incident of the window (total, open, closed, true and false
    positives, missing timestamps, with a pending step, with a breached step, steps breaching
    now), MTTA, MTTN, MTTDN and MTTR (mean minutes from the clock start)."""
    return await overview(session, scope, window)
