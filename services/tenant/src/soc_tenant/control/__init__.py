"""Control plane: companies, tenant users, integrations and credentials, mappings, SLA, chat.

Pluggable for tests (set on ``app.state`` before the lifespan starts): ``auth_transport`` and
``ingestor_transport`` (httpx transports standing in for the auth service and the ingestors),
``control_options`` (:class:`~soc_tenant.control.options.ControlOptions`); after it started,
``service_tokens`` may be replaced by anything with ``async token()``.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from soc_tenant.actions import views as actions
from soc_tenant.audit import views as audit
from soc_tenant.chat import views as chat
from soc_tenant.chat.live import LiveHub
from soc_tenant.company import retention as record_retention
from soc_tenant.company import views as company
from soc_tenant.control.options import options
from soc_tenant.integrations import views as integrations
from soc_tenant.mappings import views as mappings
from soc_tenant.members import views as members
from soc_tenant.outbox import service as outbox
from soc_tenant.pending import service as pending
from soc_tenant.sla import views as sla
from soc_tenant.tenants import views as tenants
from soc_tenant.tickets import policy as ticket_policy

routers: list[APIRouter] = [
    company.router,
    record_retention.router,
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
    if opts.background_tasks:
        app.state.control_loops = [
            pending.retry_loop(app),
            outbox.relay(app, opts.outbox_relay_seconds),
            audit.purge_loop(app),
        ]
        if app.state.settings.action_expiry_seconds > 0:
            app.state.control_loops.append(actions.expiry_loop(app))
        for loop in app.state.control_loops:
            loop.start()


async def stop(app: FastAPI) -> None:
    for loop in getattr(app.state, "control_loops", []):
        await loop.stop()
    for consumer in getattr(app.state, "control_consumers", []):
        await consumer.stop()
    hub = getattr(app.state, "live_hub", None)
    if hub is not None:
        await hub.stop()
