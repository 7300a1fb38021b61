"""The RabbitMQ bus (aio-pika): topology, a confirming publisher and a batch consumer.

Topology (vhost ``soc``): topic exchanges ``soc.events`` (facts), ``soc.commands`` (work for exactly
one consumer) and ``soc.dlx`` (dead letters). Every consumer owns a durable quorum queue with a
delivery limit whose dead letters go to ``soc.dlx`` under the queue's own name, into
``<queue>.dead``: a poison message is parked with its reason, never looped and never lost.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aio_pika
import aiormq
from aio_pika.abc import (
    AbstractChannel,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
    DeliveryMode,
)
from loguru import logger
from opentelemetry import trace
from prometheus_client import Counter, Gauge, Histogram

from soc_shared.events import CloudEvent, InvalidEvent, Payload, parse_event
from soc_shared.telemetry import extract, tracer

EVENTS_EXCHANGE = "soc.events"
COMMANDS_EXCHANGE = "soc.commands"
DLX_EXCHANGE = "soc.dlx"

PUBLISHED = Counter("soc_events_published_total", "Events published with a broker confirm", ["routing_key"])
CONSUMED = Counter("soc_events_consumed_total", "Events consumed and committed", ["queue"])
DEAD_LETTERED = Counter("soc_events_dead_lettered_total", "Messages parked in a dead-letter queue", ["queue"])
BATCH_SECONDS = Histogram("soc_consumer_batch_seconds", "Time to handle one consumed batch", ["queue"])
CONSUMER_LAG = Gauge("soc_consumer_lag_seconds", "Age of the newest event of the last committed batch", ["queue"])


async def declare_exchanges(channel: AbstractChannel) -> dict[str, aio_pika.abc.AbstractExchange]:
    """The suite's three durable topic exchanges (idempotent)."""
    return {
        name: await channel.declare_exchange(name, aio_pika.ExchangeType.TOPIC, durable=True)
        for name in (EVENTS_EXCHANGE, COMMANDS_EXCHANGE, DLX_EXCHANGE)
    }


class PublishError(RuntimeError):
    """The broker did not confirm every message (nack, return or lost connection)."""


