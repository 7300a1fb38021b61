"""Reports for a company over a window, as JSON or as a PDF (fpdf2): incident report, detailed
incident report, EPS report, asset report and the consolidated report."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Path, Query
from soc_shared.api import PDF, file_responses
from soc_shared.errors import ApiError

from soc_tenant.dashboard.views import offense_widget, ticket_widget
from soc_tenant.db import ScopedSession
from soc_tenant.incidents.views import CLOSED_STATUSES, OPEN_STATUSES, facet_distribution, incident_cards
from soc_tenant.offenses.views import asset_health, asset_select, eps_series, eps_summary
from soc_tenant.readmodel import tables as t
from soc_tenant.readmodel.common import REPORTS, CompanyScope, Range, ReadRoute, Scope, TimeRange, download
from soc_tenant.reports.pdf import Chart, Section, render_pdf
from soc_tenant.reports.responses import Report
from soc_tenant.sla.reports import company_slas, compliance, overview, sla_row, sla_select
from soc_tenant.threatintel.matches import window_matches
from soc_tenant.threatintel.views import latest_alerts
from soc_tenant.tickets.views import ticket_totals

router = APIRouter(prefix="/tenant/reports", tags=["reports"], route_class=ReadRoute)
KINDS = ("incident", "detailed-incident", "eps", "assets", "consolidated")
DETAILED_MAX = 2000


def bar(counts: dict[str, Any], name: str, label: str = "") -> Chart:
    """A one-series bar chart of counts by category."""
    return Chart("bar", [f"{label}{k}" for k in counts], [(name, [float(v or 0) for v in counts.values()])])


async def company_name(session: ScopedSession, scope: Scope) -> str | None:
    return (
        await session.execute(
            sa.select(t.company.c.name).where(sa.cast(t.company.c.id, sa.Text) == scope.company_id)
        )
    ).scalar_one_or_none()


async def incident_report(
    session: ScopedSession, scope: Scope, window: TimeRange
) -> tuple[dict[str, Any], list[Section]]:
    cards = await incident_cards(session, scope, window)
    sla = await compliance(session, scope, window)
    cards_sla = await overview(session, scope, window)
    types = (await facet_distribution(session, scope, "type", window, 10))["items"]
    owners = (await facet_distribution(session, scope, "owner", window, 10))["items"]
    data = {"summary": cards, "sla": sla, "sla_overview": cards_sla, "types": types, "owners": owners}
    sections = [
        Section(
            "Incidents",
            {
                "total": cards["total"],
                "open": cards["open"],
                "closed": cards["closed"],
                "critical open": cards["critical_open"],
            },
        ),
        Section(
            "Incidents by priority",
            dict(sorted(cards["by_priority"].items())),
            chart=bar(dict(sorted(cards["by_priority"].items())), "Incidents"),
        ),
        Section(
            "Incidents by status",
            dict(sorted(cards["by_status"].items())),
            chart=bar(dict(sorted(cards["by_status"].items())), "Incidents"),
        ),
        Section("SLA overview", {k: v for k, v in cards_sla.items() if not isinstance(v, dict)}),
        Section(
            # The original's figures over the counted incidents (true positives), then ours.
            "SLA compliance by priority",
            columns=[
                "priority",
                "counted",
                "fully compliant",
                "partially compliant",
                "non compliant",
                "TTA %",
                "TTN %",
                "TTDN %",
                "compliance %",
                "all incidents",
                "pending",
            ],
            rows=[
                {
                    "priority": p,
                    "counted": v["counted"],
                    "fully compliant": v["overall"]["fully_compliant"],
                    "partially compliant": v["overall"]["partially_compliant"],
                    "non compliant": v["overall"]["non_compliant"],
                    "TTA %": v["tta"]["compliance_pct"],
                    "TTN %": v["ttn"]["compliance_pct"],
                    "TTDN %": v["ttdn"]["compliance_pct"],
                    "compliance %": v["overall"]["compliance_pct"],
                    "all incidents": v["incidents"],
                    "pending": v["ours"]["overall"]["pending"],
                }
                for p, v in sla["by_priority"].items()
            ],
            chart=Chart(
                "bar",
                list(sla["by_priority"]),
                [
                    (step_name, [float(v[step]["compliance_pct"] or 0) for v in sla["by_priority"].values()])
                    for step, step_name in (("tta", "Acknowledge"), ("ttn", "Notify"), ("ttdn", "Resolve"))
                ],
                unit="%",
                maximum=100,
            ),
        ),
        Section("Top incident types", columns=["type", "incidents"], rows=types),
        Section("Top owners", columns=["owner", "incidents"], rows=owners),
    ]
    return data, sections


async def detailed_incident_report(
    session: ScopedSession, scope: Scope, window: TimeRange
) -> tuple[dict[str, Any], list[Section]]:
    data, sections = await incident_report(session, scope, window)
    w = window.bounded(30)
    slas = await company_slas(session, scope)
    sub = sla_select(scope, slas, w, datetime.now(UTC)).subquery()
    rows = [
        sla_row(r)
        for r in (
            await session.execute(
                sa.select(sub).order_by(sub.c.created.desc(), sub.c.id.desc()).limit(DETAILED_MAX)
            )
        ).all()
    ]
    data["incidents"] = rows
    data["incidents_truncated"] = len(rows) >= DETAILED_MAX
    sections.append(
        Section(
            f"Incidents ({len(rows)})",
            columns=["incident_id", "name", "priority", "status", "created", "TTA", "TTN", "TTDN"],
            rows=[
                {
                    "incident_id": r["incident_id"],
                    "name": r["name"],
                    "priority": r["priority"],
                    "status": r["status"],
                    "created": r["created"][:16],
                    "TTA": r["sla"]["tta"]["status"],
                    "TTN": r["sla"]["ttn"]["status"],
                    "TTDN": r["sla"]["ttdn"]["status"],
                }
                for r in rows
            ],
        )
    )
    return data, sections


async def eps_report(
    session: ScopedSession, scope: Scope, window: TimeRange
) -> tuple[dict[str, Any], list[Section]]:
    daily = await eps_summary(session, scope, "day", window)
    hourly = await eps_summary(session, scope, "hour", window)
    w = window.bounded(30)
    series = eps_series(scope, "day", w).subquery()
    points = [
        {
            "day": r.window_start.date().isoformat(),
            "average_eps": round(float(r.average_eps or 0), 2),
            "peak_eps": round(float(r.peak_eps or 0), 2),
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
            )
        ).all()
    ]
    data = {"daily": daily, "hourly": hourly, "series": points}
    contracted = sum(
        float(r["contracted_volume"] or 0) for r in daily if r.get("contracted_volume_type") == "EPS"
    )
    cols = [
        "domain_name",
        "domain_id",
        "average_eps",
        "peak_eps",
        "contracted_volume_type",
        "contracted_volume",
        "utilisation_pct",
        "estimated_gb_per_day",
    ]
    sections = [
        Section("EPS per QRadar tenant (daily samples)", columns=cols, rows=daily),
        Section("EPS per QRadar tenant (hourly samples)", columns=cols, rows=hourly),
        Section(
            "Daily EPS",
            columns=["day", "average_eps", "peak_eps"],
            rows=points,
            chart=Chart(
                "line",
                [p["day"][5:] for p in points],
                [
                    ("Average EPS", [p["average_eps"] for p in points]),
                    ("Peak EPS", [p["peak_eps"] for p in points]),
                ],
                reference=("Contracted", contracted) if contracted else None,
            ),
        ),
    ]
    return data, sections


async def assets_report(
    session: ScopedSession, scope: Scope, window: TimeRange
) -> tuple[dict[str, Any], list[Section]]:
    health = await asset_health(session, scope)
    ls = t.qradar_log_source
    top = [
        {
            k: v
            for k, v in r._mapping.items()
            if k in ("name", "type_name", "status", "average_eps", "sending_ip")
        }
        for r in (
            await session.execute(
                asset_select()
                .where(scope.qradar_filter(ls))
                .order_by(ls.c.average_eps.desc(), ls.c.id)
                .limit(20)
            )
        ).all()
    ]
    data = {"health": health, "top_log_sources": top}
    sections = [
        Section("Assets", {k: v for k, v in health.items() if not isinstance(v, (dict, list))}),
        Section("Assets by status", health["by_status"], chart=bar(health["by_status"], "Assets")),
        Section("Assets by type", columns=["type_name", "count"], rows=health["by_type"]),
        Section(
            "Top log sources by EPS",
            columns=["name", "type_name", "status", "average_eps", "sending_ip"],
            rows=top,
        ),
    ]
    return data, sections


async def top_use_cases(
    session: ScopedSession, scope: Scope, window: TimeRange, limit: int = 5
) -> list[dict[str, Any]]:
    """The use cases (QRadar rules) that raised the most incidents created in the window."""
    i = t.soar_incident
    rule = sa.func.jsonb_array_elements_text(i.c.rules).table_valued("value").alias("rule")
    n = sa.func.count().label("incidents")
    rows = (
        await session.execute(
            sa.select(rule.c.value, n, sa.func.count().filter(i.c.status.in_(OPEN_STATUSES)).label("open"))
            .select_from(i.join(rule, sa.true()))
            .where(scope.soar_filter(i), i.c.created >= window.start, i.c.created <= window.end)
            .group_by(rule.c.value)
            .order_by(n.desc(), rule.c.value)
            .limit(limit)
        )
    ).all()
    return [{"use_case": v, "incidents": int(c), "open": int(o)} for v, c, o in rows]


async def weekly_closure_trend(
    session: ScopedSession, scope: Scope, window: TimeRange
) -> list[dict[str, Any]]:
    """Per week (Monday, UTC) of the window: incidents reported (created), resolved (now closed or
    archived) and still pending — from the daily rollup."""
    window = window.bounded()  # the report passes a bounded window
    d = t.incident_daily
    week = sa.func.date_trunc("week", d.c.day).label("week")
    resolved = sa.func.coalesce(sa.func.sum(d.c.n).filter(d.c.status.in_(CLOSED_STATUSES)), 0)
    rows = (
        await session.execute(
            sa.select(week, sa.func.sum(d.c.n), resolved)
            .where(
                scope.soar_filter(d),
                d.c.day >= window.start.astimezone(UTC).date(),
                d.c.day <= window.end.astimezone(UTC).date(),
            )
            .group_by(week)
            .order_by(week)
        )
    ).all()
    return [
        {
            "week": w.date().isoformat(),
            "reported": int(n),
            "resolved": int(r),
            "pending": int(n) - int(r),
        }
        for w, n, r in rows
    ]


async def eps_over_contract(session: ScopedSession, scope: Scope, window: TimeRange) -> dict[str, Any]:
    """Hourly EPS intervals of the window whose peak went over the contracted EPS, per QRadar
    tenant (EPS contracts only; a GB/day contract has no per-interval limit)."""
    series = eps_series(scope, "hour", window).subquery()
    m = t.qradar_mapping
    over = sa.func.count().filter(series.c.peak_eps > m.c.contracted_volume)
    stmt = (
        sa.select(
            series.c.integration_id,
            series.c.domain_id,
            m.c.contracted_volume,
            sa.func.count().label("intervals"),
            over.label("over"),
            sa.func.max(series.c.peak_eps).label("max_peak"),
        )
        .select_from(
            series.join(
                m,
                sa.and_(
                    m.c.integration_id == series.c.integration_id,
                    m.c.domain_id == series.c.domain_id,
                    m.c.active,
                    m.c.contracted_volume_type == "EPS",
                    sa.cast(m.c.company_id, sa.Text) == scope.company_id,
                ),
            )
        )
        .group_by(series.c.integration_id, series.c.domain_id, m.c.contracted_volume)
        .order_by(series.c.integration_id, series.c.domain_id)
    )
    tenants = [
        {
            "integration_id": r.integration_id,
            "domain_id": r.domain_id,
            "contracted_eps": float(r.contracted_volume) if r.contracted_volume is not None else None,
            "intervals": int(r.intervals),
            "intervals_over_contract": int(r.over),
            "max_peak_eps": round(float(r.max_peak or 0), 2),
        }
        for r in (await session.execute(stmt)).all()
    ]
    return {
        "granularity": "hour",
        "intervals_over_contract": sum(x["intervals_over_contract"] for x in tenants),
        "tenants": tenants,
    }


async def consolidated_report(
    session: ScopedSession, scope: Scope, window: TimeRange
) -> tuple[dict[str, Any], list[Section]]:
    offenses = await offense_widget(session, scope)
    inc_data, inc_sections = await incident_report(session, scope, window)
    eps_data, eps_sections = await eps_report(session, scope, window)
    asset_data, asset_sections = await assets_report(session, scope, window)
    tickets = await ticket_widget(session, scope)
    per_tenant = await ticket_totals(session, scope, window)
    alerts = await latest_alerts(session, scope, 10)
    use_cases = await top_use_cases(session, scope, window)
    closure = await weekly_closure_trend(session, scope, window)
    over = await eps_over_contract(session, scope, window)
    eps_data = {**eps_data, "over_contract": over}
    matches = await window_matches(session, scope, window.start, window.end)
    data = {
        "offenses": offenses,
        "incidents": {**inc_data, "top_use_cases": use_cases, "weekly_closure_trend": closure},
        "tickets": {"summary": tickets, "per_tenant": per_tenant},
        "eps": eps_data,
        "assets": asset_data,
        "threat_alerts": alerts,
        "threat_intel_matches": matches,
    }
    sections = [
        Section("Offenses", {"total": offenses["total"], "open": offenses["open"]}),
        Section(
            "Open offenses by severity",
            offenses["open_by_severity"],
            chart=bar(
                dict(sorted(offenses["open_by_severity"].items(), key=lambda kv: -int(kv[0]))),
                "Open offenses",
                label="Severity ",
            ),
        ),
        *inc_sections[:5],
        Section("Top use cases", columns=["use_case", "incidents", "open"], rows=use_cases),
        Section(
            "Weekly incident closure",
            columns=["week", "reported", "resolved", "pending"],
            rows=closure,
            chart=Chart(
                "bar",
                [w["week"][5:] for w in closure],
                [
                    (k.capitalize(), [float(w[k]) for w in closure])
                    for k in ("reported", "resolved", "pending")
                ],
            ),
        ),
        Section("Tickets", tickets),
        Section(
            "Tickets per ITSM tenant",
            columns=["account_name", "account_id", "total", "open", "overdue"],
            rows=per_tenant,
        ),
        eps_sections[0],
        eps_sections[2],
        Section(
            "Hourly EPS intervals over the contracted EPS",
            columns=["domain_id", "contracted_eps", "intervals", "intervals_over_contract", "max_peak_eps"],
            rows=over["tenants"],
        ),
        asset_sections[0],
        asset_sections[1],
        Section(
            "Latest threat alerts",
            columns=["short_id", "title", "status", "tlp", "published_time"],
            rows=alerts,
        ),
        Section(
            "Threat intelligence matches",
            columns=[
                "record_type",
                "record_id",
                "indicator_kind",
                "indicator",
                "alert_title",
                "alert_tlp",
                "first_seen",
            ],
            rows=matches,
        ),
    ]
    return data, sections


BUILDERS = {
    "incident": incident_report,
    "detailed-incident": detailed_incident_report,
    "eps": eps_report,
    "assets": assets_report,
    "consolidated": consolidated_report,
}
TITLES = {
    "incident": "Incident report",
    "detailed-incident": "Detailed incident report",
    "eps": "EPS report",
    "assets": "Asset report",
    "consolidated": "Consolidated report",
}


@router.get(
    "/{kind}/",
    dependencies=[REPORTS],
    response_model=Report,
    responses=file_responses(PDF, description="The report as JSON, or with ?format=pdf as a PDF document."),
)
async def report(
    session: ScopedSession,
    scope: CompanyScope,
    window: Range,
    kind: Annotated[str, Path(max_length=40, description=", ".join(KINDS))],
    format: Annotated[Literal["json", "pdf"], Query()] = "json",
) -> Any:
    """One report over from/to (default: the last 30 days) as JSON or PDF."""
    builder = BUILDERS.get(kind)
    if builder is None:
        raise ApiError(404, "unknown_report", f"no report {kind[:40]!r}", {"kinds": list(KINDS)})
    window = window.bounded(30)
    data, sections = await builder(session, scope, window)
    name = await company_name(session, scope)
    if format == "pdf":
        return download(
            render_pdf(TITLES[kind], name, window.start, window.end, sections),
            "application/pdf",
            f"{kind}-report-{window.end.date().isoformat()}.pdf",
        )
    return {
        "kind": kind,
        "title": TITLES[kind],
        "company_id": scope.company_id,
        "company_name": name,
        "from": window.start.isoformat(),
        "to": window.end.isoformat(),
        "generated_at": datetime.now(UTC).isoformat(),
        **data,
    }
