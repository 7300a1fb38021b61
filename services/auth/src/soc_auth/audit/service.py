"""Recording login attempts (row + event) and reading them back for administrators."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

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
    await enqueue(
        session,
        f"auth.login.{outcome}",
        LoginAttempt(
            username=values["username"],
            user_id=str(user_id) if user_id else None,
            method=method,
            client_ip=values["client_ip"],
            user_agent=values["user_agent"],
            outcome=outcome,
            reason=reason,
            at=at,
        ),
        subject=str(user_id) if user_id else str(values["username"]),
    )


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
