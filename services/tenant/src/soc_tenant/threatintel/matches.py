"""Threat-intel matches as the API shows them: per offense, per incident (with the MITRE techniques
the matched alerts name, beside the incident's own), per ticket and as a list.

A match is shown only while its alert is visible to the caller (the alert's own row-level security
and ``Scope.ti_filter``), and only for the caller's company (``ti_match`` is company-scoped)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Path, Query
from soc_shared.api import Page

from soc_tenant.db import ScopedSession
from soc_tenant.readmodel import tables as t
from soc_tenant.readmodel.common import (
    DASHBOARD,
    THREAT_INTELLIGENCE,
    AnyScope,
    PageParams,
    ReadRoute,
    Scope,
    as_dict,
    list_responses,
    not_found,
    ordering,
    run_list,
)
from soc_tenant.tables import ti_match, ti_observable
from soc_tenant.threatintel.responses import IncidentMatches, MatchSummary, RecordMatches, TiMatch

router = APIRouter(prefix="/tenant", tags=["threat-intelligence"], route_class=ReadRoute)
BIGINT = 2**63 - 1

m = ti_match
a = t.ti_alert
o = t.qradar_offense
i = t.soar_incident
k = t.itsm_ticket

IndicatorKind = Literal["ipv4", "ipv6", "domain", "url", "email", "md5", "sha1", "sha256", "cve"]


# ---------------------------------------------------------------------------------------- queries
MATCH_COLUMNS = [
    m.c.id,
    m.c.record_type,
    m.c.integration_id,
    m.c.scope.label("record_scope"),
    m.c.record_key.label("record_id"),
    m.c.kind.label("indicator_kind"),
    m.c.value.label("indicator"),
    m.c.first_seen,
    m.c.last_seen,
    a.c.id.label("alert_id"),
    m.c.alert_integration_id,
    m.c.alert_short_id,
    a.c.title.label("alert_title"),
    a.c.tlp.label("alert_tlp"),
    a.c.published_time.label("alert_published_time"),
]


def visible(scope: Scope) -> list[Any]:
    out = [scope.ti_filter(a)]
    if not scope.everything:
        out.append(m.c.company_id == scope.company_id)
    return out


def matches_select(scope: Scope, *conditions: Any) -> sa.Select[Any]:
    joined = m.join(
        a, sa.and_(a.c.integration_id == m.c.alert_integration_id, a.c.short_id == m.c.alert_short_id)
    )
    return sa.select(*MATCH_COLUMNS).select_from(joined).where(*visible(scope), *conditions)


def serialize(row: Any) -> dict[str, Any]:
    out = as_dict(row)
    out["alert_link"] = f"/tenant/threat-alerts/{out['alert_id']}/"
    return out


def has_match(record_type: str, integration_id: Any, scope_value: Any, record_key: Any, scope: Scope) -> Any:
    """EXISTS a visible match of the record (for the lists' ``has_ti_match``)."""
    return (
        sa.select(1)
        .select_from(
            m.join(
                a, sa.and_(a.c.integration_id == m.c.alert_integration_id, a.c.short_id == m.c.alert_short_id)
            )
        )
        .where(
            m.c.record_type == record_type,
            m.c.integration_id == integration_id,
            m.c.scope == sa.cast(scope_value, sa.Text),
            m.c.record_key == sa.cast(record_key, sa.Text),
            *visible(scope),
        )
        .exists()
    )


def matched_keys(record_type: str, scope: Scope, scope_type: Any = None, key_type: Any = None) -> Any:
    """The distinct (integration, scope, record key) of the caller's visible matches of one record type.

    Cast to the record table's types on this side, so the records' own keys stay index-usable.
    """
    scope_col: Any = m.c.scope if scope_type is None else sa.cast(m.c.scope, scope_type)
    key_col: Any = m.c.record_key if key_type is None else sa.cast(m.c.record_key, key_type)
    return (
        sa.select(m.c.integration_id, scope_col, key_col)
        .select_from(
            m.join(
                a, sa.and_(a.c.integration_id == m.c.alert_integration_id, a.c.short_id == m.c.alert_short_id)
            )
        )
        .where(m.c.record_type == record_type, *visible(scope))
        .distinct()
    )


def offense_has_match(scope: Scope) -> Any:
    return has_match("offense", o.c.integration_id, o.c.domain_id, o.c.offense_id, scope)


def incident_has_match(scope: Scope) -> Any:
    return has_match("incident", i.c.integration_id, i.c.account, i.c.incident_id, scope)


def may_see(scope: Scope) -> bool:
    """Whether the caller may see threat intelligence (detail answers embed matches only then)."""
    p = scope.principal
    return p.is_admin or p.is_service or "THREAT_INTELLIGENCE" in p.permissions


def ticket_has_match(scope: Scope) -> Any:
    return has_match("ticket", k.c.integration_id, k.c.account_id, k.c.ticket_id, scope)


async def alert_techniques(session: Any, items: list[dict[str, Any]]) -> list[str]:
    """The MITRE technique ids the matched alerts name (sorted, distinct)."""
    alerts = sorted({(x["alert_integration_id"], x["alert_short_id"]) for x in items})
    if not alerts:
        return []
    ob = ti_observable
    return list(
        (
            await session.execute(
                sa.select(ob.c.value)
                .where(
                    ob.c.record_type == "alert",
                    ob.c.kind == "mitre",
                    sa.tuple_(ob.c.integration_id, ob.c.record_key).in_(alerts),
                )
                .distinct()
                .order_by(ob.c.value)
            )
        ).scalars()
    )


async def record_matches(
    session: Any, scope: Scope, record_type: str, integration: str, scope_value: str, key: str
) -> list[dict[str, Any]]:
    rows = (
        await session.execute(
            matches_select(
                scope,
                m.c.record_type == record_type,
                m.c.integration_id == integration,
                m.c.scope == scope_value,
                m.c.record_key == key,
            )
            .order_by(m.c.first_seen.desc(), m.c.id.desc())
            .limit(500)
        )
    ).all()
    return [serialize(r) for r in rows]


# ----------------------------------------------------------------------------------------- routes
@router.get(
    "/offenses/{offense_pk:int}/ti-matches/",
    dependencies=[DASHBOARD, THREAT_INTELLIGENCE],
    response_model=RecordMatches,
)
async def offense_matches(
    session: ScopedSession, scope: AnyScope, offense_pk: Annotated[int, Path(ge=0, le=BIGINT)]
) -> dict[str, Any]:
    """The threat-intel alerts naming this offense's indicators (title, TLP, link), newest first."""
    row = (
        await session.execute(
            sa.select(o.c.integration_id, o.c.domain_id, o.c.offense_id).where(
                o.c.id == offense_pk, scope.qradar_filter(o)
            )
        )
    ).first()
    if row is None:
        raise not_found("offense")
    items = await record_matches(
        session, scope, "offense", row.integration_id, str(row.domain_id), str(row.offense_id)
    )
    return {"record_type": "offense", "id": offense_pk, "items": items, "total": len(items)}


@router.get(
    "/soar-incidents/{incident_pk:int}/ti-matches/",
    dependencies=[DASHBOARD, THREAT_INTELLIGENCE],
    response_model=IncidentMatches,
)
async def incident_matches(
    session: ScopedSession, scope: AnyScope, incident_pk: Annotated[int, Path(ge=0, le=BIGINT)]
) -> dict[str, Any]:
    """The threat-intel alerts naming this incident's indicators (title, TLP, link), and the MITRE
    techniques those alerts name beside the incident's own tactics and techniques."""
    row = (
        await session.execute(
            sa.select(
                i.c.integration_id, i.c.account, i.c.incident_id, i.c.mitre_tactics, i.c.mitre_techniques
            ).where(i.c.id == incident_pk, scope.soar_filter(i))
        )
    ).first()
    if row is None:
        raise not_found("incident")
    items = await record_matches(session, scope, "incident", row.integration_id, row.account, row.incident_id)
    techniques = await alert_techniques(session, items)
    return {
        "record_type": "incident",
        "id": incident_pk,
        "items": items,
        "total": len(items),
        "mitre_tactics": row.mitre_tactics or [],
        "mitre_techniques": row.mitre_techniques or [],
        "alert_mitre_techniques": techniques,
    }


@router.get(
    "/itsm-tickets/{ticket_pk:int}/ti-matches/",
    dependencies=[DASHBOARD, THREAT_INTELLIGENCE],
    response_model=RecordMatches,
)
async def ticket_matches(
    session: ScopedSession, scope: AnyScope, ticket_pk: Annotated[int, Path(ge=0, le=BIGINT)]
) -> dict[str, Any]:
    """The threat-intel alerts naming this ticket's indicators (title, TLP, link), newest first."""
    row = (
        await session.execute(
            sa.select(k.c.integration_id, k.c.account_id, k.c.ticket_id).where(
                k.c.id == ticket_pk, scope.itsm_filter(k)
            )
        )
    ).first()
    if row is None:
        raise not_found("ticket")
    items = await record_matches(session, scope, "ticket", row.integration_id, row.account_id, row.ticket_id)
    return {"record_type": "ticket", "id": ticket_pk, "items": items, "total": len(items)}


@router.get(
    "/ti-matches/",
    dependencies=[DASHBOARD, THREAT_INTELLIGENCE],
    response_model=Page[TiMatch],
    responses=list_responses(),
)
async def list_matches(
    session: ScopedSession,
    scope: AnyScope,
    page: PageParams,
    record_type: Literal["offense", "incident", "ticket"] | None = None,
    indicator_kind: IndicatorKind | None = None,
    indicator: Annotated[
        str | None, Query(max_length=1100, description="an exact indicator (normalised)")
    ] = None,
) -> Any:
    """Every threat-intel match of the company's offenses, incidents and tickets (filter: record type,
    indicator kind, exact indicator — given defanged, it is refanged first)."""
    conditions: list[Any] = []
    if record_type:
        conditions.append(m.c.record_type == record_type)
    if indicator_kind:
        conditions.append(m.c.kind == indicator_kind)
    if indicator:
        from soc_tenant.threatintel.observables import extract_text

        found = sorted(extract_text(indicator))
        values = [x.value for x in found] or [indicator.replace("\x00", "").strip()]
        conditions.append(m.c.value.in_(values))
    order = ordering(
        page.sort,
        {"first_seen": m.c.first_seen, "last_seen": m.c.last_seen, "id": m.c.id},
        "-first_seen",
        m.c.id,
    )
    return await run_list(
        session,
        matches_select(scope, *conditions),
        page,
        order,
        principal=scope.principal,
        name="ti-matches",
        serialize=serialize,
    )


@router.get(
    "/ti-matches/summary/",
    dependencies=[DASHBOARD, THREAT_INTELLIGENCE],
    response_model=MatchSummary,
)
async def match_summary(session: ScopedSession, scope: AnyScope) -> dict[str, Any]:
    """How many open incidents and offenses threat intelligence names, and the matches by kind."""
    return await summary(session, scope)


async def summary(session: Any, scope: Scope) -> dict[str, Any]:
    """The figures of :func:`match_summary` (also the dashboard's ``ti_matches`` widget)."""
    from soc_tenant.incidents.views import OPEN_STATUSES

    # Counted from the matches, not per open record: a large tenant has millions of open offenses
    # and only a few thousand matched ones, and an EXISTS per open record probed the matches once
    # for each of them.
    incidents = (
        await session.execute(
            sa.select(sa.func.count()).where(
                scope.soar_filter(i),
                i.c.status.in_(list(OPEN_STATUSES)),
                sa.tuple_(i.c.integration_id, i.c.account, i.c.incident_id).in_(
                    matched_keys("incident", scope)
                ),
            )
        )
    ).scalar_one()
    offenses = (
        await session.execute(
            sa.select(sa.func.count()).where(
                scope.qradar_filter(o),
                o.c.status == "OPEN",
                sa.tuple_(o.c.integration_id, o.c.domain_id, o.c.offense_id).in_(
                    matched_keys("offense", scope, sa.BigInteger, sa.BigInteger)
                ),
            )
        )
    ).scalar_one()
    from soc_tenant.tickets.views import is_open

    tickets = (
        await session.execute(
            sa.select(sa.func.count()).where(
                scope.itsm_filter(k),
                is_open(k.c.status),
                sa.tuple_(k.c.integration_id, k.c.account_id, k.c.ticket_id).in_(
                    matched_keys("ticket", scope)
                ),
            )
        )
    ).scalar_one()
    visible_matches = matches_select(scope).subquery()
    by_kind = {
        r.indicator_kind: int(r.n)
        for r in (
            await session.execute(
                sa.select(visible_matches.c.indicator_kind, sa.func.count().label("n")).group_by(
                    visible_matches.c.indicator_kind
                )
            )
        ).all()
    }
    alerts = (
        await session.execute(
            sa.select(
                sa.func.count(
                    sa.distinct(
                        sa.tuple_(visible_matches.c.alert_integration_id, visible_matches.c.alert_short_id)
                    )
                )
            )
        )
    ).scalar_one()
    return {
        "open_incidents_with_matches": int(incidents),
        "open_offenses_with_matches": int(offenses),
        "open_tickets_with_matches": int(tickets),
        "matches": sum(by_kind.values()),
        "alerts_matched": int(alerts),
        "by_kind": by_kind,
    }


async def window_matches(
    session: Any, scope: Scope, start: Any, end: Any, limit: int = 100
) -> list[dict[str, Any]]:
    """The matches first seen within [start, end], newest first (the consolidated report's section)."""
    rows = (
        await session.execute(
            matches_select(scope, m.c.first_seen >= start, m.c.first_seen <= end)
            .order_by(m.c.first_seen.desc(), m.c.id.desc())
            .limit(limit)
        )
    ).all()
    return [serialize(r) for r in rows]
