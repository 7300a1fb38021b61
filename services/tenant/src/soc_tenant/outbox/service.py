"""The tenant service's transactional outbox (``soc_shared.outbox`` on the ``outbox`` table): events
are written in the same transaction as the change they describe; the request publishes its own
rows right after the commit and the relay publishes whatever is still unpublished (a crash or a
broker outage between the two only delays an event)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from fastapi import FastAPI
from soc_shared.bus import Bus
from soc_shared.db import Database
from soc_shared.events import CloudEvent, Payload
from soc_shared.outbox import Outbox, OutboxRelay
from sqlalchemy.ext.asyncio import AsyncSession

from soc_tenant.tables import outbox as outbox_table

SOURCE = "/tenant"
# The relay leaves fresh rows alone: the request that wrote them is publishing them right now.
RELAY_GRACE = timedelta(seconds=3)
OUTBOX = Outbox(outbox_table, source=SOURCE)


def build_event(
    routing_key: str, payload: Payload, subject: str, *, integration_id: str | None = None
) -> CloudEvent:
    return OUTBOX.event(routing_key, payload, subject, integration_id=integration_id)


async def stage(session: AsyncSession, events: Sequence[CloudEvent]) -> list[int]:
    """Write ``events`` in the caller's transaction; returns their outbox ids."""
    return await OUTBOX.stage(session, events)


async def flush(db: Database, bus: Bus, ids: Sequence[int] | None = None) -> int:
    """Publish unpublished rows (``ids``, or every row older than the grace period)."""
    return await OUTBOX.flush(db, bus, ids, older_than=None if ids is not None else RELAY_GRACE)


def relay(app: FastAPI, interval: float) -> OutboxRelay:
    return OutboxRelay(
        OUTBOX, app.state.db, app.state.bus, name="tenant-outbox-relay", interval=interval, grace=RELAY_GRACE
    )
