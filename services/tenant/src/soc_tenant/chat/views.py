"""Support chat between a company's users and the admins: REST history, unread counts, seen marks,
and live delivery over ``/ws/chat/`` (every post is published as ``tenant.chat.posted``; each replica
pushes it to the sockets it holds, see :mod:`soc_tenant.chat.live`)."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, cast

import sqlalchemy as sa
from fastapi import APIRouter, FastAPI, Query, WebSocket, WebSocketDisconnect
from loguru import logger
from pydantic import Field, ValidationError, field_validator
from soc_shared.api import Page
from soc_shared.errors import ApiError
from soc_shared.events import ChatMessagePosted
from soc_shared.security import InvalidToken, Principal
from sqlalchemy.engine import CursorResult

from soc_tenant.chat.live import CLOSE_TOKEN_EXPIRED, Subscriber, dumps
from soc_tenant.chat.responses import AdminUnread, ChatMessage, MessagesSeen, TenantUnread
from soc_tenant.control.deps import (
    ControlTx,
    Paging,
    Person,
    Tx,
    UserWriter,
    as_uuid,
    invalid,
    not_found,
    page,
    scoped_company,
    scoped_tx,
)
from soc_tenant.control.models import Strict, storable
from soc_tenant.control.tables import chat_message, company

router = APIRouter(tags=["chat"])

MAX_BODY = 4000
_COLUMNS = [
    chat_message.c[n]
    for n in (
        "id",
        "company_id",
        "sender_id",
        "sender_name",
        "sender_kind",
        "body",
        "sent_at",
        "admin_seen_at",
        "tenant_seen_at",
    )
]


class MessageIn(Strict):
    body: str = Field(min_length=1, max_length=MAX_BODY)
    company_id: uuid.UUID | None = Field(default=None, description="admins: the company to write to")

    @field_validator("body")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("the message is empty")
        if any(ord(c) < 32 and c not in "\n\r\t" for c in value) or not storable(value):
            raise ValueError("the message contains control characters")
        return value


class SeenIn(Strict):
    up_to_id: int | None = Field(
        default=None, ge=1, le=2**63 - 1, description="mark messages up to this id (default: all)"
    )
    up_to: datetime | None = Field(default=None, description="or up to this time")
    company_id: uuid.UUID | None = Field(default=None, description="admins: the company")


def _side(principal: Principal) -> Literal["admin", "tenant"]:
    return "admin" if principal.is_admin else "tenant"


def _company_for(principal: Principal, company_id: uuid.UUID | str | None, loc: list[str]) -> uuid.UUID:
    scope = scoped_company(principal, company_id)
    if scope is None:
        raise invalid(loc, "admins choose a company", "missing")
    return scope


async def _company_row(tx: Tx, company_id: uuid.UUID) -> Any:
    row = (
        await tx.session.execute(
            sa.select(company.c.id, company.c.name, company.c.deleted_at).where(company.c.id == company_id)
        )
    ).first()
    if row is None:
        raise not_found("company")
    return row


async def post_message(tx: Tx, company_id: uuid.UUID, body: str) -> dict[str, Any]:
    row = await _company_row(tx, company_id)
    if row.deleted_at is not None:
        raise ApiError(409, "company_deleted", "the company is deleted; its chat is read-only")
    p = tx.principal
    kind = _side(p)
    now = datetime.now(UTC)
    values = {
        "company_id": company_id,
        "sender_id": p.sub,
        "sender_name": p.username,
        "sender_kind": kind,
        "body": body,
        "sent_at": now,
    }
    # The sender has seen its own message.
    values["admin_seen_at" if kind == "admin" else "tenant_seen_at"] = now
    message = dict(
        (await tx.session.execute(sa.insert(chat_message).values(**values).returning(*_COLUMNS)))
        .mappings()
        .one()
    )
    await tx.publish(
        "tenant.chat.posted",
        ChatMessagePosted(
            message_id=str(message["id"]),
            company_id=str(company_id),
            sender_id=p.sub,
            sender_name=p.username,
            sender_kind=kind,
            body=body,
            sent_at=message["sent_at"],
        ),
        subject=str(message["id"]),
    )
    return message


async def mark_seen(tx: Tx, company_id: uuid.UUID, up_to_id: int | None, up_to: datetime | None) -> int:
    await _company_row(tx, company_id)
    kind = _side(tx.principal)
    other = "tenant" if kind == "admin" else "admin"
    column = chat_message.c.admin_seen_at if kind == "admin" else chat_message.c.tenant_seen_at
    stmt = sa.update(chat_message).where(
        chat_message.c.company_id == company_id, chat_message.c.sender_kind == other, column.is_(None)
    )
    if up_to_id is not None:
        stmt = stmt.where(chat_message.c.id <= up_to_id)
    if up_to is not None:
        stmt = stmt.where(chat_message.c.sent_at <= up_to)
    result = await tx.session.execute(stmt.values({column.name: sa.func.now()}))
    return int(cast("CursorResult[Any]", result).rowcount or 0)


# --- REST ------------------------------------------------------------------------------------------
@router.get("/tenant/chat/messages/", response_model=Page[ChatMessage])
async def list_messages(
    tx: ControlTx,
    principal: Person,
    paging: Paging,
    company_id: uuid.UUID | None = None,
    before_id: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    after_id: Annotated[int | None, Query(ge=0, le=2**63 - 1)] = None,
    order: Literal["desc", "asc"] = "desc",
) -> dict[str, Any]:
    """A company's messages, newest first by default (admins pass ``company_id``)."""
    cid = _company_for(principal, company_id, ["query", "company_id"])
    await _company_row(tx, cid)
    stmt = sa.select(*_COLUMNS).where(chat_message.c.company_id == cid)
    if before_id is not None:
        stmt = stmt.where(chat_message.c.id < before_id)
    if after_id is not None:
        stmt = stmt.where(chat_message.c.id > after_id)
    total = (await tx.session.execute(sa.select(sa.func.count()).select_from(stmt.subquery()))).scalar_one()
    stmt = stmt.order_by(chat_message.c.id.desc() if order == "desc" else chat_message.c.id)
    rows = (await tx.session.execute(stmt.limit(paging.limit).offset(paging.offset))).mappings().all()
    return page([dict(r) for r in rows], total, paging)


