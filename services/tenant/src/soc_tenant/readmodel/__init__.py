"""Read model: every normalised event in (``ingest``), every view out (one module per domain)."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from soc_tenant.readmodel import (
    dashboard,
    deadletters,
    ingest,
    itsm,
    reports,
    siem,
    sla_views,
    soar,
    ti,
    timatches,
)

routers: list[APIRouter] = [
    siem.router,
    soar.router,
    itsm.router,
    ti.router,
    ti.admin_router,
    timatches.router,
    sla_views.router,
    dashboard.router,
    reports.router,
    deadletters.router,
]


async def start(app: FastAPI) -> None:
    if app.state.settings.consumers_enabled:
        await ingest.start_consumers(app)


async def stop(app: FastAPI) -> None:
    await ingest.stop_consumers(app)
