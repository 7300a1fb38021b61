"""Vendor actions on command: what an ingestor does for a person who asked through the portal
(escalate an offense to XSOAR, update an incident, run a playbook, note or status on an SDP
request).

The tenant service publishes ``<domain>.action.requested`` on ``soc.commands``; the owning
ingestor consumes it from its own quorum queue and:

1. records the command under its idempotency key (the asker's key, scoped to the asker) *before*
   any vendor call — a redelivered command, or a second command with the same key, finds the row
   and never acts again; a finished one has its outcome published again (an outcome lost on the
   way is not lost for good);
2. runs the action's handler with a vendor client under a lease; vendor faults that may pass
   (timeouts, 429, 5xx, unreachable) keep the row ``pending`` with an exponential backoff (a
   ``Retry-After`` is honoured) and the reconciler takes it up again; other errors, or the last
   attempt, make it ``failed``;
3. publishes ``<domain>.action.completed`` with the outcome (``succeeded`` with the handler's
   result, or ``failed`` with the error's category and message). Until the broker confirmed it,
   the finished row keeps a time in ``lease_until`` and the reconciler publishes it again then, so
   an outcome is never lost. The changed record itself comes back through the normal sync (the
   resource named in ``sync_after`` is made due at once).

A handler whose vendor call is not idempotent (creating an incident) gets ``ctx.maybe_sent``: an
earlier attempt may have reached the vendor, so it looks for what that attempt made before
making it again, and calls ``ctx.mark_sent()`` right before the call.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from loguru import logger
from prometheus_client import Counter
from pydantic import ValidationError
from sqlalchemy.dialects.postgresql import JSONB, insert

from soc_shared.bus import COMMANDS_EXCHANGE, BatchConsumer, Bus, Delivery
from soc_shared.events import ActionCompleted, ActionError, ActionRequested, Payload, make_event
from soc_shared.lease import Lease
from soc_shared.loop import BackgroundLoop
from soc_shared.sync import bind_credentials, describe_error

ACTIONS = Counter("soc_vendor_actions_total", "Vendor actions by outcome", ["ingestor", "action", "outcome"])

FINAL_STATES = ("succeeded", "failed")


def action_table(metadata: sa.MetaData) -> sa.Table:
    """``vendor_action`` in an ingestor's own schema, declared on its one metadata (its migration
    spells the same table out)."""
    return sa.Table(
        "vendor_action",
        metadata,
        sa.Column("requested_by", sa.Text, primary_key=True, comment="the asker (user id)"),
        sa.Column("idempotency_key", sa.Text, primary_key=True, comment="the asker's key"),
        sa.Column("command_id", sa.Text, nullable=False, unique=True),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("integration_id", sa.Text, nullable=False),
        sa.Column("vendor_tenant", sa.Text, nullable=False),
        sa.Column("company_id", sa.Text),
        sa.Column("command", JSONB, nullable=False, comment="the command as received"),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("owner", sa.Text),
        sa.Column("lease_until", sa.DateTime(timezone=True)),
        sa.Column("sent_at", sa.DateTime(timezone=True), comment="a non-idempotent call was sent"),
        sa.Column("result", JSONB),
        sa.Column("error_category", sa.Text),
        sa.Column("error_message", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint("state IN ('pending', 'succeeded', 'failed')", name="ck_vendor_action_state"),
        sa.Index("ix_vendor_action_due", "lease_until", postgresql_where=sa.text("state = 'pending'")),
    )


class ActionFailed(Exception):
    """A handler's refusal that no retry can change (the record is gone, the input is wrong)."""

    def __init__(self, category: str, message: str) -> None:
        super().__init__(message)
        self.category = category
        self.message = message


@dataclass
class ActionContext:
    """What a handler gets: the command, its typed parameters, a vendor client, and whether an
    earlier attempt may already have reached the vendor."""

    command: ActionRequested
    params: Payload
    client: Any
    integration: dict[str, Any]
    maybe_sent: bool
    _runner: ActionRunner
    _row: dict[str, Any]

    async def mark_sent(self) -> None:
        """Call right before a vendor call that must not be repeated blindly."""
        t = self._runner.table
        async with self._runner.db.session() as session:
            await session.execute(
                sa.update(t).where(t.c.command_id == self.command.command_id).values(sent_at=sa.func.now())
            )
        self.maybe_sent = True


