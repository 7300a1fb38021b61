"""Cyware threat intelligence in the read model: alerts with their tags, groups and category.
A threat-intel row belongs to the company named in the event, else to its integration's company."""

from __future__ import annotations

from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from soc_shared.api import Page
from soc_shared.security import AdminPrincipal, AdminWriter, Principal
from sqlalchemy.ext.asyncio import AsyncSession

from soc_tenant.db import ScopedSession
from soc_tenant.readmodel import tables as t
from soc_tenant.readmodel.common import (
    THREAT_INTELLIGENCE,
    AnyScope,
    PageParams,
    Range,
    ReadRoute,
    Scope,
    TextQuery,
    as_dict,
    bad_param,
    day_end,
    day_start,
    list_responses,
    not_found,
    ordering,
    parse_day,
    run_list,
    text_filter,
)
from soc_tenant.threatintel.responses import (
    DefaultFeed,
    DefaultFeedSet,
    ThreatAlertDetail,
    ThreatAlertSummary,
)

router = APIRouter(prefix="/tenant", tags=["threat-intelligence"], route_class=ReadRoute)
admin_router = APIRouter(prefix="/admin/threat-intel", tags=["admin"], route_class=ReadRoute)
BIGINT = 2**63 - 1
a = t.ti_alert
ALERT_COLUMNS = [
    a.c.id,
    a.c.integration_id,
    a.c.short_id,
    a.c.title,
    a.c.status,
    a.c.tlp,
    a.c.published_time,
    a.c.tags,
    a.c.groups,
    a.c.category,
    a.c.version,
    a.c.created_at,
    a.c.updated_at,
]
ShortText = Annotated[str | None, Query(max_length=200)]


def day_range(column: Any, name: str, first: str | None, last: str | None) -> list[Any]:
    """``<name>_start_date`` / ``<name>_end_date`` (YYYY-MM-DD, inclusive) on ``column``."""
    start, end = parse_day(f"{name}_start_date", first), parse_day(f"{name}_end_date", last)
    if start and end and start > end:
        raise bad_param(f"{name}_start_date", f"{name}_start_date must not be after {name}_end_date")
    out = []
    if start:
        out.append(column >= day_start(start))
    if end:
        out.append(column <= day_end(end))
    return out


DateText = Annotated[str | None, Query(max_length=32, description="YYYY-MM-DD")]


@router.get(
    "/threat-alerts/",
    dependencies=[THREAT_INTELLIGENCE],
    response_model=Page[ThreatAlertSummary],
    responses=list_responses(),
)
async def list_threat_alerts(
    session: ScopedSession,
    scope: AnyScope,
    page: PageParams,
    window: Range,
    q: TextQuery = None,
    status: ShortText = None,
    tlp: ShortText = None,
    title: Annotated[str | None, Query(max_length=200, description="text in the title")] = None,
    published_start_date: DateText = None,
    published_end_date: DateText = None,
    created_start_date: DateText = None,
    created_end_date: DateText = None,
    updated_start_date: DateText = None,
    updated_end_date: DateText = None,
) -> Any:
    """Threat-intelligence alerts (filter: status, TLP, title, text; published within from/to,
    filter_type or published_start_date/published_end_date; first stored (created_) and last
    changed (updated_) within their own date ranges)."""
    filters = [scope.ti_filter(a), text_filter(q, a.c.title, a.c.short_id), text_filter(title, a.c.title)]
    if status:
        filters.append(sa.func.lower(a.c.status) == status.replace("\x00", "").lower())
    if tlp:
        filters.append(sa.func.lower(a.c.tlp) == tlp.replace("\x00", "").lower())
    if window.start:
        filters.append(a.c.published_time >= window.start)
    if window.end:
        filters.append(a.c.published_time <= window.end)
    filters += day_range(a.c.published_time, "published", published_start_date, published_end_date)
    filters += day_range(a.c.created_at, "created", created_start_date, created_end_date)
    filters += day_range(a.c.updated_at, "updated", updated_start_date, updated_end_date)
    stmt = sa.select(*ALERT_COLUMNS).where(*filters)
    order = ordering(
        page.sort,
        {
            "published_time": a.c.published_time,
            "created_at": a.c.created_at,
            "updated_at": a.c.updated_at,
            "title": a.c.title,
            "status": a.c.status,
            "id": a.c.id,
        },
        "-published_time",
        a.c.id,
    )
    return await run_list(session, stmt, page, order, principal=scope.principal, name="threat-alerts")


async def latest_alerts(session: ScopedSession, scope: Scope, limit: int = 5) -> list[dict[str, Any]]:
    rows = (
        await session.execute(
            sa.select(a.c.id, a.c.short_id, a.c.title, a.c.status, a.c.tlp, a.c.published_time)
            .where(scope.ti_filter(a))
            .order_by(a.c.published_time.desc(), a.c.id.desc())
            .limit(limit)
        )
    ).all()
    return [as_dict(r) for r in rows]