@router.post("/tenant/chat/messages/", status_code=201, response_model=ChatMessage)
async def post_message_route(tx: ControlTx, principal: UserWriter, body: MessageIn) -> dict[str, Any]:
    cid = _company_for(principal, body.company_id, ["body", "company_id"])
    return await post_message(tx, cid, body.body)


@router.post("/tenant/chat/messages/seen/", response_model=MessagesSeen)
async def seen_route(tx: ControlTx, principal: UserWriter, body: SeenIn) -> dict[str, Any]:
    """Marks the other side's messages as seen by the caller's side (tenant users or admins)."""
    cid = _company_for(principal, body.company_id, ["body", "company_id"])
    return {"company_id": str(cid), "marked": await mark_seen(tx, cid, body.up_to_id, body.up_to)}


@router.get("/tenant/chat/unread/", response_model=TenantUnread | AdminUnread)
async def unread(tx: ControlTx, principal: Person, company_id: uuid.UUID | None = None) -> dict[str, Any]:
    """Tenant users: the admins' messages they have not seen. Admins: per company, the tenants' messages
    no admin has seen."""
    m = chat_message
    scope = scoped_company(principal, company_id)
    if not principal.is_admin:
        count = (
            await tx.session.execute(
                sa.select(sa.func.count()).where(
                    m.c.company_id == scope, m.c.sender_kind == "admin", m.c.tenant_seen_at.is_(None)
                )
            )
        ).scalar_one()
        return {"company_id": str(scope), "unread": count}
    stmt = (
        sa.select(
            m.c.company_id,
            company.c.name.label("company_name"),
            sa.func.count().label("unread"),
            sa.func.max(m.c.id).label("last_message_id"),
        )
        .join(company, company.c.id == m.c.company_id)
        .where(m.c.sender_kind == "tenant", m.c.admin_seen_at.is_(None))
        .group_by(m.c.company_id, company.c.name)
        .order_by(sa.func.max(m.c.id).desc())
    )
    if scope is not None:
        stmt = stmt.where(m.c.company_id == scope)
    rows = [dict(r) for r in (await tx.session.execute(stmt)).mappings().all()]
    return {
        "items": rows,
        "total": len(rows),
        "limit": len(rows),
        "offset": 0,
        "unread_total": sum(r["unread"] for r in rows),
    }


