"""Transactional outbox: an event is written in the same transaction as the change it describes, then
published after the commit. A crash or a broker outage between the two only delays the event: the
relay loop publishes whatever is still unpublished (at least once; every consumer is idempotent)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta

import sqlalchemy as sa
from fastapi import FastAPI
from loguru import logger
from soc_shared.bus import Bus
from soc_shared.db import Database
from soc_shared.events import CloudEvent, Payload, make_event
from sqlalchemy.ext.asyncio import AsyncSession

from soc_tenant.control.tables import outbox

SOURCE = "/tenant"
# The relay leaves fresh rows alone: the request that wrote them is publishing them right now.
_RELAY_GRACE = timedelta(seconds=3)
_RETENTION = timedelta(days=2)


def build_event(
    routing_key: str, payload: Payload, subject: str, *, integration_id: str | None = None
) -> CloudEvent:
    return make_event(routing_key, payload, source=SOURCE, subject=subject, integration_id=integration_id)


async def stage(session: AsyncSession, events: Sequence[CloudEvent]) -> list[int]:
    """Write ``events`` in the caller's transaction; returns their outbox ids."""
    if not events:
        return []
    rows = [
        {"routing_key": e.routing_key, "event": e.model_dump(mode="json", exclude_none=True)} for e in events
    ]
    result = await session.execute(sa.insert(outbox).values(rows).returning(outbox.c.id))
    return [int(r) for r in result.scalars().all()]


async def flush(db: Database, bus: Bus, ids: Sequence[int] | None = None, *, limit: int = 500) -> int:
    """Publish unpublished rows (``ids`` or every row older than the grace period); returns how many."""
    stmt = sa.select(outbox.c.id, outbox.c.event).where(outbox.c.published_at.is_(None))
    if ids is not None:
        if not ids:
            return 0
        stmt = stmt.where(outbox.c.id.in_(list(ids)))
    else:
        stmt = stmt.where(outbox.c.created_at < sa.func.now() - _RELAY_GRACE)
    stmt = stmt.order_by(outbox.c.id).limit(limit).with_for_update(skip_locked=True)
    async with db.session() as session:
        rows = (await session.execute(stmt)).all()
        if not rows:
            return 0
        events = [CloudEvent.model_validate(r.event) for r in rows]
        try:
            await bus.publish(events)
        except Exception as exc:  # the relay tries again; the change itself is committed
            await session.execute(
                sa.update(outbox)
                .where(outbox.c.id.in_([r.id for r in rows]))
                .values(attempts=outbox.c.attempts + 1)
            )
            logger.warning("{} outbox event(s) not published yet: {}", len(rows), type(exc).__name__)
            return 0
        await session.execute(
            sa.update(outbox).where(outbox.c.id.in_([r.id for r in rows])).values(published_at=sa.func.now())
        )
    return len(rows)


async def purge(db: Database) -> None:
    async with db.session() as session:
        await session.execute(sa.delete(outbox).where(outbox.c.published_at < sa.func.now() - _RETENTION))


async def relay_loop(app: FastAPI, interval: float) -> None:
    rounds = 0
    while True:
        await asyncio.sleep(interval)
        try:
            while await flush(app.state.db, app.state.bus) >= 500:
                pass
            rounds += 1
            if rounds % 720 == 0:
                await purge(app.state.db)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the database may be briefly away: keep relaying
            logger.warning("outbox relay: {}", type(exc).__name__)
