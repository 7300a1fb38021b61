"""Control plane: companies, tenant users, integrations and credentials, mappings, SLA, chat.

Pluggable for tests (set on ``app.state`` before the lifespan starts): ``auth_transport`` and
``ingestor_transport`` (httpx transports standing in for the auth service and the ingestors),
``control_options`` (:class:`~soc_tenant.control.options.ControlOptions`); after it started,
``service_tokens`` may be replaced by anything with ``async token()``.
"""

from __future__ import annotations

import asyncio
import contextlib

from fastapi import APIRouter, FastAPI

from soc_tenant.control import (
    actions,
    audit,
    chat,
    company,
    integrations,
    mappings,
    members,
    outbox,
    pending,
    sla,
    tenants,
    ticket_policy,
)
from soc_tenant.control.live import LiveHub
from soc_tenant.control.options import options

routers: list[APIRouter] = [
    company.router,
    members.router,
    integrations.router,
    integrations.internal_router,
    mappings.router,
    sla.router,
    ticket_policy.router,
    tenants.router,
    chat.router,
    audit.router,
    actions.router,
]


async def start(app: FastAPI) -> None:
    opts = options(app)
    app.state.live_hub = LiveHub(app)
    await app.state.live_hub.start()
    app.state.control_consumers = []
    if app.state.settings.consumers_enabled if opts.consumers is None else opts.consumers:
        app.state.control_consumers.append(await members.start_consumer(app))
        app.state.control_consumers.append(await integrations.start_consumer(app))
        app.state.control_consumers.append(await audit.start_consumer(app))
        app.state.control_consumers.append(await actions.start_consumer(app))
    app.state.control_loops = []
    app.state.control_tasks = []
    if opts.background_tasks:
        app.state.control_loops = [pending.retry_loop(app), outbox.relay(app, opts.outbox_relay_seconds)]
        for loop in app.state.control_loops:
            loop.start()
        app.state.control_tasks = [asyncio.create_task(audit.purge_loop(app), name="tenant-audit-retention")]


async def stop(app: FastAPI) -> None:
    for task in getattr(app.state, "control_tasks", []):
        task.cancel()
    for task in getattr(app.state, "control_tasks", []):
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    for loop in getattr(app.state, "control_loops", []):
        await loop.stop()
    for consumer in getattr(app.state, "control_consumers", []):
        await consumer.stop()
    hub = getattr(app.state, "live_hub", None)
    if hub is not None:
        await hub.stop()