Handler = Callable[[ActionContext], Awaitable[dict[str, Any]]]
ClientMaker = Callable[[dict[str, Any], dict[str, Any]], Any]


class ActionRunner:
    """Consumes one ingestor's action commands and runs them exactly once per idempotency key."""

    def __init__(
        self,
        *,
        ingestor: Any,
        table: sa.Table,
        requested_key: str,
        completed_key: str,
        handlers: Mapping[str, Handler],
        queue: str,
        client_factory: ClientMaker | None = None,
        lease_seconds: float = 120,
        max_attempts: int = 6,
        retry_base_seconds: float = 5.0,
        retry_max_seconds: float = 600.0,
        reconcile_interval: float = 5.0,
        sync_after: Mapping[str, str] | None = None,
    ) -> None:
        self.ingestor = ingestor
        self.db = ingestor.db
        self.bus: Bus = ingestor.bus
        self.table = table
        self.requested_key = requested_key
        self.completed_key = completed_key
        self.handlers = dict(handlers)
        self.queue = queue
        self.client_factory = client_factory or ingestor.client_factory
        self.lease_seconds = lease_seconds
        self.max_attempts = max_attempts
        self.retry_base_seconds = retry_base_seconds
        self.retry_max_seconds = retry_max_seconds
        self.reconcile_interval = reconcile_interval
        self.outcome_retry_seconds = 30.0
        # action -> the resource synced at once after it succeeded (the change comes back that way)
        self.sync_after = dict(sync_after or {})
        self.source = f"/{ingestor.name}/{ingestor.vendor}/actions"
        self.owner = f"{socket.gethostname()}:{os.getpid()}:actions:{uuid.uuid4().hex[:6]}"
        # ``lease_until`` is also when a pending command is due again (after a failed attempt's backoff).
        self.lease = Lease(
            table,
            key=("command_id",),
            owner="owner",
            until="lease_until",
            holder=self.owner,
            seconds=lease_seconds,
        )
        self._consumer: BatchConsumer | None = None
        self._reconciler: BackgroundLoop | None = None

    # ------------------------------------------------------------------------------ lifecycle
    async def start(self, *, consume: bool = True, reconcile: bool = True) -> None:
        if consume:
            self._consumer = BatchConsumer(
                self.bus,
                self.queue,
                [(COMMANDS_EXCHANGE, self.requested_key)],
                self.on_deliveries,
                batch_size=20,
                max_wait=0.02,
            )
            await self._consumer.start()
        if reconcile:
            self._reconciler = BackgroundLoop(
                "action-reconciler", self._reconcile_round, interval=self.reconcile_interval, immediate=True
            )
            self._reconciler.start()

    async def stop(self) -> None:
        if self._reconciler is not None:
            await self._reconciler.stop(grace_seconds=0)  # a vendor call in flight is abandoned
            self._reconciler = None
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    # ------------------------------------------------------------------------------ consuming
    async def on_deliveries(self, deliveries: list[Delivery]) -> None:
        commands = [d.payload for d in deliveries if isinstance(d.payload, ActionRequested)]
        results = await asyncio.gather(*(self.handle(c) for c in commands), return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            raise failures[0]  # the batch is retried message by message; the rows keep it exactly-once

    async def handle(self, command: ActionRequested) -> str:
        """Record and run one command; answers the row's state afterwards."""
        t = self.table
        values = {
            "requested_by": command.requested_by,
            "idempotency_key": command.idempotency_key,
            "command_id": command.command_id,
            "action": command.action,
            "integration_id": command.integration_id,
            "vendor_tenant": command.vendor_tenant,
            "company_id": command.company_id,
            "command": command.model_dump(mode="json"),
            "state": "pending",
            **self.lease.held(),
        }
        async with self.db.session() as session:
            inserted = (
                (await session.execute(insert(t).values(**values).on_conflict_do_nothing().returning(*t.c)))
                .mappings()
                .first()
            )
        if inserted is None:
            return await self._duplicate(command)
        return await self._run(dict(inserted))

    async def _duplicate(self, command: ActionRequested) -> str:
        """The key (or the command id) is known: never act again; a finished outcome is sent again."""
        t = self.table
        async with self.db.session() as session:
            row = (
                (
                    await session.execute(
                        sa.select(t).where(
                            sa.or_(
                                t.c.command_id == command.command_id,
                                sa.and_(
                                    t.c.requested_by == command.requested_by,
                                    t.c.idempotency_key == command.idempotency_key,
                                ),
                            )
                        )
                    )
                )
                .mappings()
                .first()
            )
        if row is None:  # pragma: no cover - a conflict means a row exists
            return "pending"
        ACTIONS.labels(self.ingestor.name, command.action, "duplicate").inc()
        if row["state"] in FINAL_STATES:
            await self._publish_outcome(dict(row))
        return str(row["state"])

    # ------------------------------------------------------------------------------- running
    async def _run(self, row: dict[str, Any]) -> str:
        command = ActionRequested.model_validate(row["command"])
        handler = self.handlers.get(command.action)
        client = None
        try:
            if handler is None:
                raise ActionFailed("unsupported", f"{command.action} is not an action of this ingestor")
            if (
                command.expires_at is not None
                and row.get("sent_at") is None
                and datetime.now(UTC) >= command.expires_at
            ):
                # The asker was told it expired: an action not yet sent is never started late
                # (one already sent is finished, so that what the vendor did is recorded).
                raise ActionFailed("expired", "the action expired before it could be sent to the vendor")
            try:
                params = command.typed_params()
            except ValidationError as exc:
                raise ActionFailed(
                    "invalid_request", f"invalid parameters: {exc.errors()[0]['msg']}"
                ) from None
            integration = await self.ingestor.load_integration(command.integration_id)
            if integration is None or integration.get("deleted"):
                raise ActionFailed("integration_unavailable", "the integration is not known to this ingestor")
            credentials = bind_credentials(
                integration, await self.ingestor.credentials(command.integration_id)
            )
            client = self.client_factory(integration, credentials)
            ctx = ActionContext(
                command=command,
                params=params,
                client=client,
                integration=integration,
                maybe_sent=row.get("sent_at") is not None,
                _runner=self,
                _row=row,
            )
            result = await asyncio.wait_for(handler(ctx), timeout=self.lease_seconds / 2)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # every failure ends on the row, never lost
            return await self._failed_attempt(row, exc)
        finally:
            if client is not None and hasattr(client, "aclose"):
                await client.aclose()
        state = await self._finish(row, "succeeded", result=result)
        resource = self.sync_after.get(command.action)
        if resource:
            try:
                await self.ingestor.trigger(command.integration_id, resource)
            except Exception as exc:  # noqa: BLE001 - the scheduled sync brings the change anyway
                logger.debug("early sync after action {}: {}", command.command_id, exc)
        return state

    async def _failed_attempt(self, row: dict[str, Any], exc: BaseException) -> str:
        attempts = int(row.get("attempts") or 0) + 1
        if isinstance(exc, TimeoutError):
            category, message, retryable = "timeout", "the vendor did not answer in time", True
        else:
            error = describe_error(exc)
            category, message = error.category, error.message
            retryable = bool(getattr(exc, "retryable", False)) and not isinstance(exc, ActionFailed)
            if category in ("unreachable", "internal") and not isinstance(exc, ActionFailed):
                retryable = True  # the ingestor's own hiccups (credentials fetch, database) pass too
        if not retryable or attempts >= self.max_attempts:
            logger.warning(
                "action {} {} failed after {} attempt(s): [{}] {}",
                row["action"],
                row["command_id"],
                attempts,
                category,
                message,
            )
            return await self._finish(row, "failed", error=(category, message), attempts=attempts)
        delay = min(self.retry_max_seconds, self.retry_base_seconds * 2 ** (attempts - 1))
        retry_after = getattr(exc, "retry_after", None)
        if retry_after:
            delay = max(delay, float(retry_after))
        delay *= random.uniform(0.8, 1.2)
        t = self.table
        async with self.db.session() as session:
            await session.execute(
                sa.update(t)
                .where(t.c.command_id == row["command_id"], t.c.state == "pending")
                .values(
                    attempts=attempts,
                    owner=None,
                    lease_until=sa.func.now() + timedelta(seconds=delay),
                    error_category=category,
                    error_message=message,
                )
            )
        ACTIONS.labels(self.ingestor.name, row["action"], "deferred").inc()
        logger.info(
            "action {} {} attempt {} failed ([{}] {}); retried in {:.1f}s",
            row["action"],
            row["command_id"],
            attempts,
            category,
            message,
            delay,
        )
        return "pending"

    async def _finish(
        self,
        row: dict[str, Any],
        state: str,
        *,
        result: dict[str, Any] | None = None,
        error: tuple[str, str] | None = None,
        attempts: int | None = None,
    ) -> str:
        t = self.table
        async with self.db.session() as session:
            done = (
                (
                    await session.execute(
                        sa.update(t)
                        .where(t.c.command_id == row["command_id"], t.c.state == "pending")
                        .values(
                            state=state,
                            attempts=attempts if attempts is not None else t.c.attempts + 1,
                            owner=None,
                            # Until the broker confirmed the outcome, lease_until says when to
                            # publish it again (cleared once it is out): an outcome is never lost.
                            lease_until=sa.func.now() + timedelta(seconds=self.outcome_retry_seconds),
                            result=result,
                            error_category=error[0] if error else None,
                            error_message=error[1] if error else None,
                            finished_at=sa.func.now(),
                        )
                        .returning(*t.c)
                    )
                )
                .mappings()
                .first()
            )
        if done is None:
            return str(row.get("state"))
        ACTIONS.labels(self.ingestor.name, row["action"], state).inc()
        await self._publish_outcome(dict(done))
        return state

    async def _publish_outcome(self, row: dict[str, Any]) -> bool:
        """Publish the outcome and clear the row's marker; if the broker is away, the reconciler
        publishes it again once the marker's time has come."""
        command = ActionRequested.model_validate(row["command"])
        outcome = ActionCompleted(
            command_id=command.command_id,
            idempotency_key=command.idempotency_key,
            action=command.action,
            company_id=command.company_id,
            requested_by=command.requested_by,
            status=row["state"],
            result=row.get("result") or {},
            error=ActionError(category=row["error_category"], message=row["error_message"] or "")
            if row["state"] == "failed"
            else None,
            attempts=int(row.get("attempts") or 0),
            finished_at=row.get("finished_at") or datetime.now(UTC),
        )
        try:
            await self.bus.publish(
                [
                    make_event(
                        self.completed_key,
                        outcome,
                        source=self.source,
                        subject=command.command_id,
                        vendor_version=f"{row['state']}-{outcome.attempts}",
                        integration_id=command.integration_id,
                        vendor_tenant=command.vendor_tenant or None,
                    )
                ]
            )
        except Exception as exc:  # noqa: BLE001 - the marker stays: the reconciler sends it again
            logger.warning("outcome of action {} not published now: {}", command.command_id, exc)
            return False
        t = self.table
        async with self.db.session() as session:
            await session.execute(
                sa.update(t)
                .where(t.c.command_id == command.command_id, t.c.state != "pending")
                .values(lease_until=None)
            )
        return True

    async def republish_once(self, limit: int = 50) -> int:
        """Publish again the outcomes the broker did not confirm (their marker's time has come)."""
        t = self.table
        async with self.db.session() as session:
            rows = [
                dict(r)
                for r in (
                    await session.execute(
                        sa.select(t)
                        .where(t.c.state != "pending", t.c.lease_until < sa.func.now())
                        .order_by(t.c.lease_until)
                        .limit(limit)
                    )
                )
                .mappings()
                .all()
            ]
        sent = 0
        for row in rows:
            sent += await self._publish_outcome(row)
        return sent

    # ----------------------------------------------------------------------------- reconciler
    async def reconcile_once(self, limit: int = 20) -> int:
        """Take up pending commands whose lease ran out (elapsed backoffs, crashed owners)."""
        t = self.table
        async with self.db.session() as session:
            rows = await self.lease.claim(session, t.c.state == "pending", limit=limit)
        await asyncio.gather(*(self._run(r) for r in rows), return_exceptions=True)
        return len(rows)

    async def _reconcile_round(self) -> None:
        while await self.reconcile_once():
            pass
        await self.republish_once()

    async def rows(self, **where: Any) -> list[dict[str, Any]]:
        """Action rows (tests and support)."""
        t = self.table
        stmt = sa.select(t).order_by(t.c.created_at)
        for key, value in where.items():
            stmt = stmt.where(t.c[key] == value)
        async with self.db.session() as session:
            return [dict(r) for r in (await session.execute(stmt)).mappings().all()]


__all__ = [
    "ActionContext",
    "ActionFailed",
    "ActionRunner",
    "Handler",
    "action_table",
]