# --- WebSocket ---------------------------------------------------------------------------------------
# Browsers put the token in a subprotocol: the client offers ["soc.v1", "access_token.<jwt>"] and the
# handshake answers "soc.v1" (a URL with a token ends up in proxy and access logs).
SOC_PROTOCOL = "soc.v1"
TOKEN_PROTOCOL_PREFIX = "access_token."


def _token_of(websocket: WebSocket, token: str | None) -> str | None:
    for protocol in websocket.scope.get("subprotocols") or []:
        if protocol.startswith(TOKEN_PROTOCOL_PREFIX) and len(protocol) > len(TOKEN_PROTOCOL_PREFIX):
            return protocol[len(TOKEN_PROTOCOL_PREFIX) :]
    header = websocket.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    settings = getattr(websocket.app.state, "settings", None)
    if token and getattr(settings, "environment", "prod") == "dev":
        return token  # deprecated: ?token= in development only
    return None


def _protocol_of(websocket: WebSocket) -> str | None:
    return SOC_PROTOCOL if SOC_PROTOCOL in (websocket.scope.get("subprotocols") or []) else None


async def _refuse(websocket: WebSocket, code: int, error: str, message: str) -> None:
    await websocket.accept(subprotocol=_protocol_of(websocket))
    await websocket.send_text(dumps({"type": "error", "error": {"code": error, "message": message}}))
    await websocket.close(code=code, reason=error)


async def _room(app: FastAPI, principal: Principal, company_id: str | None) -> str | None:
    """The room a socket joins: a tenant's own company; an admin's chosen one, or every company (None)."""
    cid = scoped_company(principal, company_id)
    if cid is None:
        return None
    async with scoped_tx(app, principal) as tx:
        row = (
            await tx.session.execute(
                sa.select(company.c.id, company.c.is_active, company.c.deleted_at).where(company.c.id == cid)
            )
        ).first()
    if row is None:
        raise not_found("company")
    if principal.kind == "tenant" and (row.deleted_at is not None or not row.is_active):
        raise ApiError(403, "company_inactive", "the company is inactive")
    return str(cid)


