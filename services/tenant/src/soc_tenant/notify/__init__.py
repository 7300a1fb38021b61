"""Notifications: rules per company and for the MSSP's own staff, matched against bus events and
the SLA clock (:mod:`.triggers`), delivered by e-mail, signed webhook, Slack, Teams and in-app
(:mod:`.delivery`), configured through :mod:`.views`.

Runs inside the tenant service: the conditions are facts of its read model and control plane (the
company of a record through the mappings, SLA targets and clock start, contracted EPS, integration
health), and its row-level security already isolates companies.

Pluggable (``app.state`` before the lifespan starts): ``notify_options``
(:class:`~.options.NotifyOptions`, with its ``clock``), ``notify_transport`` (an httpx transport for
outgoing webhooks).
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, FastAPI
from loguru import logger
from soc_shared.bus import BatchConsumer, Delivery
from soc_shared.loop import BackgroundLoop

from soc_tenant.notify import triggers, views
from soc_tenant.notify.delivery import Deliverer
from soc_tenant.notify.options import notify_options

routers: list[APIRouter] = [views.router]


def _wake(app: FastAPI) -> None:
    deliverer = getattr(app.state, "notify_deliverer", None)
    if deliverer is not None:
        deliverer.wake()


def event_handler(app: FastAPI) -> Any:
    async def handle(batch: list[Delivery]) -> None:
        written = await triggers.handle_events(app.state.db, batch, notify_options(app).clock())
        if written:
            _wake(app)

    return handle


async def sla_once(app: FastAPI) -> list[int]:
    written = await triggers.watch_sla(app.state.db, notify_options(app).clock())
    if written:
        _wake(app)
    return written


PURGE_EVERY = 3600.0


async def purge_once(app: FastAPI) -> int:
    days = app.state.settings.notify_retention_days
    return await triggers.purge(app.state.db, notify_options(app).clock(), days)


def sla_loop(app: FastAPI) -> BackgroundLoop:
    """The SLA watch every ``sla_watch_seconds`` (and the hourly purge of old notices)."""
    purged_at: float | None = None

    async def step() -> None:
        nonlocal purged_at
        await sla_once(app)
        clock = asyncio.get_running_loop().time()
        if purged_at is None or clock - purged_at >= PURGE_EVERY:
            purged_at = clock
            gone = await purge_once(app)
            if gone:
                logger.info("purged {} old notification(s)", gone)

    return BackgroundLoop(
        "tenant-notify-sla", step, interval=notify_options(app).sla_watch_seconds, immediate=True
    )


async def start(app: FastAPI) -> None:
    opts = notify_options(app)
    app.state.notify_deliverer = Deliverer(app)
    app.state.notify_loops = []
    app.state.notify_consumer = None
    if app.state.settings.consumers_enabled if opts.consumer is None else opts.consumer:
        consumer = BatchConsumer(
            app.state.bus, triggers.QUEUE, triggers.KEYS, event_handler(app), batch_size=500
        )
        await consumer.start()
        app.state.notify_consumer = consumer
    if opts.background_tasks:
        app.state.notify_loops = [app.state.notify_deliverer.loop, sla_loop(app)]
        for loop in app.state.notify_loops:
            loop.start()


async def stop(app: FastAPI) -> None:
    if getattr(app.state, "notify_consumer", None) is not None:
        await app.state.notify_consumer.stop()
    for loop in getattr(app.state, "notify_loops", []):
        await loop.stop(grace_seconds=0)  # sends in flight end with the deliverer below
    deliverer = getattr(app.state, "notify_deliverer", None)
    if deliverer is not None:
        await deliverer.close()
