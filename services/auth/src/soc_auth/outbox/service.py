"""Writing events into the outbox, and the relay that publishes them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from loguru import logger
from soc_shared.bus import Bus
from soc_shared.db import Database
from soc_shared.events import CloudEvent, Payload, make_event
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncSession

from soc_auth.outbox.models import outbox

SOURCE = "/auth"
_PENDING = "outbox_pending"


async def enqueue(session: AsyncSession, routing_key: str, payload: Payload, *, subject: str) -> None:
    """Add an event to the current transaction; it is published once the transaction commits."""
    event = make_event(routing_key, payload, source=SOURCE, subject=subject)
    await session.execute(
        insert(outbox).values(routing_key=routing_key, event=event.model_dump(mode="json", exclude_none=True))
    )
    session.info[_PENDING] = True


class OutboxRelay:
    """Publishes committed outbox rows in order, with broker confirms, and deletes them in the
    same transaction: a crash between publish and commit re-publishes (at-least-once; event ids
    are stable, so consumers recognise the duplicate)."""

    def __init__(self, db: Database, bus: Bus, *, batch_size: int = 500, poll_seconds: float = 1.0) -> None:
        self.db = db
        self.bus = bus
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="auth-outbox-relay")

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(self._task, timeout=10)

    async def _run(self) -> None:
        failures = 0
        while True:
            try:
                await self.drain()
                failures = 0
            except Exception as exc:  # the broker or the database is away: keep the rows, retry later
                failures += 1
                logger.warning("outbox relay could not publish ({}); retrying", type(exc).__name__)
            if self._stopping:
                return
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._wake.wait(), timeout=min(30.0, self.poll_seconds * (2 ** min(failures, 5)))
                )

    async def drain(self) -> int:
        sent = 0
        while True:
            async with self.db.session() as session:
                rows = (
                    await session.execute(
                        text(
                            "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox ORDER BY id LIMIT :n "
                            "FOR UPDATE SKIP LOCKED) RETURNING id, event"
                        ),
                        {"n": self.batch_size},
                    )
                ).all()
                if not rows:
                    return sent
                events = [CloudEvent.model_validate(row.event) for row in sorted(rows, key=lambda r: r.id)]
                await self.bus.publish(events)
            sent += len(rows)
            if len(rows) < self.batch_size:
                return sent


@asynccontextmanager
async def transaction(state: Any) -> AsyncIterator[AsyncSession]:
    """A committed-on-exit transaction that wakes the outbox relay when it wrote events."""
    async with state.db.session() as session:
        yield session
    if session.info.pop(_PENDING, False) and getattr(state, "outbox", None) is not None:
        state.outbox.wake()
