"""Writing events into the outbox (``soc_shared.outbox``), and the relay that publishes them: a
transaction that wrote events wakes the relay once it has committed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from soc_shared.bus import Bus
from soc_shared.db import Database
from soc_shared.events import Payload
from soc_shared.outbox import Outbox, OutboxRelay
from sqlalchemy.ext.asyncio import AsyncSession

from soc_auth.outbox.models import outbox

SOURCE = "/auth"
OUTBOX = Outbox(outbox, source=SOURCE)
_PENDING = "outbox_pending"


async def enqueue(session: AsyncSession, routing_key: str, payload: Payload, *, subject: str) -> None:
    """Add an event to the current transaction; it is published once the transaction commits."""
    await OUTBOX.stage(session, [OUTBOX.event(routing_key, payload, subject)])
    session.info[_PENDING] = True


def relay(db: Database, bus: Bus, *, poll_seconds: float = 1.0) -> OutboxRelay:
    """Publishes committed rows in order, with broker confirms, as soon as it is woken (and every
    ``poll_seconds`` for rows a crashed process left)."""
    return OutboxRelay(OUTBOX, db, bus, name="auth-outbox-relay", interval=poll_seconds)


@asynccontextmanager
async def transaction(state: Any) -> AsyncIterator[AsyncSession]:
    """A committed-on-exit transaction that wakes the outbox relay when it wrote events."""
    async with state.db.session() as session:
        yield session
    if session.info.pop(_PENDING, False) and getattr(state, "outbox", None) is not None:
        state.outbox.wake()