@router.websocket("/ws/chat/")
async def chat_socket(
    websocket: WebSocket, token: str | None = None, company_id: str | None = None, metrics: bool = False
) -> None:
    """Live chat and admin notifications. Authenticate with the subprotocols
    ``["soc.v1", "access_token.<jwt>"]`` (answered ``soc.v1``) or ``Authorization: Bearer``
    (``?token=`` is deprecated and read with ``SOC_ENV=dev`` only).
    Tenant users join their company's room; admins every room, or one with ``?company_id=``.

    Server frames: ``hello``, ``chat.message``, ``notification`` (admins), ``metrics`` (admins with
    ``?metrics=true``: integration, company and tenant-user counts, host and per-service CPU and
    memory, on connect and periodically), ``action.outcome`` (the outcome of a vendor action the
    user asked for, see :mod:`soc_tenant.actions.views`), ``ack``, ``seen``, ``pong``, ``error``. Client frames: ``{"type": "message", "body": ..., "company_id"?}``,
    ``{"type": "seen", "up_to_id"?, "company_id"?}``, ``{"type": "ping"}``.
    Close codes: 4401 bad or expired token, 4403 not allowed, 4404 unknown company.
    """
    app: FastAPI = websocket.app
    raw = _token_of(websocket, token)
    if raw is None:
        await _refuse(websocket, 4401, "not_authenticated", "authentication required")
        return
    try:
        principal = await app.state.token_verifier.verify(raw)
    except InvalidToken:
        await _refuse(websocket, 4401, "invalid_token", "invalid or expired token")
        return
    if principal.is_service:
        await _refuse(websocket, 4403, "forbidden", "not for services")
        return
    try:
        room = await _room(app, principal, company_id)
    except ApiError as exc:
        await _refuse(websocket, 4404 if exc.status_code == 404 else 4403, exc.code, exc.message)
        return
    hub = app.state.live_hub
    await websocket.accept(subprotocol=_protocol_of(websocket))
    subscriber = Subscriber(websocket, principal, room, metrics=metrics and principal.is_admin)
    hub.add(subscriber)
    await websocket.send_text(
        dumps(
            {
                "type": "hello",
                "user": {"id": principal.sub, "username": principal.username, "kind": principal.kind},
                "room": room or "all",
                "replica": hub.queue_name,
            }
        )
    )
    if subscriber.metrics:
        try:
            await websocket.send_text(await hub.metrics_frame())
        except Exception as exc:  # noqa: BLE001 - the periodic frames follow anyway
            logger.warning("live metrics on connect: {}", exc)
    try:
        while True:
            text = await websocket.receive_text()
            if principal.exp < time.time():
                await websocket.close(code=CLOSE_TOKEN_EXPIRED, reason="token expired")
                return
            reply = await _handle_frame(app, principal, room, text)
            await websocket.send_text(dumps(reply))
    except WebSocketDisconnect:
        pass
    except Exception as exc:  # noqa: BLE001 - one broken socket must not take anything else down
        logger.debug("chat socket closed: {}", type(exc).__name__)
    finally:
        hub.remove(subscriber)


class _Frame(Strict):
    type: Literal["message", "seen", "ping"]
    body: str | None = Field(default=None, max_length=MAX_BODY + 100)
    company_id: uuid.UUID | None = None
    up_to_id: int | None = Field(default=None, ge=1, le=2**63 - 1)
    ref: str | None = Field(default=None, max_length=100, description="echoed in the answer")


async def _handle_frame(app: FastAPI, principal: Principal, room: str | None, text: str) -> dict[str, Any]:
    ref = None
    try:
        try:
            frame = _Frame.model_validate(json.loads(text))
        except (ValueError, ValidationError):
            raise ApiError(
                422, "invalid_frame", "frames are JSON objects with a type of message, seen or ping"
            ) from None
        ref = frame.ref
        if frame.type == "ping":
            return {"type": "pong", "ref": ref}
        if principal.read_only:
            raise ApiError(403, "read_only", "read-only accounts cannot change anything")
        target = frame.company_id or (as_uuid(room, "company") if room else None)
        cid = _company_for(principal, target, ["company_id"])
        async with scoped_tx(app, principal) as tx:
            if frame.type == "message":
                try:
                    body = MessageIn(body=frame.body or "", company_id=cid).body
                except ValidationError:
                    raise ApiError(
                        422, "validation_error", f"a message has 1 to {MAX_BODY} characters"
                    ) from None
                message = await post_message(tx, cid, body)
                return {"type": "ack", "ref": ref, "message": message}
            marked = await mark_seen(tx, cid, frame.up_to_id, None)
            return {"type": "seen", "ref": ref, "company_id": str(cid), "marked": marked}
    except ApiError as exc:
        return {"type": "error", "ref": ref, "error": {"code": exc.code, "message": exc.message}}
