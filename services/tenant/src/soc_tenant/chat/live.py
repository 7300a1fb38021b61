"""Live delivery to WebSockets across replicas.

Every replica binds its OWN exclusive, auto-delete queue (not the shared quorum queues, whose
messages go to one consumer only) to ``tenant.chat.posted`` and ``tenant.integration.changed``, so
each replica sees every chat message and every integration change and pushes them to the sockets it
holds. The queue disappears with the replica; nothing durable depends on it (chat history is in the
database, integration status too).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue
from fastapi import FastAPI, WebSocket
from loguru import logger
from soc_shared.bus import EVENTS_EXCHANGE, declare_exchanges, decode_message
from soc_shared.events import (
    ActionCompleted,
    ChatMessagePosted,
    IntegrationChanged,
    InvalidEvent,
    NotificationPosted,
)
from soc_shared.loop import BackgroundLoop
from soc_shared.security import Principal

from soc_tenant.chat.live_metrics import MetricsSampler
from soc_tenant.control.options import options

LIVE_KEYS = (
    "tenant.chat.posted",
    "tenant.integration.changed",
    "tenant.notification.posted",
    "tenant.action.updated",
)
CLOSE_TOKEN_EXPIRED = 4401


@dataclass(eq=False)
class Subscriber:
    socket: WebSocket
    principal: Principal
    company_id: str | None  # None: an admin watching every company
    metrics: bool = False  # an admin who asked for the live figures

    def wants_company(self, company_id: str) -> bool:
        return self.company_id is None or self.company_id == company_id


def dumps(frame: dict[str, Any]) -> str:
    return json.dumps(frame, default=str, separators=(",", ":"))


def message_frame(message: ChatMessagePosted | dict[str, Any]) -> dict[str, Any]:
    data = message.model_dump(mode="json") if isinstance(message, ChatMessagePosted) else dict(message)
    view = {
        "id": int(data["message_id"])
        if str(data.get("message_id", "")).isdigit()
        else data.get("message_id"),
        "company_id": data["company_id"],
        "sender_id": data["sender_id"],
        "sender_name": data.get("sender_name"),
        "sender_kind": data["sender_kind"],
        "body": data["body"],
        "sent_at": data["sent_at"],
        "admin_seen_at": None,
        "tenant_seen_at": None,
    }
    return {"type": "chat.message", "message": view}


def integration_frame(change: IntegrationChanged) -> dict[str, Any]:
    severity = (
        "error"
        if change.status == "error"
        else "warning"
        if change.deleted or change.status == "disabled"
        else "info"
    )
    what = "deleted" if change.deleted else f"is {change.status}"
    return {
        "type": "notification",
        "event": "integration.changed",
        "severity": severity,
        "message": f"{change.subtype} integration {change.instance_name!r} {what}",
        "integration": {
            "id": change.integration_id,
            "instance_name": change.instance_name,
            "subtype": change.subtype,
            "integration_type": change.integration_type,
            "status": change.status,
            "deleted": change.deleted,
            "company_id": change.company_id,
        },
        "at": change.changed_at.isoformat(),
    }


class LiveHub:
    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.queue_name = f"tenant.live.{uuid.uuid4().hex[:12]}"
        self.subscribers: set[Subscriber] = set()
        self._channel: AbstractChannel | None = None
        self._queue: AbstractQueue | None = None
        self._tag: str | None = None
        self._metrics = BackgroundLoop(
            "tenant-live-metrics", self._metrics_round, interval=options(app).live_metrics_seconds
        )
        self.sampler = MetricsSampler(app)

    async def start(self) -> None:
        self._channel = await self.app.state.bus.channel(prefetch=500)
        await declare_exchanges(self._channel)
        self._queue = await self._channel.declare_queue(
            self.queue_name,
            durable=False,
            exclusive=True,
            auto_delete=True,
            arguments={"x-queue-type": "classic"},
        )
        for key in LIVE_KEYS:
            await self._queue.bind(EVENTS_EXCHANGE, routing_key=key)
        self._tag = await self._queue.consume(self._on_message, no_ack=True)
        self._metrics.start()
        logger.info("live fan-out on {}", self.queue_name)

    async def metrics_frame(self) -> str:
        return dumps(await self.sampler.frame())

    async def _metrics_round(self) -> None:
        """Figures to the subscribers who asked for them (best effort: a failed round is logged
        and the next one, after a backoff, tries again)."""
        targets = [s for s in self.subscribers if s.metrics]
        if targets:
            await self._send(targets, await self.metrics_frame())

    async def stop(self) -> None:
        await self._metrics.stop(grace_seconds=0)
        for sub in list(self.subscribers):
            try:
                await sub.socket.close(code=1012)  # service restart: clients reconnect to another replica
            except Exception:  # noqa: BLE001 - already gone
                pass
        self.subscribers.clear()
        if self._queue is not None and self._tag is not None:
            try:
                await self._queue.cancel(self._tag)
            except Exception as exc:  # noqa: BLE001 - the channel may be gone already
                logger.debug("live cancel: {}", exc)
        if self._channel is not None and not self._channel.is_closed:
            await self._channel.close()

    def add(self, sub: Subscriber) -> None:
        self.subscribers.add(sub)

    def remove(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        try:
            events, _ = decode_message(message.body, message.content_type)
        except InvalidEvent as exc:
            logger.debug("live: ignored an invalid event: {}", exc)
            return
        for _, payload in events:
            if isinstance(payload, ChatMessagePosted):
                await self.send_chat(payload)
            elif isinstance(payload, IntegrationChanged):
                await self.send_admins(integration_frame(payload))
            elif isinstance(payload, NotificationPosted):
                await self.send_notice(payload)
            elif isinstance(payload, ActionCompleted):
                await self.send_asker(payload)

    async def send_asker(self, outcome: ActionCompleted) -> None:
        """An action's outcome goes to the sockets of the person who asked for it."""
        frame = dumps({"type": "action.outcome", "action": outcome.model_dump(mode="json")})
        await self._send([s for s in self.subscribers if s.principal.sub == outcome.requested_by], frame)

    async def send_chat(self, message: ChatMessagePosted) -> None:
        frame = dumps(message_frame(message))
        await self._send([s for s in self.subscribers if s.wants_company(message.company_id)], frame)

    async def send_notice(self, notice: NotificationPosted) -> None:
        """An in-app notification: to the company's sockets (admins watching it included), or to the
        admins' for a staff notification."""
        frame = dumps(
            {"type": "notification", "event": "notification.posted", **notice.model_dump(mode="json")}
        )
        if notice.company_id is None:
            targets = [s for s in self.subscribers if s.principal.is_admin]
        else:
            targets = [s for s in self.subscribers if s.wants_company(notice.company_id)]
        await self._send(targets, frame)

    async def send_admins(self, frame: dict[str, Any]) -> None:
        await self._send([s for s in self.subscribers if s.principal.is_admin], dumps(frame))

    async def _send(self, targets: list[Subscriber], frame: str) -> None:
        if not targets:
            return
        timeout = options(self.app).live_send_timeout_seconds
        now = time.time()

        async def one(sub: Subscriber) -> None:
            try:
                if sub.principal.exp < now:
                    self.remove(sub)
                    await sub.socket.close(code=CLOSE_TOKEN_EXPIRED, reason="token expired")
                    return
                await asyncio.wait_for(sub.socket.send_text(frame), timeout)
            except Exception:  # noqa: BLE001 - a slow or dead socket is dropped, the others still get it
                self.remove(sub)
                try:
                    await sub.socket.close(code=1011)
                except Exception:  # noqa: BLE001
                    pass

        await asyncio.gather(*(one(s) for s in targets))
