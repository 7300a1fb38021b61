"""Read model: every normalised event in (``ingest``), every view out (one module per domain)."""

from __future__ import annotations

import asyncio
import contextlib

from fastapi import APIRouter, FastAPI

from soc_tenant.dashboard import views as dashboard
from soc_tenant.deadletters import views as deadletters
from soc_tenant.incidents import views as soar
from soc_tenant.offenses import views as siem
from soc_tenant.readmodel import ingest, partitions
from soc_tenant.reports import views as reports
from soc_tenant.sla import reports as sla_views
from soc_tenant.threatintel import matches as timatches
from soc_tenant.threatintel import views as ti
from soc_tenant.tickets import views as itsm

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
    settings = app.state.settings
    app.state.ti_backfill = None
    app.state.partition_maintenance = None
    if settings.consumers_enabled:
        await ingest.start_consumers(app)
        # Partitions ahead of time and retention: background work of the read model's writers.
        app.state.partition_maintenance = partitions.maintenance_loop(app.state.db, settings)
        app.state.partition_maintenance.start()
        if settings.ti_backfill_on_start:
            from soc_tenant.threatintel import backfill as tibackfill

            app.state.ti_backfill = asyncio.create_task(
                tibackfill.run_in_background(app.state.db, app.state.bus, settings), name="ti-backfill"
            )


async def stop(app: FastAPI) -> None:
    maintenance = getattr(app.state, "partition_maintenance", None)
    if maintenance is not None:
        await maintenance.stop()
    task = getattr(app.state, "ti_backfill", None)
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await ingest.stop_consumers(app)
