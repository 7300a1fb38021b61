"""Recording login attempts (row + event) and reading them back for administrators."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from soc_shared.db import Database
from soc_shared.events import LoginAttempt
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from soc_auth.audit.models import LoginAttemptRead, login_attempt
from soc_auth.outbox.service import enqueue


@dataclass(frozen=True)
class AttemptContext:
    client_ip: str | None
    user_agent: str | None
    endpoint: str = "login"


def _event(row: dict[str, Any]) -> tuple[str, LoginAttempt, str]:
    """A stored attempt's event: routing key, payload and subject — the same as when it was made (so
    its event id is the same, and a consumer that filed it already files it once)."""
    user_id = row["user_id"]
    return (
        f"auth.login.{row['outcome']}",
        LoginAttempt(
            username=row["username"],
            user_id=str(user_id) if user_id else None,
            method=row["method"],
            client_ip=row["client_ip"],
            user_agent=row["user_agent"],
            outcome=row["outcome"],
            reason=row["reason"],
            at=row["at"].astimezone(UTC),
        ),
        str(user_id) if user_id else str(row["username"]),
    )


async def record(
    session: AsyncSession,
    *,
    username: str,
    user_id: uuid.UUID | None,
    ctx: AttemptContext,
    succeeded: bool,
    method: str,
    reason: str | None,
    at: datetime,
) -> None:
    outcome = "succeeded" if succeeded else "failed"
    values = {
        "at": at,
        "username": username[:255],
        "user_id": user_id,
        "client_ip": (ctx.client_ip or None) and ctx.client_ip[:64],
        "user_agent": (ctx.user_agent or None) and ctx.user_agent[:512],
        "outcome": outcome,
        "method": method,
        "reason": reason,
        "endpoint": ctx.endpoint,
    }
    await session.execute(insert(login_attempt).values(**values))
    routing_key, payload, subject = _event(values)
    await enqueue(session, routing_key, payload, subject=subject)


async def republish(db: Database, *, since: datetime | None = None, batch: int = 1000) -> int:
    """Publish the stored attempts again (through the outbox, in batches), e.g. so that the suite's
    audit store holds the sign-ins made before it filed them. Each event is the one sent at the time
    (same id): attempts filed already are not filed twice. Answers how many were queued."""
    queued, after_id = 0, 0
    while True:
        async with db.session() as session:
            query = select(login_attempt).where(login_attempt.c.id > after_id)
            if since is not None:
                query = query.where(login_attempt.c.at >= since)
            rows = (await session.execute(query.order_by(login_attempt.c.id).limit(batch))).mappings().all()
            for row in rows:
                routing_key, payload, subject = _event(dict(row))
                await enqueue(session, routing_key, payload, subject=subject)
        if not rows:
            return queued
        queued += len(rows)
        after_id = rows[-1]["id"]


@dataclass
class AttemptFilter:
    username: str | None = None
    user_id: uuid.UUID | None = None
    outcome: str | None = None
    method: str | None = None
    client_ip: str | None = None
    since: datetime | None = None
    until: datetime | None = None


async def list_attempts(
    session: AsyncSession, flt: AttemptFilter, *, limit: int, offset: int
) -> tuple[list[LoginAttemptRead], int]:
    conditions = []
    if flt.username:
        conditions.append(func.lower(login_attempt.c.username) == flt.username.strip().lower())
    if flt.user_id:
        conditions.append(login_attempt.c.user_id == flt.user_id)
    if flt.outcome:
        conditions.append(login_attempt.c.outcome == flt.outcome)
    if flt.method:
        conditions.append(login_attempt.c.method == flt.method)
    if flt.client_ip:
        conditions.append(login_attempt.c.client_ip == flt.client_ip)
    if flt.since:
        conditions.append(login_attempt.c.at >= flt.since)
    if flt.until:
        conditions.append(login_attempt.c.at < flt.until)
    total = (
        await session.execute(select(func.count()).select_from(login_attempt).where(*conditions))
    ).scalar_one()
    rows = (
        await session.execute(
            select(login_attempt)
            .where(*conditions)
            .order_by(login_attempt.c.at.desc(), login_attempt.c.id.desc())
            .limit(limit)
            .offset(offset)
        )
    ).all()
    return [LoginAttemptRead.model_validate(dict(r._mapping)) for r in rows], total