class Bus:
    """One robust connection per process; a confirming channel for publishing; topology declared
    on connect (and again after every reconnect, by aio-pika's robust objects)."""

    def __init__(self, url: str, *, service: str) -> None:
        self.url = url
        self.service = service
        self.connection: AbstractRobustConnection | None = None
        self._publish_channel: AbstractChannel | None = None
        self._exchanges: dict[str, aio_pika.abc.AbstractExchange] = {}
        self._lock = asyncio.Lock()

    async def connect(self) -> Bus:
        async with self._lock:
            if self.connection is None or self.connection.is_closed:
                self.connection = await aio_pika.connect_robust(
                    self.url, client_properties={"connection_name": self.service}, reconnect_interval=2
                )
                self._publish_channel = await self.connection.channel(publisher_confirms=True)
                self._exchanges = await declare_exchanges(self._publish_channel)
        return self

    async def channel(self, prefetch: int = 100, *, confirms: bool = False) -> AbstractChannel:
        await self.connect()
        assert self.connection is not None
        channel = await self.connection.channel(publisher_confirms=confirms)
        await channel.set_qos(prefetch_count=prefetch)
        return channel

    async def ping(self) -> None:
        await self.connect()
        if self.connection is None or self.connection.is_closed:
            raise ConnectionError("broker connection closed")

    @staticmethod
    def properties(event: CloudEvent) -> aiormq.spec.Basic.Properties:
        headers: dict[str, Any] = {"ce-type": event.type, "ce-source": event.source}
        if event.traceparent:
            headers["traceparent"] = event.traceparent
        if event.tracestate:
            headers["tracestate"] = event.tracestate
        return aiormq.spec.Basic.Properties(
            content_type="application/cloudevents+json", delivery_mode=2, message_id=event.id, message_type=event.type,
            timestamp=event.time, headers=headers,
        )

    @staticmethod
    def to_message(event: CloudEvent, *, headers: dict[str, Any] | None = None) -> aio_pika.Message:
        hdrs: dict[str, Any] = {"ce-type": event.type, "ce-source": event.source}
        if event.traceparent:
            hdrs["traceparent"] = event.traceparent
        if event.tracestate:
            hdrs["tracestate"] = event.tracestate
        if headers:
            hdrs.update(headers)
        return aio_pika.Message(
            body=event.to_bytes(),
            content_type="application/cloudevents+json",
            delivery_mode=DeliveryMode.PERSISTENT,
            message_id=event.id,
            type=event.type,
            timestamp=event.time,
            headers=hdrs,
        )

    async def publish(self, events: Sequence[CloudEvent], *, exchange: str | None = None) -> None:
        """Publish and wait until the broker confirmed every message; raise :class:`PublishError`
        otherwise. Messages are pipelined (all in flight at once), so a page of a thousand events
        costs about one round trip, not a thousand."""
        if not events:
            return
        await self.connect()
        from soc_shared.events import BY_TYPE

        # Straight to aiormq with ``wait=False``: aio-pika's Exchange.publish waits for the socket to
        # drain after every single message while holding the channel lock, which costs a write and a
        # round of the event loop per event. Confirms are still awaited for every message.
        assert self._publish_channel is not None
        channel = await self._publish_channel.get_underlay_channel()

        async def one(event: CloudEvent) -> str:
            spec = BY_TYPE.get(event.type)
            target = exchange or (spec.exchange if spec else EVENTS_EXCHANGE)
            routing_key = spec.routing_key if spec else event.type
            await channel.basic_publish(event.to_bytes(), exchange=target, routing_key=routing_key,
                                        properties=self.properties(event), wait=False, timeout=30)
            return routing_key

        results = await asyncio.gather(*(one(e) for e in events), return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        for r in results:
            if isinstance(r, str):
                PUBLISHED.labels(r).inc()
        if failures:
            raise PublishError(f"{len(failures)} of {len(events)} events not confirmed: {failures[0]!r}")

    async def publish_raw(self, body: bytes, routing_key: str, *, exchange: str = EVENTS_EXCHANGE,
                          headers: dict[str, Any] | None = None) -> None:
        await self.connect()
        await self._exchanges[exchange].publish(
            aio_pika.Message(body=body, delivery_mode=DeliveryMode.PERSISTENT, headers=headers or {}),
            routing_key=routing_key,
            timeout=30,
        )

    async def close(self) -> None:
        if self.connection is not None and not self.connection.is_closed:
            await self.connection.close()
        self.connection = None


@dataclass
class Delivery:
    envelope: CloudEvent
    payload: Payload
    message: AbstractIncomingMessage = field(repr=False)

    @property
    def routing_key(self) -> str:
        return self.message.routing_key or self.envelope.routing_key


BatchHandler = Callable[[list[Delivery]], Awaitable[None]]


def queue_arguments(queue: str, delivery_limit: int) -> dict[str, Any]:
    return {
        "x-queue-type": "quorum",
        "x-delivery-limit": delivery_limit,
        "x-dead-letter-exchange": DLX_EXCHANGE,
        "x-dead-letter-routing-key": queue,
    }


class BatchConsumer:
    """Consumes one durable quorum queue in batches and acks only after the handler committed.

    - A message that is not a valid event is dead-lettered at once with the reason.
    - A failing batch is retried message by message, so one poison event cannot hold back the
      others; a message that keeps failing is requeued until the queue's delivery limit parks it.
    """

    def __init__(
        self,
        bus: Bus,
        queue: str,
        bindings: Sequence[str | tuple[str, str]],
        handler: BatchHandler,
        *,
        batch_size: int = 500,
        max_wait: float = 0.05,
        delivery_limit: int = 5,
        prefetch_batches: int = 2,
    ) -> None:
        self.bus = bus
        self.queue_name = queue
        self.bindings = [(EVENTS_EXCHANGE, b) if isinstance(b, str) else b for b in bindings]
        self.handler = handler
        self.batch_size = batch_size
        self.max_wait = max_wait
        self.delivery_limit = delivery_limit
        # More than one batch in flight keeps the broker delivering while a batch commits.
        self.prefetch_batches = prefetch_batches
        self._buffer: list[Delivery] = []
        self._flush_lock = asyncio.Lock()
        self._timer: asyncio.TimerHandle | None = None
        self._channel: AbstractChannel | None = None
        self._queue: AbstractQueue | None = None
        self._tag: str | None = None
        self._pending: set[asyncio.Task[None]] = set()

    async def declare(self, channel: AbstractChannel) -> AbstractQueue:
        queue = await channel.declare_queue(self.queue_name, durable=True,
                                            arguments=queue_arguments(self.queue_name, self.delivery_limit))
        for exchange, key in self.bindings:
            await queue.bind(exchange, routing_key=key)
        dead = await channel.declare_queue(f"{self.queue_name}.dead", durable=True, arguments={"x-queue-type": "classic"})
        await dead.bind(DLX_EXCHANGE, routing_key=self.queue_name)
        return queue

    async def start(self) -> None:
        self._channel = await self.bus.channel(prefetch=self.batch_size * self.prefetch_batches)
        await declare_exchanges(self._channel)
        self._queue = await self.declare(self._channel)
        self._tag = await self._queue.consume(self._on_message)
        logger.info("consuming {} ({} bindings)", self.queue_name, len(self.bindings))

    async def stop(self) -> None:
        if self._queue is not None and self._tag is not None:
            try:
                await self._queue.cancel(self._tag)
            except Exception as exc:  # the channel may already be gone; stopping must not fail
                logger.debug("cancel {}: {}", self.queue_name, exc)
        await self.flush()
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
        if self._channel is not None and not self._channel.is_closed:
            await self._channel.close()
        self._channel = None

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        try:
            envelope, payload = parse_event(message.body, message.type)
        except InvalidEvent as exc:
            await self.dead_letter(message, str(exc))
            return
        self._buffer.append(Delivery(envelope, payload, message))
        if len(self._buffer) >= self.batch_size:
            await self.flush()
        elif self._timer is None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self.max_wait, self._schedule_flush)

    def _schedule_flush(self) -> None:
        self._timer = None
        task = asyncio.get_running_loop().create_task(self.flush())
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def flush(self) -> None:
        async with self._flush_lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            batch, self._buffer = self._buffer, []
            if batch:
                await self._handle(batch)

    async def _handle(self, batch: list[Delivery]) -> None:
        links = [trace.Link(trace.get_current_span(extract(d.message.headers or {})).get_span_context())
                 for d in batch[:32] if d.message.headers and "traceparent" in d.message.headers]
        started = time.perf_counter()
        with tracer("soc.bus").start_as_current_span(f"consume {self.queue_name}", links=links,
                                                     kind=trace.SpanKind.CONSUMER) as span:
            span.set_attribute("messaging.batch.message_count", len(batch))
            try:
                await self.handler(batch)
            except Exception as exc:
                logger.warning("batch of {} on {} failed ({}); retrying one by one", len(batch), self.queue_name, exc)
                await self._handle_singly(batch)
                return
            await batch[-1].message.ack(multiple=True)
        BATCH_SECONDS.labels(self.queue_name).observe(time.perf_counter() - started)
        CONSUMED.labels(self.queue_name).inc(len(batch))
        newest = max(d.envelope.time for d in batch)
        CONSUMER_LAG.labels(self.queue_name).set(max(0.0, (datetime.now(UTC) - newest).total_seconds()))

    async def _handle_singly(self, batch: list[Delivery]) -> None:
        for delivery in batch:
            try:
                await self.handler([delivery])
            except Exception as exc:
                count = int((delivery.message.headers or {}).get("x-delivery-count", 0) or 0)
                if count + 1 >= self.delivery_limit:
                    await self.dead_letter(delivery.message, f"handler failed {count + 1} times: {exc}")
                else:
                    logger.warning("event {} on {} failed ({}); requeued", delivery.envelope.id, self.queue_name, exc)
                    await delivery.message.nack(requeue=True)
                continue
            await delivery.message.ack()
            CONSUMED.labels(self.queue_name).inc()

    async def dead_letter(self, message: AbstractIncomingMessage, reason: str) -> None:
        """Park ``message`` in ``<queue>.dead`` with the reason, then ack the original."""
        headers = dict(message.headers or {})
        headers.update({
            "x-soc-dead-reason": reason[:1000],
            "x-soc-queue": self.queue_name,
            "x-soc-routing-key": message.routing_key or "",
            "x-soc-exchange": message.exchange or EVENTS_EXCHANGE,
            "x-soc-dead-at": datetime.now(UTC).isoformat(),
        })
        await self.bus.publish_raw(message.body, self.queue_name, exchange=DLX_EXCHANGE, headers=headers)
        await message.ack()
        DEAD_LETTERED.labels(self.queue_name).inc()
        logger.warning("dead-lettered a message on {}: {}", self.queue_name, reason)


