"""The company dashboard in one call, last-sync times, and the admins' cross-company summaries.

Every widget reads a rollup or an index-only range (see ``0003_read_model``): the dashboard stays
within a few dozen milliseconds at millions of offenses and incidents per company."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query
from soc_shared.api import Page
from soc_shared.security import AdminPrincipal

from soc_tenant.dashboard.cards import (
    CARDS,
    POSITIVE_CARDS,
    CardFilters,
    incident_cards_with_change,
    parse_statuses,
    positive_cards,
)
from soc_tenant.dashboard.responses import (
    CompanyAssets,
    CompanyEpsUsage,
    CompletionStatus,
    Dashboard,
    IncidentsPerPriority,
    IncidentsPerStatus,
    LastSync,
    SlaMatrix,
)
from soc_tenant.db import ScopedSession
from soc_tenant.incidents.views import OPEN_STATUSES, PriorityList, incident_cards
from soc_tenant.offenses.views import asset_health, eps_summary
from soc_tenant.readmodel import tables as t
from soc_tenant.readmodel.common import (
    DASHBOARD,
    NO_JIT,
    AnyScope,
    CompanyScope,
    Range,
    ReadRoute,
    Scope,
    TimeRange,
    as_dict,
    bad_param,
    clean_str,
    parse_levels,
)
from soc_tenant.sla import rules as slamath
from soc_tenant.sla.reports import compliance
from soc_tenant.threatintel import matches as timatches
from soc_tenant.threatintel.views import latest_alerts
from soc_tenant.tickets.views import is_open

router = APIRouter(tags=["dashboard"], route_class=ReadRoute)
TREND_DAYS = 30


def _has(scope: Scope, permission: str) -> bool:
    p = scope.principal
    return p.is_admin or p.is_service or permission in p.permissions


def _days_of(table: sa.Table, window: TimeRange) -> list[Any]:
    out = []
    if window.start is not None:
        out.append(table.c.day >= window.start.astimezone(UTC).date())
    if window.end is not None:
        out.append(table.c.day <= window.end.astimezone(UTC).date())
    return out


def _windowed(window: TimeRange) -> bool:
    return window.start is not None or window.end is not None


async def offense_widget(
    session: ScopedSession, scope: Scope, window: TimeRange = TimeRange(None, None)
) -> dict[str, Any]:
    # All time: the totals rollup; a window: the daily one (offenses started on those days).
    r = t.offense_daily if _windowed(window) else t.offense_totals
    rows = (
        await session.execute(
            sa.select(r.c.status, r.c.severity, sa.func.sum(r.c.n))
            .where(scope.qradar_filter(r), *(_days_of(r, window) if _windowed(window) else []))
            .group_by(r.c.status, r.c.severity)
        )
    ).all()
    by_status: dict[str, int] = {}
    open_by_severity: dict[str, int] = {}
    for status, severity, n in rows:
        by_status[status] = by_status.get(status, 0) + int(n)
        if status == "OPEN" and int(n):
            open_by_severity[str(severity)] = open_by_severity.get(str(severity), 0) + int(n)
    return {
        "total": sum(by_status.values()),
        "open": by_status.get("OPEN", 0),
        "by_status": by_status,
        "open_by_severity": dict(sorted(open_by_severity.items(), key=lambda kv: -int(kv[0]))),
    }


async def ticket_widget(
    session: ScopedSession, scope: Scope, window: TimeRange = TimeRange(None, None)
) -> dict[str, Any]:
    r = t.ticket_daily if _windowed(window) else t.ticket_totals
    total, open_, overdue = (
        await session.execute(
            sa.select(
                sa.func.coalesce(sa.func.sum(r.c.n), 0),
                sa.func.coalesce(sa.func.sum(r.c.n).filter(is_open(r.c.status)), 0),
                sa.func.coalesce(sa.func.sum(r.c.n).filter(is_open(r.c.status), r.c.is_overdue), 0),
            ).where(scope.itsm_filter(r), *(_days_of(r, window) if _windowed(window) else []))
        )
    ).one()
    return {
        "total": int(total),
        "open": int(open_),
        "overdue": int(overdue),
        "closed": int(total) - int(open_),
    }


async def trends(
    session: ScopedSession, scope: Scope, days: int = TREND_DAYS, last: date | None = None
) -> dict[str, Any]:
    today = last or datetime.now(UTC).date()
    first = today - timedelta(days=days - 1)
    series = [first + timedelta(days=n) for n in range(days)]

    def per_day(kind: str, table: sa.Table, condition: Any) -> sa.Select[Any]:
        return (
            sa.select(sa.literal(kind).label("kind"), table.c.day, sa.func.sum(table.c.n).label("n"))
            .where(condition, table.c.day >= first, table.c.day <= today)
            .group_by(table.c.day)
        )

    rows = (
        await session.execute(
            sa.union_all(
                per_day("offenses", t.offense_daily, scope.qradar_filter(t.offense_daily)),
                per_day("incidents", t.incident_daily, scope.soar_filter(t.incident_daily)),
                per_day("tickets", t.ticket_daily, scope.itsm_filter(t.ticket_daily)),
            )
        )
    ).all()
    counts: dict[str, dict[date, int]] = {"offenses": {}, "incidents": {}, "tickets": {}}
    for kind, day, n in rows:
        counts[kind][day] = int(n)
    return {
        "days": [d.isoformat() for d in series],
        **{kind: [by_day.get(d, 0) for d in series] for kind, by_day in counts.items()},
    }


OUR_WIDGETS = (
    "offenses",
    "incidents",
    "sla",
    "tickets",
    "eps",
    "assets",
    "threat_alerts",
    "ti_matches",
    "trends",
)
WIDGETS = (*CARDS, *POSITIVE_CARDS, *OUR_WIDGETS)
MAX_TREND_DAYS = 366


def parse_widgets(filters: str | None) -> set[str] | None:
    """``filters``: the comma-separated widgets to answer (all without it); 422 for an unknown one."""
    if filters is None or not filters.strip():
        return None
    wanted = {f.strip() for f in filters.split(",") if f.strip()}
    unknown = sorted(wanted - set(WIDGETS))
    if unknown:
        raise bad_param("filters", f"unknown widget(s): {', '.join(unknown)}", allowed=list(WIDGETS))
    return wanted


@router.get("/tenant/dashboard/", dependencies=[DASHBOARD], response_model=Dashboard)
async def dashboard(
    session: ScopedSession,
    scope: CompanyScope,
    window: Range,
    filters: Annotated[
        str | None,
        Query(max_length=500, description=f"comma-separated widgets, all by default: {', '.join(WIDGETS)}"),
    ] = None,
    owner: Annotated[
        str | None, Query(max_length=200, description="incident cards: this owner's incidents")
    ] = None,
    priority: PriorityList = None,
    status: Annotated[
        list[str] | None,
        Query(
            max_length=100,
            description="incident cards: 1/open, 2/closed, or pending, active, closed, archived",
        ),
    ] = None,
    incident_id: Annotated[
        str | None, Query(max_length=200, description="incident cards: one XSOAR incident")
    ] = None,
) -> dict[str, Any]:
    """The summary widgets: the original's incident cards (``total_incidents``, ``open``, ``closed``:
    count in the window, change against the previous period, new today), open offenses by
    severity, incidents by priority and status, SLA compliance, open and overdue tickets, EPS
    against the contract, asset health, the latest threat alerts, threat-intel matches (open
    incidents and offenses a threat-intel alert names), and daily trends.

    Window: ``filter_type`` (1 today, 2 last 7 days, 3 last 30 days, 9 ``start_date``..``end_date``)
    or ``from``/``to``; without one, current totals (SLA: the last 30 days, EPS: the last 24 h,
    trends: the last 30 days). ``owner``, ``priority``, ``status`` and ``incident_id`` narrow the
    incident cards; ``filters`` selects widgets."""
    wanted = parse_widgets(filters)

    def want(name: str) -> bool:
        return wanted is None or name in wanted

    card_filters = CardFilters(
        priority=[p.value for p in priority] if priority else None,
        status=parse_statuses(status),
        owner=clean_str(owner) or None,
        incident_id=clean_str(incident_id) or None,
    )
    out: dict[str, Any] = {"company_id": scope.company_id, "generated_at": datetime.now(UTC).isoformat()}
    if window.start or window.end:
        out["from"] = window.start.isoformat() if window.start else None
        out["to"] = (window.end or datetime.now(UTC)).isoformat()
    if wanted is None or wanted & set(CARDS):
        out.update(await incident_cards_with_change(session, scope, window, card_filters, wanted))
    # the true/false-positive cards read every incident of the window and the period before (the
    # rule needs fields no rollup keeps): only when named in ``filters``
    if wanted is not None and wanted & set(POSITIVE_CARDS):
        out.update(await positive_cards(session, scope, window, card_filters, wanted))
    if want("offenses"):
        out["offenses"] = await offense_widget(session, scope, window)
    if want("incidents"):
        out["incidents"] = await incident_cards(session, scope, window)
    if want("sla"):
        sla = await compliance(session, scope, window)
        out["sla"] = {
            "from": sla["from"],
            "to": sla["to"],
            "clock_start": sla["clock_start"],
            # The original's dashboard counts true and false positives (readmodel.positives).
            "true_positives": sla["total"]["ours"]["true_positives"],
            "false_positives": sla["total"]["ours"]["false_positives"],
            # The original's: fully compliant ÷ counted (true positives with all three step times).
            "counted": sla["total"]["counted"],
            "compliance_pct": sla["total"]["overall"]["compliance_pct"],
            "overall": sla["total"]["overall"],
            "by_priority": {
                p: {
                    "counted": v["counted"],
                    "compliance_pct": v["overall"]["compliance_pct"],
                    # Ours: every incident of the level, with a breached / a pending step.
                    "incidents": v["incidents"],
                    "breached": v["ours"]["overall"]["breached"],
                    "pending": v["ours"]["overall"]["pending"],
                }
                for p, v in sla["by_priority"].items()
            },
        }
    if want("tickets"):
        out["tickets"] = await ticket_widget(session, scope, window)
    if want("eps"):
        eps = await eps_summary(session, scope, "hour", window)
        out["eps"] = {
            "tenants": eps,
            "average_eps": round(sum(x["average_eps"] or 0 for x in eps), 3),
            "peak_eps": max((x["peak_eps"] or 0 for x in eps), default=0.0),
            "contracted_eps": sum(
                x["contracted_volume"] or 0 for x in eps if x["contracted_volume_type"] == "EPS"
            )
            or None,
        }
    if want("assets"):
        out["assets"] = await asset_health(session, scope) if _has(scope, "ASSETS") else None
    if want("threat_alerts"):
        out["threat_alerts"] = (
            await latest_alerts(session, scope) if _has(scope, "THREAT_INTELLIGENCE") else None
        )
    if want("ti_matches"):
        out["ti_matches"] = (
            await timatches.summary(session, scope) if _has(scope, "THREAT_INTELLIGENCE") else None
        )
    if want("trends"):
        if window.start is not None:
            last = (window.end or datetime.now(UTC)).astimezone(UTC).date()
            days = min(MAX_TREND_DAYS, (last - window.start.astimezone(UTC).date()).days + 1)
            out["trends"] = await trends(session, scope, max(1, days), last)
        else:
            out["trends"] = await trends(session, scope)
    return out


@router.get("/tenant/last-sync/", response_model=LastSync)
async def last_sync(session: ScopedSession, scope: AnyScope) -> dict[str, Any]:
    """The last sync of each (integration, resource) as the ingestors reported it, and the latest
    successful one per source (SIEM, SOAR, ITSM, threat intelligence)."""
    s = t.sync_report
    stmt = sa.select(s).order_by(s.c.integration_id, s.c.resource)
    if not scope.everything:
        stmt = stmt.where(s.c.integration_id.in_(scope.integration_ids() or [""]))
    rows = [as_dict(r) for r in (await session.execute(stmt)).all()]
    kinds: dict[Any, Any] = (
        dict(
            (
                await session.execute(
                    sa.text(
                        "SELECT id::text, integration_type::text FROM integration WHERE id::text = ANY(:ids)"
                    ),
                    {"ids": [r["integration_id"] for r in rows]},
                )
            ).all()
        )
        if rows
        else {}
    )
    qradar = {i for i, _ in scope.qradar}
    soar = {i for i, _ in scope.soar}
    itsm = {i for i, _ in scope.itsm}
    by_source: dict[str, str | None] = {"SIEM": None, "SOAR": None, "ITSM": None, "THREAT_INTELLIGENCE": None}
    for r in rows:
        kind = kinds.get(r["integration_id"]) or (
            "SIEM"
            if r["integration_id"] in qradar
            else "SOAR"
            if r["integration_id"] in soar
            else "ITSM"
            if r["integration_id"] in itsm
            else None
        )
        r["source"] = kind
        if (
            kind in by_source
            and r["last_success_at"]
            and (by_source[kind] is None or r["last_success_at"] > by_source[kind])
        ):
            by_source[kind] = r["last_success_at"]
    return {"items": rows, "total": len(rows), "limit": len(rows), "offset": 0, "by_source": by_source}


# --------------------------------------------------------------------------------- admin summaries


def _day_window(window: TimeRange) -> tuple[date | None, date | None]:
    return (window.start.date() if window.start else None, window.end.date() if window.end else None)


async def incidents_per_company(
    session: ScopedSession, dim: str, window: TimeRange, priorities: list[str] | None = None
) -> list[dict[str, Any]]:
    await session.execute(NO_JIT)
    first, last = _day_window(window)
    rows = (
        await session.execute(
            sa.text(f"""
        SELECT m.company_id::text AS company_id, c.name AS company_name, r.{dim} AS key, sum(r.n) AS n
        FROM incident_daily r
        JOIN soar_mapping m ON m.active AND m.integration_id::text = r.integration_id AND m.account = r.account
        JOIN company c ON c.id = m.company_id
        WHERE (CAST(:first AS date) IS NULL OR r.day >= :first) AND (CAST(:last AS date) IS NULL OR r.day <= :last)
          AND (CAST(:levels AS text[]) IS NULL OR r.priority = ANY(CAST(:levels AS text[])))
        GROUP BY 1, 2, 3 ORDER BY 2, 1, 3"""),
            {"first": first, "last": last, "levels": priorities},
        )
    ).all()
    out: dict[str, dict[str, Any]] = {}
    for company_id, name, key, n in rows:
        entry = out.setdefault(
            company_id, {"company_id": company_id, "company_name": name, "total": 0, f"by_{dim}": {}}
        )
        entry[f"by_{dim}"][key] = entry[f"by_{dim}"].get(key, 0) + int(n)
        entry["total"] += int(n)
    return list(out.values())


@dataclass
class SummaryParams:
    company_id: str | None
    limit: int
    offset: int

    def keep(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [x for x in items if self.company_id is None or x.get("company_id") == self.company_id]


def summary_params(
    company_id: Annotated[uuid.UUID | None, Query(description="one company only")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> SummaryParams:
    return SummaryParams(str(company_id) if company_id else None, limit, offset)


Summary = Annotated[SummaryParams, Depends(summary_params)]


def _listing(
    items: list[dict[str, Any]], paging: SummaryParams | None = None, **extra: Any
) -> dict[str, Any]:
    """One company per item; ``company_id`` keeps one, ``limit``/``offset`` page them."""
    if paging is None:
        return {"items": items, "total": len(items), "limit": len(items), "offset": 0, **extra}
    items = paging.keep(items)
    page = items[paging.offset : paging.offset + paging.limit]
    return {"items": page, "total": len(items), "limit": paging.limit, "offset": paging.offset, **extra}


@router.get(
    "/admin/summary/incident-priority/", tags=["admin summaries"], response_model=Page[IncidentsPerPriority]
)
async def summary_incident_priority(
    session: ScopedSession,
    _: AdminPrincipal,
    window: Range,
    paging: Summary,
    priority: Annotated[
        list[str] | None, Query(max_length=20, description="P1..P4, or the original's numbers (4 P1 … 1 P4)")
    ] = None,
) -> dict[str, Any]:
    """Incidents per company and priority (created day within from/to or filter_type; all time by
    default)."""
    levels = parse_levels("priority", priority)
    return _listing(await incidents_per_company(session, "priority", window, levels), paging)


@router.get(
    "/admin/summary/incident-status/", tags=["admin summaries"], response_model=Page[IncidentsPerStatus]
)
async def summary_incident_status(
    session: ScopedSession, _: AdminPrincipal, window: Range, paging: Summary
) -> dict[str, Any]:
    """Incidents per company and status."""
    return _listing(await incidents_per_company(session, "status", window), paging)


@router.get(
    "/admin/summary/completion-status/", tags=["admin summaries"], response_model=Page[CompletionStatus]
)
async def summary_completion(
    session: ScopedSession, _: AdminPrincipal, window: Range, paging: Summary
) -> dict[str, Any]:
    """Per company: incidents, open, closed and the completed share."""
    items = []
    for entry in await incidents_per_company(session, "status", window):
        by_status = entry.pop("by_status")
        open_ = sum(by_status.get(s, 0) for s in OPEN_STATUSES)
        closed = entry["total"] - open_
        items.append(
            {
                **entry,
                "open": open_,
                "closed": closed,
                "by_status": by_status,
                "completion_pct": round(closed * 100.0 / entry["total"], 2) if entry["total"] else None,
            }
        )
    return _listing(items, paging)


@router.get("/admin/summary/sla-matrix/", tags=["admin summaries"], response_model=SlaMatrix)
async def summary_sla_matrix(
    session: ScopedSession, principal: AdminPrincipal, window: Range, paging: Summary
) -> dict[str, Any]:
    """Per company and priority, incidents created within from/to (default: the last 30 days): the
    original's matrix — counted incidents (true positives with all three step times), per step met
    / breached / compliance % (met ÷ counted), overall fully / partially / non compliant and
    compliance % (fully compliant ÷ counted), each company on its own clock start and targets —
    and ours: every incident, with a breached step, with a pending step."""
    from soc_tenant.sla.reports import counts_sql, shape_counts, sla_select

    window = window.bounded(30)
    await session.execute(NO_JIT)
    mappings = (
        await session.execute(
            sa.text(
                "SELECT m.integration_id::text, m.account::text, m.company_id::text, c.name FROM soar_mapping m "
                "JOIN company c ON c.id = m.company_id WHERE m.active "
                "AND (CAST(:company AS text) IS NULL OR m.company_id::text = :company)"
            ),
            {"company": paging.company_id},
        )
    ).all()
    names = {company_id: name for _, _, company_id, name in mappings}
    defaults = await slamath.load_defaults(session)
    slas = {cid: await slamath.load_company_sla(session, cid, defaults) for cid in names}
    scope = Scope(principal, None)
    sub = sla_select(
        scope, slas, window, datetime.now(UTC), pairs=[(a, b, c) for a, b, c, _ in mappings], inner=True
    ).subquery()
    rows = (
        await session.execute(
            sa.select(sub.c.company_id, sub.c.priority, *counts_sql(sub)).group_by(
                sub.c.company_id, sub.c.priority
            )
        )
    ).all()
    matrix: dict[str, dict[str, Any]] = {
        cid: {"company_id": cid, "company_name": name, "priorities": {}}
        for cid, name in sorted(names.items(), key=lambda kv: kv[1] or "")
    }
    for r in rows:
        counts = shape_counts(r)
        matrix[r.company_id]["priorities"][r.priority] = {
            # The original's matrix cell (counted incidents).
            "priority_label": slamath.LEVEL_LABELS.get(r.priority),
            "counted": counts["counted"],
            "compliance_pct": counts["overall"]["compliance_pct"],
            "fully_compliant": counts["overall"]["fully_compliant"],
            "partially_compliant": counts["overall"]["partially_compliant"],
            "non_compliant": counts["overall"]["non_compliant"],
            **{f"{s}_met": counts[s]["met"] for s in slamath.STEPS},
            **{f"{s}_breached": counts[s]["breached"] for s in slamath.STEPS},
            **{f"{s}_compliance_pct": counts[s]["compliance_pct"] for s in slamath.STEPS},
            # Ours (every incident of the window).
            "incidents": counts["incidents"],
            "breached": counts["ours"]["overall"][slamath.BREACHED],
            "pending": counts["ours"]["overall"][slamath.PENDING],
        }
    return _listing(
        list(matrix.values()), paging, **{"from": window.start.isoformat(), "to": window.end.isoformat()}
    )


@router.get("/admin/summary/eps-utilisation/", tags=["admin summaries"], response_model=Page[CompanyEpsUsage])
async def summary_eps(
    session: ScopedSession, principal: AdminPrincipal, window: Range, paging: Summary
) -> dict[str, Any]:
    """Per company and QRadar tenant: EPS of the last 24 h (or from/to) against the contract."""
    await session.execute(NO_JIT)
    items = await eps_summary(session, Scope(principal, None), "hour", window)
    names: dict[Any, Any] = dict((await session.execute(sa.text("SELECT id::text, name FROM company"))).all())
    for item in items:
        item["company_name"] = names.get(item["company_id"])
    return _listing(items, paging)


@router.get("/admin/summary/assets/", tags=["admin summaries"], response_model=Page[CompanyAssets])
async def summary_assets(session: ScopedSession, _: AdminPrincipal, paging: Summary) -> dict[str, Any]:
    """Per company: assets (log sources) in total, enabled, per status, and their EPS."""
    await session.execute(NO_JIT)
    rows = (
        await session.execute(
            sa.text("""
        SELECT m.company_id::text AS company_id, c.name AS company_name,
               coalesce(upper(ls.status), 'UNKNOWN') AS status, count(*) AS n,
               count(*) FILTER (WHERE ls.enabled) AS enabled, coalesce(sum(ls.average_eps), 0) AS eps
        FROM qradar_log_source ls
        JOIN qradar_mapping m ON m.active AND m.integration_id = ls.integration_id AND m.domain_id = ls.domain_id
        JOIN company c ON c.id = m.company_id
        GROUP BY 1, 2, 3 ORDER BY 2, 1, 3""")
        )
    ).all()
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        entry = out.setdefault(
            r.company_id,
            {
                "company_id": r.company_id,
                "company_name": r.company_name,
                "total": 0,
                "enabled": 0,
                "average_eps": 0.0,
                "by_status": {},
            },
        )
        entry["total"] += int(r.n)
        entry["enabled"] += int(r.enabled)
        entry["average_eps"] = round(entry["average_eps"] + float(r.eps), 3)
        entry["by_status"][r.status] = int(r.n)
    return _listing(list(out.values()), paging)
