"""Sessions: each sign-in starts one (a refresh-token family); people list and end their own,
administrators end a user's."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Any

import jwt
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field
from soc_shared.errors import ApiError, NotFound
from sqlalchemy import func, select

from soc_auth.audit import trail
from soc_auth.database import utcnow
from soc_auth.deps import AppState, CurrentActor, UserManagerReader, UserManagerWriter
from soc_auth.outbox.service import transaction
from soc_auth.token import service as tokens
from soc_auth.token.models import refresh_token
from soc_auth.user.flows import get_visible

router = APIRouter(tags=["sessions"])


class SessionRead(BaseModel):
    id: uuid.UUID = Field(description="the session (refresh-token family)")
    started_at: datetime
    last_used_at: datetime = Field(description="the last sign-in or refresh")
    expires_at: datetime = Field(description="when its current refresh token expires")
    client_ip: str | None
    user_agent: str | None
    device: str = Field(description="browser and system, read from the user agent")
    current: bool = Field(description="the session of the access token making this request")


class SessionList(BaseModel):
    items: list[SessionRead]
    total: int


_SYSTEMS = [
    ("Windows", r"Windows"),
    ("iOS", r"iPhone|iPad"),
    ("Android", r"Android"),
    ("macOS", r"Mac OS X|Macintosh"),
    ("Linux", r"Linux"),
]
_BROWSERS = [
    ("Edge", r"Edg/"),
    ("Chrome", r"Chrome/"),
    ("Firefox", r"Firefox/"),
    ("Safari", r"Safari/"),
    ("curl", r"^curl/"),
    ("Python", r"python|httpx|aiohttp"),
]


def device_of(user_agent: str | None) -> str:
    if not user_agent:
        return "unknown"
    browser = next((name for name, pattern in _BROWSERS if re.search(pattern, user_agent, re.I)), None)
    system = next((name for name, pattern in _SYSTEMS if re.search(pattern, user_agent)), None)
    parts = [p for p in (browser, system) if p]
    return " on ".join(parts) if parts else user_agent[:60]


def _current_session(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("bearer "):
        return None
    try:
        # Already verified by the route's dependency; only the session id is read here.
        return jwt.decode(header[7:], options={"verify_signature": False}).get("sid")
    except jwt.PyJWTError:
        return None


async def _sessions(session: Any, user_id: uuid.UUID, current: str | None) -> SessionList:
    now = utcnow()
    live = (
        select(
            refresh_token.c.family_id,
            func.min(refresh_token.c.issued_at).label("started_at"),
            func.max(refresh_token.c.issued_at).label("last_used_at"),
        )
        .where(refresh_token.c.user_id == user_id)
        .group_by(refresh_token.c.family_id)
        .subquery()
    )
    latest = (
        select(refresh_token, live.c.started_at, live.c.last_used_at)
        .join(live, live.c.family_id == refresh_token.c.family_id)
        .where(
            refresh_token.c.issued_at == live.c.last_used_at,
            refresh_token.c.revoked_at.is_(None),
            refresh_token.c.spent_at.is_(None),
            refresh_token.c.expires_at > now,
        )
        .order_by(live.c.last_used_at.desc())
    )
    rows = (await session.execute(latest)).all()
    items = [
        SessionRead(
            id=r.family_id,
            started_at=r.started_at,
            last_used_at=r.last_used_at,
            expires_at=r.expires_at,
            client_ip=r.client_ip,
            user_agent=r.user_agent,
            device=device_of(r.user_agent),
            current=str(r.family_id) == current,
        )
        for r in rows
    ]
    return SessionList(items=items, total=len(items))


@router.get("/auth/sessions/", response_model=SessionList)
async def my_sessions(actor: CurrentActor, request: Request, state: AppState) -> SessionList:
    """My open sessions: device, address, start and last use; `current` marks this one."""
    async with state.db.session() as session:
        return await _sessions(session, actor.user.id, _current_session(request))


@router.delete("/auth/sessions/{session_id}/", status_code=204, response_class=Response)
async def end_my_session(
    session_id: uuid.UUID, actor: CurrentActor, state: AppState, request: Request
) -> Response:
    """End one of my sessions (its refresh token stops working; access tokens expire on their own)."""
    async with transaction(state) as session:
        owned = (
            await session.execute(
                select(refresh_token.c.family_id)
                .where(refresh_token.c.family_id == session_id, refresh_token.c.user_id == actor.user.id)
                .limit(1)
            )
        ).first()
        if owned is None:
            raise NotFound("session")
        await tokens.revoke_family(session, session_id, "session_ended")
        await trail.record(
            session,
            request,
            actor,
            "session.ended",
            "session",
            session_id,
            company_id=actor.company_id,
            after={"user_id": str(actor.user.id)},
        )
    return Response(status_code=204)


@router.delete("/auth/sessions/", status_code=204, response_class=Response)
async def end_my_sessions(actor: CurrentActor, state: AppState, request: Request) -> Response:
    """End every session of mine (this one included)."""
    async with transaction(state) as session:
        await tokens.revoke_user(session, actor.user.id, "logout_all")
        await trail.record(
            session,
            request,
            actor,
            "user.sessions_ended",
            "user",
            actor.user.id,
            company_id=actor.company_id,
            after={"sessions": "all", "by": "self"},
        )
    return Response(status_code=204)


@router.get("/admin/users/{user_id}/sessions/", response_model=SessionList, tags=["admin users"])
async def user_sessions(user_id: uuid.UUID, actor: UserManagerReader, state: AppState) -> SessionList:
    async with state.db.session() as session:
        target = await get_visible(session, actor, user_id)
        return await _sessions(session, target.id, None)


@router.delete(
    "/admin/users/{user_id}/sessions/", status_code=204, response_class=Response, tags=["admin users"]
)
async def end_user_sessions(
    user_id: uuid.UUID, actor: UserManagerWriter, state: AppState, request: Request
) -> Response:
    """An administrator ends every session of a user (administrators' sessions: super admins)."""
    async with transaction(state) as session:
        target = await get_visible(session, actor, user_id)
        if target.is_admin and not actor.is_super_admin and target.id != actor.user.id:
            raise ApiError(403, "super_admin_required", "only a super administrator changes administrators")
        await tokens.revoke_user(session, target.id, "ended_by_admin")
        await trail.record(
            session,
            request,
            actor,
            "user.sessions_revoked",
            "user",
            target.id,
            company_id=target.company_id,
            after={"sessions": "all", "by": "administrator"},
        )
    return Response(status_code=204)
