"""The transactional outbox every service that publishes from a request uses.

An event is written to the service's ``outbox`` table in the same transaction as the change it
describes, so a change is never committed without its event nor an event sent for a change that
rolled back. After the commit the writer publishes its own rows at once (``flush`` with their
ids) or wakes the relay; the relay (``OutboxRelay``) publishes whatever is still unpublished —
rows whose writer died or met a broker outage — with broker confirms, in id order. A published
row is marked (``published_at``) and purged after ``retention``. Delivery is at least once:
event ids are stable, so consumers recognise a duplicate.

The table (declared in each service's metadata, created by its migrations)::

    id            bigint identity primary key
    routing_key   text not null
    event         jsonb not null          -- the CloudEvent as JSON
    attempts      integer not null default 0
    created_at    timestamptz not null default now()
    published_at  timestamptz             -- NULL until the broker confirmed it
    index (id) where published_at is null
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from loguru import logger
from sqlalchemy.ext.asyncio import AsyncSession

from soc_shared.bus import Bus
from soc_shared.db import Database
from soc_shared.events import CloudEvent, Payload, make_event
from soc_shared.loop import BackgroundLoop


class Outbox:
    """One service's outbox table and the events it writes (``source``: the CloudEvents source)."""

    def __init__(self, table: sa.Table, *, source: str, batch_size: int = 500) -> None:
        self.table = table
        self.source = source
        self.batch_size = batch_size

    def event(self, routing_key: str, payload: Payload, subject: str, **extensions: Any) -> CloudEvent:
        return make_event(routing_key, payload, source=self.source, subject=subject, **extensions)

    async def stage(self, session: AsyncSession, events: Sequence[CloudEvent]) -> list[int]:
        """Write ``events`` in the caller's transaction; returns their outbox ids."""
        if not events:
            return []
        rows = [
            {"routing_key": e.routing_key, "event": e.model_dump(mode="json", exclude_none=True)}
            for e in events
        ]
        t = self.table
        result = await session.execute(sa.insert(t).values(rows).returning(t.c.id))
        return [int(r) for r in result.scalars().all()]

    async def flush(
        self,
        db: Database,
        bus: Bus,
        ids: Sequence[int] | None = None,
        *,
        older_than: timedelta | None = None,
    ) -> int:
        """Publish one batch of unpublished rows — ``ids``, or every row (older than
        ``older_than``) — and mark them; returns how many were published. Rows another
        transaction is publishing right now are skipped (``FOR UPDATE SKIP LOCKED``)."""
        t = self.table
        stmt = sa.select(t.c.id, t.c.event).where(t.c.published_at.is_(None))
        if ids is not None:
            if not ids:
                return 0
            stmt = stmt.where(t.c.id.in_(list(ids)))
        if older_than is not None:
            stmt = stmt.where(t.c.created_at < sa.func.now() - older_than)
        stmt = stmt.order_by(t.c.id).limit(self.batch_size).with_for_update(skip_locked=True)
        failure: Exception | None = None
        async with db.session() as session:
            rows = (await session.execute(stmt)).all()
            if not rows:
                return 0
            row_ids = [r.id for r in rows]
            events = [CloudEvent.model_validate(r.event) for r in rows]
            try:
                await bus.publish(events)
            except Exception as exc:  # counted (committed), then raised: the relay tries again later
                failure = exc
                await session.execute(
                    sa.update(t).where(t.c.id.in_(row_ids)).values(attempts=t.c.attempts + 1)
                )
            else:
                await session.execute(
                    sa.update(t).where(t.c.id.in_(row_ids)).values(published_at=sa.func.now())
                )
        if failure is not None:
            logger.warning("{} outbox event(s) not published yet: {}", len(rows), type(failure).__name__)
            raise failure
        return len(rows)

    async def purge(self, db: Database, retention: timedelta) -> int:
        """Delete rows published more than ``retention`` ago; returns how many."""
        t = self.table
        async with db.session() as session:
            result = await session.execute(sa.delete(t).where(t.c.published_at < sa.func.now() - retention))
        return int(getattr(result, "rowcount", 0) or 0)


class OutboxRelay(BackgroundLoop):
    """Publishes what is left in the outbox: every ``interval`` seconds or when woken, every
    unpublished row older than ``grace`` (writers that publish their own rows right after the
    commit get that long to do it), batch after batch; after a failure it backs off. Published
    rows older than ``retention`` are purged about every ``purge_every`` seconds."""

    def __init__(
        self,
        outbox: Outbox,
        db: Database,
        bus: Bus,
        *,
        name: str,
        interval: float = 1.0,
        grace: timedelta = timedelta(0),
        retention: timedelta = timedelta(days=2),
        purge_every: float = 3600.0,
        max_backoff: float = 30.0,
    ) -> None:
        super().__init__(
            name, self.relay_once, interval=interval, max_backoff=max_backoff, immediate=True, final_step=True
        )
        self.outbox = outbox
        self.db = db
        self.bus = bus
        self.grace = grace
        self.retention = retention
        self._purge_rounds = max(1, round(purge_every / max(interval, 0.001)))
        self._rounds = 0

    async def relay_once(self) -> int:
        sent = 0
        while True:
            n = await self.outbox.flush(self.db, self.bus, older_than=self.grace or None)
            sent += n
            if n < self.outbox.batch_size:
                break
        self._rounds += 1
        if self._rounds % self._purge_rounds == 0:
            await self.outbox.purge(self.db, self.retention)
        return sent