@router.get(
    "/threat-alerts/{alert_pk:int}/", dependencies=[THREAT_INTELLIGENCE], response_model=ThreatAlertDetail
)
async def get_threat_alert(
    session: ScopedSession, scope: AnyScope, alert_pk: Annotated[int, Path(ge=0, le=BIGINT)]
) -> dict[str, Any]:
    """One alert with its content, tags, groups, recipient groups and category (with the
    category's fields)."""
    row = (await session.execute(sa.select(a).where(a.c.id == alert_pk, scope.ti_filter(a)))).first()
    if row is None:
        raise not_found("threat alert")
    alert = as_dict(row)
    tag_ids = [x.get("id") for x in alert["tags"] if isinstance(x, dict)]
    if tag_ids:
        tg = t.ti_tag
        known = {
            r.tag_id: r
            for r in (
                await session.execute(
                    sa.select(tg.c.tag_id, tg.c.tag_name, tg.c.tag_slug, tg.c.is_active).where(
                        tg.c.integration_id == alert["integration_id"], tg.c.tag_id.in_(tag_ids)
                    )
                )
            ).all()
        }
        alert["tags"] = [
            {
                "id": x.get("id"),
                "name": x.get("name") or getattr(known.get(x.get("id")), "tag_name", None),
                "slug": getattr(known.get(x.get("id")), "tag_slug", None),
                "is_active": getattr(known.get(x.get("id")), "is_active", None),
            }
            for x in alert["tags"]
        ]
    group_ids = [x.get("id") for x in alert["groups"] + alert["recipient_groups"] if isinstance(x, dict)]
    if group_ids:
        g = t.ti_group
        known_groups = {
            r.group_id: as_dict(r)
            for r in (
                await session.execute(
                    sa.select(g.c.group_id, g.c.group_name, g.c.group_tlp, g.c.group_type).where(
                        g.c.integration_id == alert["integration_id"], g.c.group_id.in_(group_ids)
                    )
                )
            ).all()
        }
        for key in ("groups", "recipient_groups"):
            alert[key] = [
                {
                    **known_groups.get(x.get("id"), {}),
                    "id": x.get("id"),
                    "name": x.get("name") or known_groups.get(x.get("id"), {}).get("group_name"),
                }
                for x in alert[key]
            ]
    if alert["category"]:
        c = t.ti_category
        category = (
            await session.execute(
                sa.select(
                    c.c.category_id,
                    c.c.category_name,
                    c.c.threat_indicator_fields,
                    c.c.additional_fields,
                    c.c.required_fields,
                ).where(
                    c.c.integration_id == alert["integration_id"],
                    c.c.category_id == alert["category"].get("id"),
                )
            )
        ).first()
        if category is not None:
            alert["category"] = {**alert["category"], **as_dict(category)}
    return alert


# ------------------------------------------------------------------------- the default feed
@admin_router.get("/default-feeds/", response_model=Page[DefaultFeed])
async def list_default_feeds(session: ScopedSession, _: AdminPrincipal) -> dict[str, Any]:
    """The default threat-intel feeds: their alerts addressed to no company are shown to every
    company with ``is_default_threat_intel``."""
    rows = (
        await session.execute(
            sa.text(
                "SELECT f.integration_id, f.set_by, f.set_at, i.instance_name, i.company_id::text AS owner_company_id "
                "FROM ti_default_feed f LEFT JOIN integration i ON i.id::text = f.integration_id "
                "ORDER BY f.set_at, f.integration_id"
            )
        )
    ).all()
    items = [as_dict(r) for r in rows]
    return {"items": items, "total": len(items), "limit": len(items), "offset": 0}


@admin_router.put("/default-feeds/{integration_id}/", response_model=DefaultFeedSet)
async def add_default_feed(
    request: Request,
    session: ScopedSession,
    principal: AdminWriter,
    integration_id: Annotated[str, Path(max_length=100, pattern=r"^[A-Za-z0-9._:-]+$")],
) -> dict[str, Any]:
    """Make a threat-intelligence integration a default feed (idempotent). Audited."""
    kind = (
        await session.execute(
            sa.text("SELECT integration_type FROM integration WHERE id::text = :i AND deleted_at IS NULL"),
            {"i": integration_id},
        )
    ).scalar_one_or_none()
    if kind is None:
        raise not_found("integration")
    if kind != "THREAT_INTELLIGENCE":
        raise bad_param("integration_id", "only a threat-intelligence integration can be a feed", type=kind)
    added = (
        await session.execute(
            sa.text(
                "INSERT INTO ti_default_feed (integration_id, set_by) VALUES (:i, :by) "
                "ON CONFLICT (integration_id) DO NOTHING RETURNING 1"
            ),
            {"i": integration_id, "by": principal.username},
        )
    ).first()
    await _audited(
        request, session, principal, "threat_intel.default_feed_added" if added else None, integration_id
    )
    return {"integration_id": integration_id, "default_feed": True}


async def _audited(
    request: Request, session: AsyncSession, principal: Principal, action: str | None, integration_id: str
) -> None:
    """Commit the change with its audit record (none when nothing changed)."""
    from soc_tenant.control import audit  # the control plane's audit trail (imported late: no cycle)

    tx = audit.request_tx(request, session, principal)
    if action is not None:
        await audit.record(
            tx,
            action,
            "integration",
            integration_id,
            after={"default_feed": action.endswith("added")},
        )
    await session.commit()
    await tx.committed()


@admin_router.delete("/default-feeds/{integration_id}/", status_code=204)
async def remove_default_feed(
    request: Request,
    session: ScopedSession,
    principal: AdminWriter,
    integration_id: Annotated[str, Path(max_length=100, pattern=r"^[A-Za-z0-9._:-]+$")],
) -> Response:
    """No longer a default feed. Audited."""
    removed = (
        await session.execute(
            sa.text("DELETE FROM ti_default_feed WHERE integration_id = :i RETURNING 1"),
            {"i": integration_id},
        )
    ).first()
    if removed is None:
        raise not_found("default feed")
    await _audited(request, session, principal, "threat_intel.default_feed_removed", integration_id)
    return Response(status_code=204)
