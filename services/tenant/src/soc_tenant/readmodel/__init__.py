"""Read model: every normalised event in (``ingest``), every view out (one module per domain)."""

from __future__ import annotations

import asyncio
import contextlib

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
    settings = app.state.settings
    app.state.ti_backfill = None
    if settings.consumers_enabled:
        await ingest.start_consumers(app)
        if settings.ti_backfill_on_start:
            from soc_tenant.readmodel import tibackfill

            app.state.ti_backfill = asyncio.create_task(
                tibackfill.run_in_background(app.state.db, app.state.bus, settings), name="ti-backfill"
            )


async def stop(app: FastAPI) -> None:
    task = getattr(app.state, "ti_backfill", None)
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await ingest.stop_consumers(app)