def _dead_reason(headers: dict[str, Any]) -> str:
    if "x-soc-dead-reason" in headers:
        return str(headers["x-soc-dead-reason"])
    deaths = headers.get("x-death") or []
    if deaths:
        return f"broker dead-lettered: {deaths[0].get('reason', 'unknown')}"
    return "unknown"


async def list_dead_letters(bus: Bus, queue: str, limit: int = 100) -> list[dict[str, Any]]:
    """Peek at up to ``limit`` parked messages of ``queue`` without removing them."""
    channel = await bus.channel(prefetch=limit)
    out: list[dict[str, Any]] = []
    held: list[AbstractIncomingMessage] = []
    try:
        dead = await channel.declare_queue(f"{queue}.dead", durable=True, arguments={"x-queue-type": "classic"})
        while len(out) < limit:
            message = await dead.get(no_ack=False, fail=False)
            if message is None:
                break
            held.append(message)
            headers = dict(message.headers or {})
            try:
                parsed = json.loads(message.body)
                event_id, event_type = parsed.get("id"), parsed.get("type")
            except (ValueError, AttributeError):
                event_id, event_type = None, None
            out.append({
                "message_id": message.message_id or event_id,
                "event_id": event_id,
                "event_type": event_type,
                "routing_key": headers.get("x-soc-routing-key") or message.routing_key,
                "reason": _dead_reason(headers),
                "dead_at": headers.get("x-soc-dead-at"),
                "body_preview": message.body[:500].decode("utf-8", "replace"),
            })
    finally:
        for message in held:
            await message.nack(requeue=True)
        await channel.close()
    return out


async def replay_dead_letters(bus: Bus, queue: str, limit: int = 1000) -> int:
    """Send parked messages back to the consumer's queue (after the cause was fixed)."""
    channel = await bus.channel(prefetch=100, confirms=True)
    replayed = 0
    try:
        dead = await channel.declare_queue(f"{queue}.dead", durable=True, arguments={"x-queue-type": "classic"})
        while replayed < limit:
            message = await dead.get(no_ack=False, fail=False)
            if message is None:
                break
            headers = {k: v for k, v in (message.headers or {}).items() if not k.startswith(("x-soc-", "x-death", "x-first-death", "x-last-death"))}
            headers["x-soc-replayed"] = True
            # Straight to the consumer's own queue (default exchange), not to every subscriber again.
            await channel.default_exchange.publish(
                aio_pika.Message(body=message.body, headers=headers, delivery_mode=DeliveryMode.PERSISTENT,
                                 content_type=message.content_type, message_id=message.message_id, type=message.type),
                routing_key=queue,
            )
            await message.ack()
            replayed += 1
    finally:
        await channel.close()
    return replayed
