"""Calls to the auth service that must eventually happen even if auth is down at the time (disable or
re-enable a company's users). The intent is written in the same transaction as the change that
needs it, tried right after the commit, and retried with backoff by every replica (rows are claimed
with ``FOR UPDATE SKIP LOCKED``, so two replicas never run the same action at once). The rows stay
locked while the call runs (a call is short): an intent that supersedes one in flight waits for it,
so the newer call always reaches auth last."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI
from loguru import logger
from soc_shared.lease import Lease
from soc_shared.loop import BackgroundLoop, backoff_delay
from sqlalchemy.ext.asyncio import AsyncSession

from soc_tenant.control.options import options
from soc_tenant.control.tables import pending_action
from soc_tenant.integrations.clients import UpstreamRejected, UpstreamUnavailable, auth_directory

DISABLE_COMPANY_USERS = "disable_company_users"
ENABLE_COMPANY_USERS = "enable_company_users"
_COMPANY_KINDS = (DISABLE_COMPANY_USERS, ENABLE_COMPANY_USERS)


async def enqueue(
    session: AsyncSession, kind: str, company_id: uuid.UUID, payload: dict[str, Any] | None = None
) -> uuid.UUID:
    """Record the intent; a newer intent for the same company supersedes the older undone one."""
    if kind in _COMPANY_KINDS:
        await session.execute(
            sa.update(pending_action)
            .where(
                pending_action.c.company_id == company_id,
                pending_action.c.kind.in_(_COMPANY_KINDS),
                pending_action.c.done_at.is_(None),
            )
            .values(done_at=sa.func.now(), last_error="superseded")
        )
    action_id = uuid.uuid4()
    await session.execute(
        sa.insert(pending_action).values(
            id=action_id, kind=kind, company_id=company_id, payload=payload or {}
        )
    )
    return action_id


async def _perform(app: FastAPI, kind: str, company_id: str) -> None:
    directory = auth_directory(app)
    if kind == DISABLE_COMPANY_USERS:
        await directory.disable_company_users(company_id)
    elif kind == ENABLE_COMPANY_USERS:
        await directory.enable_company_users(company_id)
    else:
        raise ValueError(f"unknown pending action {kind!r}")


# Due at ``next_attempt_at``; no holder column: a claimed row stays locked while its call runs.
lease = Lease(pending_action, key=("id",), next_run="next_attempt_at")


async def run(app: FastAPI, ids: list[uuid.UUID] | None = None) -> dict[str, int]:
    """Run due actions (or the given ones now); returns counts of done and failed."""
    pa = pending_action
    done = failed = 0
    opts = options(app)
    async with app.state.db.session() as session:
        rows = await lease.lock_due(
            session,
            pa.c.done_at.is_(None),
            *([pa.c.id.in_(ids)] if ids is not None else []),
            limit=100,
            order_by=[pa.c.created_at],
            due=ids is None,
        )
        for row in rows:
            try:
                await _perform(app, row["kind"], str(row["company_id"]))
            except (UpstreamUnavailable, UpstreamRejected) as exc:
                failed += 1
                attempts = row["attempts"] + 1
                delay = backoff_delay(
                    attempts, base=opts.pending_retry_seconds, cap=opts.pending_backoff_max_seconds, jitter=0
                )
                await lease.release(
                    session,
                    pa.c.id == row["id"],
                    retry_in=delay,
                    values={"attempts": attempts, "last_error": str(exc)[:500]},
                )
                logger.warning(
                    "pending {} for company {} failed ({}); retry in {:.0f}s",
                    row["kind"],
                    row["company_id"],
                    exc,
                    delay,
                )
                continue
            done += 1
            await lease.release(
                session,
                pa.c.id == row["id"],
                values={"attempts": row["attempts"] + 1, "done_at": sa.func.now(), "last_error": None},
            )
            logger.info("pending {} for company {} done", row["kind"], row["company_id"])
    return {"done": done, "failed": failed}


async def state(session: AsyncSession, company_id: uuid.UUID) -> list[dict[str, Any]]:
    """Undone actions of a company (shown on its tenant detail)."""
    pa = pending_action
    rows = (
        (
            await session.execute(
                sa.select(
                    pa.c.id, pa.c.kind, pa.c.attempts, pa.c.last_error, pa.c.next_attempt_at, pa.c.created_at
                )
                .where(pa.c.company_id == company_id, pa.c.done_at.is_(None))
                .order_by(pa.c.created_at)
            )
        )
        .mappings()
        .all()
    )
    return [dict(r) for r in rows]


def retry_loop(app: FastAPI) -> BackgroundLoop:
    """Due actions, every ``pending_retry_seconds`` (each action keeps its own backoff)."""

    async def step() -> None:
        await run(app)

    return BackgroundLoop("tenant-pending-actions", step, interval=options(app).pending_retry_seconds)
