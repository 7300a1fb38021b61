"""Read model: every normalised event in, every view out."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from soc_tenant.readmodel import siem

routers: list[APIRouter] = [siem.router]


async def start(app: FastAPI) -> None:
    if app.state.settings.consumers_enabled:
        await siem.start_consumer(app)


async def stop(app: FastAPI) -> None:
    await siem.stop_consumer(app)
