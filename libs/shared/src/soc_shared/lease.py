"""Leases on due rows: how every replica of a service shares a table of work without doing a row twice.

A work table keeps its own columns; :class:`Lease` is told which of them are the key, the holder
(``owner``), the end of the lease (``until``) and, where a row has a schedule apart from its
lease, when it is next due (``next_run``). With them it builds the same statements for every
table:

- :meth:`Lease.claim` — due rows (``next_run`` passed, no live lease, plus the caller's
  conditions) picked with ``FOR UPDATE SKIP LOCKED`` and taken in one statement: ``owner`` and
  ``until`` set, the rows returned. Competing replicas skip each other's rows instead of waiting.
- :meth:`Lease.take` — one given row, if its lease ran out (the row lock serialises competitors
  and PostgreSQL re-checks the condition after the first one committed, so only one wins).
- :meth:`Lease.renew` — push the lease on while the work lives (false once another holds it).
- :meth:`Lease.release` — give the row back, optionally due again after ``retry_in`` seconds (the
  backoff after a failure, from :func:`soc_shared.loop.backoff_delay`, or the next interval). A
  table without ``next_run`` uses the lease itself as its backoff: the row stays with its owner
  until ``until``, then any replica may take it.
- :meth:`Lease.lock_due` — the due rows locked (``FOR UPDATE SKIP LOCKED``) in the caller's
  transaction, for work short enough to hold the lock throughout (a table without a holder).

Used by the sync scheduler (``sync_state``), itsm-ingest's ticket requests, the vendor actions'
commands (:mod:`soc_shared.actions`) and the tenant service's pending calls; each keeps its table.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

if TYPE_CHECKING:
    from sqlalchemy.engine import CursorResult


class Lease:
    """Lease statements for one work table, held by ``owner`` for ``seconds`` at a time."""

    def __init__(
        self,
        table: sa.Table,
        *,
        key: Sequence[str],
        owner: str | None = None,
        until: str | None = None,
        next_run: str | None = None,
        holder: str = "",
        seconds: float = 60.0,
    ) -> None:
        if until is None and next_run is None:
            raise ValueError("a lease needs an end (until) or a schedule (next_run)")
        if (owner is None) != (until is None):
            raise ValueError("a lease holder (owner) goes with the lease's end (until)")
        self.table = table
        self.key = [table.c[name] for name in key]
        self.owner = table.c[owner] if owner else None
        self.until = table.c[until] if until else None
        self.next_run = table.c[next_run] if next_run else None
        self.holder = holder
        self.seconds = seconds

    # ---------------------------------------------------------------------------- conditions
    def free(self) -> list[sa.ColumnElement[bool]]:
        """No live lease on the row."""
        if self.until is None:
            return []
        return [sa.or_(self.until.is_(None), self.until < sa.func.now())]

    def due(self) -> list[sa.ColumnElement[bool]]:
        """The row's time has come and nobody holds it."""
        scheduled = [self.next_run <= sa.func.now()] if self.next_run is not None else []
        return [*scheduled, *self.free()]

    def held(self) -> dict[str, Any]:
        """The values that give a row to this holder (also for rows inserted already held)."""
        if self.owner is None or self.until is None:
            return {}
        return {self.owner.name: self.holder, self.until.name: self._later(self.seconds)}

    @staticmethod
    def _later(seconds: float) -> sa.ColumnElement[Any]:
        return sa.func.now() + timedelta(seconds=seconds)

    def _mine(self) -> list[sa.ColumnElement[bool]]:
        return [self.owner == self.holder] if self.owner is not None else []

    # ---------------------------------------------------------------------------- statements
    def claim_statement(
        self,
        *where: sa.ColumnElement[bool],
        limit: int,
        order_by: Sequence[Any] = (),
        join: tuple[sa.FromClause, sa.ColumnElement[bool]] | None = None,
        values: dict[str, Any] | None = None,
    ) -> sa.UpdateBase:
        """Take up to ``limit`` due rows matching ``where`` (optionally joined to ``join``, e.g.
        the integration a row belongs to), first by ``order_by``; returns every column."""
        t = self.table
        pick = sa.select(*self.key)
        if join is not None:
            pick = pick.join(join[0], join[1])
        due = (
            pick.where(*self.due(), *where)
            .order_by(*(order_by or (self.next_run if self.next_run is not None else self.until,)))
            .limit(limit)
            .with_for_update(of=t, skip_locked=True)
            .cte("due")
        )
        return (
            sa.update(t)
            .where(*(column == due.c[column.name] for column in self.key))
            .values(**self.held(), **(values or {}))
            .returning(*t.c)
        )

    async def claim(
        self,
        session: AsyncSession,
        *where: sa.ColumnElement[bool],
        limit: int,
        order_by: Sequence[Any] = (),
        join: tuple[sa.FromClause, sa.ColumnElement[bool]] | None = None,
        values: dict[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        stmt = self.claim_statement(*where, limit=limit, order_by=order_by, join=join, values=values)
        return [dict(r) for r in (await session.execute(stmt)).mappings().all()]

    async def take(
        self, session: AsyncSession, *where: sa.ColumnElement[bool], values: dict[str, Any] | None = None
    ) -> dict[str, Any] | None:
        """The row(s) matching ``where`` (a key), if free: held by this holder now, returned."""
        stmt = (
            sa.update(self.table)
            .where(*where, *self.free())
            .values(**self.held(), **(values or {}))
            .returning(*self.table.c)
        )
        row = (await session.execute(stmt)).mappings().first()
        return dict(row) if row else None

    async def renew(
        self, session: AsyncSession, *where: sa.ColumnElement[bool], values: dict[str, Any] | None = None
    ) -> bool:
        """Push this holder's lease on the row(s) matching ``where`` (recording ``values``, e.g.
        the progress made); false if another holds it now."""
        if self.until is None:
            raise TypeError("a lease without an end cannot be renewed")
        changes = {self.until.name: self._later(self.seconds), **(values or {})}
        result = await session.execute(sa.update(self.table).where(*where, *self._mine()).values(**changes))
        return bool(cast("CursorResult[Any]", result).rowcount)

    async def release(
        self,
        session: AsyncSession,
        *where: sa.ColumnElement[bool],
        retry_in: float | None = None,
        values: dict[str, Any] | None = None,
        only_holder: bool = True,
    ) -> bool:
        """Give back the row(s) matching ``where`` with ``values``; with ``retry_in`` the row is
        due again that many seconds from now (a table without ``next_run``: the lease simply ends
        then). ``only_holder``: nothing happens unless this holder still holds the row."""
        changes: dict[Any, Any] = {}
        if self.owner is not None and self.until is not None:
            changes = {self.owner: None, self.until: None}
        if retry_in is not None:
            if self.next_run is not None:
                changes[self.next_run] = self._later(retry_in)
            else:
                assert self.until is not None and self.owner is not None
                changes[self.until] = self._later(retry_in)
                del changes[self.owner]
        changes.update({self.table.c[k]: v for k, v in (values or {}).items()})
        guard = self._mine() if only_holder else []
        result = await session.execute(sa.update(self.table).where(*where, *guard).values(changes))
        return bool(cast("CursorResult[Any]", result).rowcount)

    async def lock_due(
        self,
        session: AsyncSession,
        *where: sa.ColumnElement[bool],
        limit: int,
        order_by: Sequence[Any] = (),
        due: bool = True,
    ) -> list[dict[str, Any]]:
        """Due rows matching ``where``, locked in the caller's transaction (``FOR UPDATE SKIP
        LOCKED``): no other replica sees them until it ends. ``due=False``: the rows ``where``
        names, whenever they are due (work asked for now)."""
        stmt = (
            sa.select(self.table)
            .where(*(self.due() if due else ()), *where)
            .order_by(*order_by)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return [dict(r) for r in (await session.execute(stmt)).mappings().all()]
