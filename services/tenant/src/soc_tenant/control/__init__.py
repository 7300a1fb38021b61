"""Control plane: companies, tenant users, integrations and credentials, mappings, SLA, chat."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from soc_tenant.control import company

routers: list[APIRouter] = [company.router]


async def start(app: FastAPI) -> None:
    return None


async def stop(app: FastAPI) -> None:
    return None
