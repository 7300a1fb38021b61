"""The sync scheduler every ingestor uses (the OpenCTI-connector split: an ingestor only fetches
and normalises; this module owns state, leases, scheduling, publishing and reporting).

State lives in the ingestor's own schema, one row per (integration, resource): cursor, next run,
lease, last error, consecutive failures. Any number of replicas claim due rows with
``FOR UPDATE SKIP LOCKED`` leases. A page's cursor is saved only after the broker confirmed every
event of that page, and only while this replica still holds the lease.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from sqlalchemy.engine import CursorResult

import sqlalchemy as sa
from fastapi import APIRouter, Depends
from loguru import logger
from prometheus_client import Counter, Gauge, Histogram
from pydantic import BaseModel, Field
from sqlalchemy.dialects.postgresql import JSONB, insert

from soc_shared.bus import BatchConsumer, Bus, Delivery, PublishError
from soc_shared.db import Database
from soc_shared.events import CloudEvent, IntegrationChanged, SyncReported, make_event
from soc_shared.lease import Lease
from soc_shared.loop import backoff_delay
from soc_shared.settings import internal_tls

SYNC_RUNS = Counter("soc_sync_runs_total", "Sync runs", ["ingestor", "resource", "outcome"])
SYNC_SECONDS = Histogram(
    "soc_sync_seconds",
    "Duration of one sync run",
    ["ingestor", "resource"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
SYNC_RECORDS = Counter("soc_sync_records_total", "Records published by sync runs", ["ingestor", "resource"])
CURSOR_AGE = Gauge(
    "soc_sync_cursor_age_seconds",
    "Seconds since the last successful sync",
    ["ingestor", "integration", "resource"],
)

metadata = sa.MetaData()

integration_table = sa.Table(
    "integration",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("subtype", sa.Text, nullable=False),
    sa.Column("instance_name", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("deleted", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("base_url", sa.Text, nullable=False),
    sa.Column("verify_tls", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("polling_interval_seconds", sa.Integer, nullable=False, server_default="300"),
    sa.Column("credential_kind", sa.Text, nullable=False),
    sa.Column("credentials_version", sa.Integer, nullable=False, server_default="1"),
    sa.Column("company_id", sa.Text),
    sa.Column("settings", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
)

sync_state_table = sa.Table(
    "sync_state",
    metadata,
    sa.Column("integration_id", sa.Text, primary_key=True),
    sa.Column("resource", sa.Text, primary_key=True),
    sa.Column("cursor", JSONB),
    sa.Column("interval_seconds", sa.Integer, nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("next_run_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("lease_owner", sa.Text),
    sa.Column("lease_until", sa.DateTime(timezone=True)),
    sa.Column("last_started_at", sa.DateTime(timezone=True)),
    sa.Column("last_success_at", sa.DateTime(timezone=True)),
    sa.Column("last_error", sa.Text),
    sa.Column("last_error_category", sa.Text),
    sa.Column("consecutive_failures", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_records", sa.Integer, nullable=False, server_default="0"),
    sa.Column("total_records", sa.BigInteger, nullable=False, server_default="0"),
    sa.Index("ix_sync_state_due", "next_run_at", postgresql_where=sa.text("enabled")),
)


def ingestor_metadata(*own: sa.MetaData) -> sa.MetaData:
    """One ingestor's schema as one metadata: the sync tables above and the ingestor's own tables
    (its ``migrations/env.py`` and the schema drift test compare this with the database)."""
    combined = sa.MetaData()
    for table in (*metadata.tables.values(), *(t for m in own for t in m.tables.values())):
        table.to_metadata(combined)
    return combined


@dataclass
class Page:
    """One confirmed unit of progress: these events, then this cursor."""

    events: list[CloudEvent]
    cursor: dict[str, Any] | None
    records: int | None = None


@dataclass
class SyncContext:
    integration: dict[str, Any]
    credentials: dict[str, Any]
    client: Any
    source: str

    @property
    def integration_id(self) -> str:
        return str(self.integration["id"])


FetchFn = Callable[[SyncContext, dict[str, Any] | None], AsyncIterator[Page]]


@dataclass
class Resource:
    """A declarative resource of an ingestor: name, interval, fetch (yields pages)."""

    name: str
    interval_seconds: int
    fetch: FetchFn
    description: str = ""
    enabled: Callable[[dict[str, Any]], bool] | None = None
    """Whether an integration with these ``settings`` runs this resource at all (None: always). A
    resource switched off in the settings is never claimed, instead of a run per interval that
    returns at once."""

    def enabled_for(self, settings: dict[str, Any]) -> bool:
        if self.enabled is None:
            return True
        try:
            return bool(self.enabled(settings))
        except (TypeError, ValueError, AttributeError):  # malformed settings: let the run report it
            return True


ClientFactory = Callable[[dict[str, Any], dict[str, Any]], Any]
CredentialsProvider = Callable[[str], Awaitable[dict[str, Any]]]


@dataclass
class _Kept:
    """One integration's credentials and vendor client, kept between runs (``keep_clients``) for
    as long as the integration's row is unchanged; closed once retired and no run uses it."""

    version: tuple[Any, ...]
    credentials: dict[str, Any]
    client: Any
    users: int = 0
    retired: bool = False


# A run failing with one of these drops the kept credentials and client of its integration: the next
# run fetches the credentials again (rotated at the vendor, or a CA changed) and builds a new client.
CREDENTIAL_ERRORS = frozenset({"bad_credentials", "permission", "credentials_origin", "tls"})


async def _close_client(client: Any) -> None:
    if client is not None and hasattr(client, "aclose"):
        try:
            await client.aclose()
        except Exception as exc:  # closing must never fail a run
            logger.debug("closing a vendor client: {}", exc)


INTEGRATION_BATCH = 100
"""Integration changes applied per batch (one transaction, two statements)."""


class ErrorInfo(BaseModel):
    category: str
    message: str


def describe_error(exc: BaseException) -> ErrorInfo:
    category = getattr(exc, "category", None)
    if category is not None:
        return ErrorInfo(category=str(category), message=str(getattr(exc, "message", exc))[:500])
    if isinstance(exc, PublishError):
        return ErrorInfo(category="bus", message=str(exc)[:500])
    return ErrorInfo(category="internal", message=f"{type(exc).__name__}: {exc}"[:500])


class Ingestor:
    """Runs the resources of one ingestor for every integration of its subtype."""

    def __init__(
        self,
        *,
        name: str,
        vendor: str,
        subtype: str,
        db: Database,
        bus: Bus,
        resources: Sequence[Resource],
        client_factory: ClientFactory,
        credentials: CredentialsProvider,
        lease_seconds: int = 60,
        concurrency: int = 4,
        poll_seconds: float = 1.0,
        failure_backoff_max: int = 900,
        keep_clients: bool = False,
    ) -> None:
        self.name = name
        self.vendor = vendor
        self.subtype = subtype
        self.db = db
        self.bus = bus
        self.resources = {r.name: r for r in resources}
        self.client_factory = client_factory
        self.credentials = credentials
        self.lease_seconds = lease_seconds
        self.concurrency = concurrency
        self.poll_seconds = poll_seconds
        self.failure_backoff_max = failure_backoff_max
        # Credentials and vendor client per integration, reused by its runs until the integration
        # changes (its row's changed_at / credentials_version) or a run fails on credentials — for
        # vendors whose credentials are static (an API key); not for ones that rotate tokens per use.
        self.keep_clients = keep_clients
        self._kept: dict[str, _Kept] = {}
        self._kept_locks: dict[str, asyncio.Lock] = {}
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.lease = Lease(
            sync_state_table,
            key=("integration_id", "resource"),
            owner="lease_owner",
            until="lease_until",
            next_run="next_run_at",
            holder=self.owner,
            seconds=lease_seconds,
        )
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        self._consumer: BatchConsumer | None = None
        self._loop_task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ integrations from the bus
    async def on_integration_changed(self, deliveries: list[Delivery]) -> None:
        latest: dict[str, IntegrationChanged] = {}
        for d in deliveries:
            change = d.payload
            assert isinstance(change, IntegrationChanged)
            if change.subtype != self.subtype:
                continue
            prev = latest.get(change.integration_id)
            if prev is None or change.changed_at >= prev.changed_at:
                latest[change.integration_id] = change
        if not latest:
            return
        async with self.db.session() as session:
            await self.apply_integrations(session, list(latest.values()))
        for integration_id in latest:
            await self._retire(integration_id)
        self._wake.set()

    async def apply_integration(self, session: Any, change: IntegrationChanged) -> None:
        await self.apply_integrations(session, [change])

    async def apply_integrations(self, session: Any, changes: Sequence[IntegrationChanged]) -> None:
        """Upsert the integrations and their sync states: two statements for the whole batch (one
        per resource and integration made onboarding crawl while runs updated the same rows), rows
        in key order so that two replicas applying overlapping batches never deadlock."""
        if not changes:
            return
        changes = sorted(changes, key=lambda c: c.integration_id)
        rows = [
            {
                "id": c.integration_id,
                "subtype": c.subtype,
                "instance_name": c.instance_name,
                "status": c.status,
                "deleted": c.deleted,
                "base_url": c.base_url,
                "verify_tls": c.verify_tls,
                "polling_interval_seconds": c.polling_interval_seconds,
                "credential_kind": c.credential_kind,
                "credentials_version": c.credentials_version,
                "company_id": c.company_id,
                "settings": c.settings,
                "changed_at": c.changed_at,
            }
            for c in changes
        ]
        stmt = insert(integration_table).values(rows)
        stmt = stmt.on_conflict_do_update(
            index_elements=["id"],
            set_={k: stmt.excluded[k] for k in rows[0] if k != "id"},
            # An older change delivered late never overwrites a newer one.
            where=integration_table.c.changed_at <= stmt.excluded.changed_at,
        )
        await session.execute(stmt)
        states = []
        for change in changes:
            live = not change.deleted and change.status != "disabled"
            for name in sorted(self.resources):
                resource = self.resources[name]
                states.append(
                    {
                        "integration_id": change.integration_id,
                        "resource": name,
                        "interval_seconds": self.interval_for(
                            resource, change.polling_interval_seconds, change.settings
                        ),
                        "enabled": live and resource.enabled_for(change.settings),
                    }
                )
        if not states:  # an ingestor without resources (tests) keeps the integrations only
            return
        s = sync_state_table
        ins = insert(s).values(states)
        await session.execute(
            ins.on_conflict_do_update(
                index_elements=["integration_id", "resource"],
                set_={
                    "interval_seconds": ins.excluded.interval_seconds,
                    "enabled": ins.excluded.enabled,
                    # Re-enabled, or failing (new credentials may fix it): run now instead of waiting
                    # out a backoff. Otherwise the schedule stands (a status or name change must not
                    # make every resource of the integration due at once), a shorter interval counts.
                    "next_run_at": sa.case(
                        (
                            sa.or_(~s.c.enabled, s.c.consecutive_failures > 0),
                            sa.func.least(s.c.next_run_at, sa.func.now()),
                        ),
                        else_=sa.func.least(
                            s.c.next_run_at,
                            sa.func.now()
                            + sa.func.make_interval(0, 0, 0, 0, 0, 0, ins.excluded.interval_seconds),
                        ),
                    ),
                },
            )
        )

    @staticmethod
    def interval_for(resource: Resource, polling_interval: int, settings: dict[str, Any]) -> int:
        overrides = settings.get("resource_intervals") or {}
        if resource.name in overrides:
            return max(1, int(overrides[resource.name]))
        # Fast resources (offenses, incidents: five minutes or less) follow the integration's polling
        # interval; slow ones (types, groups, daily aggregates) keep their own cadence.
        if resource.interval_seconds <= 300 and polling_interval:
            return max(1, polling_interval)
        return resource.interval_seconds

    # ------------------------------------------------------------------------------- scheduling
    async def claim(self, limit: int) -> list[dict[str, Any]]:
        s = sync_state_table
        i = integration_table
        async with self.db.session() as session:
            return await self.lease.claim(
                session,
                s.c.enabled,
                ~i.c.deleted,
                i.c.status != "disabled",
                s.c.resource.in_(list(self.resources)),
                limit=limit,
                join=(i, i.c.id == s.c.integration_id),
                values={"last_started_at": sa.func.now()},
            )

    @staticmethod
    def _key(row: dict[str, Any]) -> list[sa.ColumnElement[bool]]:
        s = sync_state_table
        return [s.c.integration_id == row["integration_id"], s.c.resource == row["resource"]]

    async def _save_progress(self, row: dict[str, Any], cursor: dict[str, Any] | None, records: int) -> bool:
        s = sync_state_table
        async with self.db.session() as session:
            return await self.lease.renew(
                session,
                *self._key(row),
                values={"cursor": cursor, "total_records": s.c.total_records + records},
            )

    async def _finish(self, row: dict[str, Any], *, ok: bool, records: int, error: ErrorInfo | None) -> int:
        failures = 0 if ok else int(row.get("consecutive_failures") or 0) + 1
        if ok:
            delay = float(row["interval_seconds"])
        else:
            # Exponential backoff with jitter from 2 s, never slower than the cap, never under 1 s.
            delay = max(1.0, backoff_delay(failures + 1, base=1.0, cap=self.failure_backoff_max))
        values: dict[str, Any] = {"consecutive_failures": failures, "last_records": records}
        if ok:
            values.update(last_success_at=sa.func.now(), last_error=None, last_error_category=None)
        elif error is not None:
            values.update(last_error=error.message, last_error_category=error.category)
        async with self.db.session() as session:
            await self.lease.release(session, *self._key(row), retry_in=delay, values=values)
        return failures

    async def load_integration(self, integration_id: str) -> dict[str, Any] | None:
        async with self.db.session() as session:
            row = (
                (
                    await session.execute(
                        sa.select(integration_table).where(integration_table.c.id == integration_id)
                    )
                )
                .mappings()
                .first()
            )
        return dict(row) if row else None

    async def _renew_lease(self, row: dict[str, Any]) -> bool:
        async with self.db.session() as session:
            return await self.lease.renew(session, *self._key(row))

    async def _heartbeat(self, row: dict[str, Any]) -> None:
        """Keeps this run's lease while the run lives, so the lease can be short: a replica that
        dies (kill -9, node lost) leaves its work to the others within ``lease_seconds``, however
        long a page or an Ariel search of a live run takes."""
        while True:
            await asyncio.sleep(max(self.lease_seconds / 3, 0.5))
            try:
                if not await self._renew_lease(row):
                    return  # another replica holds it now; the next save notices and stops the run
            except Exception as exc:  # a database hiccup: try again at the next beat
                logger.warning(
                    "lease renewal for {} {} failed: {}", row["integration_id"], row["resource"], exc
                )

    # ------------------------------------------------------------------ credentials and clients
    async def _open(self, integration: dict[str, Any]) -> tuple[dict[str, Any], Any, _Kept | None]:
        """Credentials and a vendor client for one run: fetched and built for this run, or (with
        ``keep_clients``) the integration's kept ones while its row is unchanged."""
        integration_id = str(integration["id"])
        if not self.keep_clients:
            credentials = await self.credentials(integration_id)
            return credentials, self.client_factory(integration, credentials), None
        # The row this replica reads is the truth: a change another replica consumed shows up here.
        version = (integration.get("changed_at"), integration.get("credentials_version"))
        lock = self._kept_locks.setdefault(integration_id, asyncio.Lock())
        async with lock:  # one fetch per integration when several of its resources start at once
            kept = self._kept.get(integration_id)
            if kept is None or kept.version != version:
                await self._retire(integration_id)
                credentials = await self.credentials(integration_id)
                kept = _Kept(version, credentials, self.client_factory(integration, credentials))
                self._kept[integration_id] = kept
            kept.users += 1
            return kept.credentials, kept.client, kept

    async def _give_back(self, client: Any, kept: _Kept | None) -> None:
        if kept is None:
            await _close_client(client)
            return
        kept.users -= 1
        if kept.retired and kept.users == 0:
            await _close_client(kept.client)

    async def _retire(self, integration_id: str) -> None:
        """Forget an integration's kept credentials and client (closed once no run uses it)."""
        kept = self._kept.pop(integration_id, None)
        if kept is None:
            return
        kept.retired = True
        if kept.users == 0:
            await _close_client(kept.client)

    async def run_one(self, row: dict[str, Any]) -> None:
        resource = self.resources[row["resource"]]
        started_at = datetime.now(UTC)
        started = time.perf_counter()
        records = 0
        error: ErrorInfo | None = None
        integration = await self.load_integration(row["integration_id"])
        client = None
        kept: _Kept | None = None
        opened = False
        heartbeat = asyncio.create_task(self._heartbeat(row))
        try:
            if integration is None:
                raise RuntimeError("integration unknown to this ingestor")
            credentials, client, kept = await self._open(integration)
            opened = True
            ctx = SyncContext(
                integration=integration,
                credentials=credentials,
                client=client,
                source=f"/{self.name}/{self.vendor}/{row['integration_id']}",
            )
            cursor = row.get("cursor")
            async for page in resource.fetch(ctx, cursor):
                await self.bus.publish(page.events)
                n = page.records if page.records is not None else len(page.events)
                if not await self._save_progress(row, page.cursor, n):
                    raise RuntimeError("lease lost to another replica; stopping this run")
                records += n
                SYNC_RECORDS.labels(self.name, resource.name).inc(n)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            error = describe_error(exc)
            logger.warning(
                "sync {} {} failed: [{}] {}",
                row["integration_id"],
                resource.name,
                error.category,
                error.message,
            )
        finally:
            heartbeat.cancel()
            if opened:
                await self._give_back(client, kept)
        if error is not None and error.category in CREDENTIAL_ERRORS:
            await self._retire(row["integration_id"])
        failures = await self._finish(row, ok=error is None, records=records, error=error)
        SYNC_RUNS.labels(self.name, resource.name, "ok" if error is None else "error").inc()
        SYNC_SECONDS.labels(self.name, resource.name).observe(time.perf_counter() - started)
        if error is None:
            CURSOR_AGE.labels(self.name, row["integration_id"], resource.name).set(0)
        await self._report(row, started_at, records, error, failures)

    async def _report(
        self, row: dict[str, Any], started_at: datetime, records: int, error: ErrorInfo | None, failures: int
    ) -> None:
        report = SyncReported(
            integration_id=row["integration_id"],
            resource=row["resource"],
            outcome="ok" if error is None else "error",
            started_at=started_at,
            finished_at=datetime.now(UTC),
            records=records,
            error_category=error.category if error else None,
            error_message=error.message if error else None,
            consecutive_failures=failures,
        )
        try:
            await self.bus.publish(
                [
                    make_event(
                        "ingest.sync.reported",
                        report,
                        source=f"/{self.name}",
                        subject=f"{row['integration_id']}/{row['resource']}",
                        integration_id=row["integration_id"],
                    )
                ]
            )
        except Exception as exc:  # a lost report is not lost data: the next run reports again
            logger.warning("sync report not published: {}", exc)

    async def run_due_once(self) -> int:
        """Claim and run what is due now; returns how many runs were done (tests and benches)."""
        rows = await self.claim(self.concurrency)
        if rows:
            await asyncio.gather(*(self.run_one(r) for r in rows))
        return len(rows)

    async def trigger(self, integration_id: str, resource: str | None = None) -> int:
        s = sync_state_table
        stmt = sa.update(s).where(s.c.integration_id == integration_id).values(next_run_at=sa.func.now())
        if resource:
            stmt = stmt.where(s.c.resource == resource)
        async with self.db.session() as session:
            result = await session.execute(stmt)
        self._wake.set()
        return int(cast("CursorResult[Any]", result).rowcount or 0)

    async def _loop(self) -> None:
        sem = asyncio.Semaphore(self.concurrency)
        running: set[asyncio.Task[None]] = set()

        async def guarded(row: dict[str, Any]) -> None:
            async with sem:
                await self.run_one(row)

        def finished(task: asyncio.Task[None]) -> None:
            running.discard(task)
            # A slot is free: claim again now. Waiting for the next poll instead left each slot idle
            # up to poll_seconds after every run — a replica did at most ~concurrency runs a second.
            self._wake.set()

        while not self._stop.is_set():
            try:
                free = self.concurrency - len(running)
                rows = await self.claim(free) if free > 0 else []
                for row in rows:
                    task = asyncio.create_task(guarded(row))
                    running.add(task)
                    task.add_done_callback(finished)
            except Exception as exc:  # the database may be briefly away: keep the loop alive
                logger.warning("{} scheduler: {}", self.name, exc)
                rows = []
            if not rows:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=self.poll_seconds)
                except TimeoutError:
                    pass
        if running:
            await asyncio.gather(*running, return_exceptions=True)

    async def start(self, *, consume_integrations: bool = True, run_scheduler: bool = True) -> None:
        if consume_integrations:
            self._consumer = BatchConsumer(
                self.bus,
                f"{self.name}.integrations",
                ["tenant.integration.changed"],
                self.on_integration_changed,
                # A change is one small event: take many per batch. With the default prefetch (5
                # messages) a replica busy with its runs applied ~1 change a second — every batch
                # waits its turn on the event loop, so its size is what sets the pace.
                batch_size=INTEGRATION_BATCH,
                prefetch_messages=2 * INTEGRATION_BATCH,
            )
            await self._consumer.start()
        if run_scheduler:
            self._stop.clear()
            self._loop_task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._loop_task is not None:
            await self._loop_task
        if self._consumer is not None:
            await self._consumer.stop()
        for integration_id in list(self._kept):
            await self._retire(integration_id)

    async def states(self, integration_id: str | None = None) -> list[dict[str, Any]]:
        s = sync_state_table
        stmt = sa.select(s).order_by(s.c.integration_id, s.c.resource)
        if integration_id:
            stmt = stmt.where(s.c.integration_id == integration_id)
        async with self.db.session() as session:
            return [dict(r) for r in (await session.execute(stmt)).mappings().all()]


# ------------------------------------------------------------------------------ internal HTTP API
class ConnectionTestRequest(BaseModel):
    """What the tenant service sends an ingestor to test credentials (saved or not)."""

    subtype: str
    base_url: str = Field(min_length=1, max_length=2048)
    verify_tls: bool = True
    ca_pem: str | None = None
    credential_kind: str
    credentials: dict[str, Any]
    settings: dict[str, Any] = Field(default_factory=dict)


class ConnectionTestResult(BaseModel):
    ok: bool
    category: str | None = None
    message: str
    details: dict[str, Any] = Field(default_factory=dict)


class SyncNowRequest(BaseModel):
    integration_id: str
    resource: str | None = None


ConnectionTester = Callable[[ConnectionTestRequest], Awaitable[ConnectionTestResult]]


def internal_router(
    ingestor_getter: Callable[[], Ingestor], tester: ConnectionTester, service_dep: Any
) -> APIRouter:
    """``/internal/*`` routes of an ingestor, callable by other services with a service token."""
    router = APIRouter(prefix="/internal", tags=["internal"], dependencies=[Depends(service_dep)])

    @router.post("/test-connection", response_model=ConnectionTestResult)
    async def test_connection(body: ConnectionTestRequest) -> ConnectionTestResult:
        return await tester(body)

    @router.post("/sync-now")
    async def sync_now(body: SyncNowRequest) -> dict[str, Any]:
        n = await ingestor_getter().trigger(body.integration_id, body.resource)
        return {"scheduled": n}

    @router.get("/sync-state")
    async def sync_state(integration_id: str | None = None) -> dict[str, Any]:
        rows = await ingestor_getter().states(integration_id)
        for r in rows:
            r.pop("lease_owner", None)
        return {"items": rows, "total": len(rows)}

    return router


@dataclass
class TenantCredentials:
    """Fetches an integration's credentials just in time from the tenant service's internal API."""

    tenant_url: str
    token: Callable[[], Awaitable[str]]
    http: Any = None
    _cache: dict[str, Any] = field(default_factory=dict)

    async def __call__(self, integration_id: str) -> dict[str, Any]:
        import httpx

        client = self.http or httpx.AsyncClient(timeout=10, trust_env=False, verify=internal_tls())
        try:
            response = await client.get(
                f"{self.tenant_url.rstrip('/')}/internal/integrations/{integration_id}/credentials",
                headers={"Authorization": f"Bearer {await self.token()}"},
            )
        finally:
            if self.http is None:
                await client.aclose()
        if response.status_code != 200:
            raise RuntimeError(f"credentials for {integration_id} unavailable (HTTP {response.status_code})")
        answer = dict(response.json())
        if not answer.get("origin"):
            raise CredentialsOriginError(
                f"credentials for {integration_id} came without the origin they belong to"
            )
        return answer


class CredentialsOriginError(RuntimeError):
    """Credentials were about to be sent to another origin than the one they were entered for."""

    category = "credentials_origin"


def bind_credentials(integration: dict[str, Any], credentials: dict[str, Any]) -> dict[str, Any]:
    """Refuse credentials bound to another origin than the integration's current base URL (the URL
    changed after they were fetched, or the tenant service and this ingestor disagree)."""
    from soc_shared.egress import origin_of

    bound = credentials.get("origin") if isinstance(credentials, dict) else None
    if bound is not None and bound != origin_of(str(integration.get("base_url") or "")):
        raise CredentialsOriginError(
            f"the credentials of integration {integration.get('id')} belong to {bound}, "
            f"not to {origin_of(str(integration.get('base_url') or ''))}: not sent"
        )
    return credentials


# --------------------------------------------------------------------------------- ingestor app
IngestorClientFactory = Callable[[Any, dict[str, Any], dict[str, Any]], Any]
"""(app, integration row, credentials) -> a vendor client; called at run time, so it may read
``app.state`` objects an extension set up."""


def create_ingestor_app(
    settings: Any,
    *,
    vendor: str,
    subtype: str,
    title: str,
    resources: Sequence[Resource],
    client_factory: IngestorClientFactory,
    tester: ConnectionTester,
    verifier: Any = None,
    credentials: CredentialsProvider | None = None,
    extra_routers: Callable[[Any], Sequence[APIRouter]] | None = None,
    extension: Callable[[Any, Any], Any] | None = None,
    keep_clients: bool = False,
) -> Any:
    """The one FastAPI app every ingestor runs: database, bus, token verification, the Ingestor
    with its resources, the internal routes, health and metrics.

    ``extension(app, service_tokens)`` is an optional async context manager entered after the
    Ingestor started (e.g. itsm-ingest's ticket service), ``extra_routers(app)`` its routes.
    """
    from contextlib import AsyncExitStack, asynccontextmanager

    from soc_shared.app import create_service_app, instrument_httpx
    from soc_shared.security import RevocationFeed, ServiceTokenProvider, TokenVerifier, require_caller

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        app.state.db = Database.from_settings(settings)
        app.state.bus = Bus(settings.amqp_url.get_secret_value(), service=settings.service_name)
        app.state.token_verifier = verifier or TokenVerifier(
            settings.jwks_url, settings.jwt_issuer, settings.jwt_audience
        )
        tokens = ServiceTokenProvider(
            settings.service_token_url,
            settings.service_name,
            settings.service_client_secret.get_secret_value(),
        )
        app.state.service_tokens = tokens
        feed = None
        if verifier is None:
            feed = RevocationFeed(
                app.state.token_verifier.revocations, settings.revocations_url, tokens.token
            )
            feed.start()
        app.state.ingestor = Ingestor(
            name=settings.service_name,
            vendor=vendor,
            subtype=subtype,
            db=app.state.db,
            bus=app.state.bus,
            resources=resources,
            # Every vendor client is built here: credentials go to the origin they were entered for only.
            client_factory=lambda integration, creds: client_factory(
                app, integration, bind_credentials(integration, creds)
            ),
            credentials=credentials or TenantCredentials(settings.tenant_url, tokens.token),
            concurrency=settings.concurrency,
            keep_clients=keep_clients,
            lease_seconds=getattr(settings, "lease_seconds", 60),
        )
        await app.state.bus.connect()
        await app.state.ingestor.start(run_scheduler=settings.scheduler_enabled)
        try:
            async with AsyncExitStack() as stack:
                if extension is not None:
                    await stack.enter_async_context(extension(app, tokens))
                yield
        finally:
            if feed is not None:
                await feed.stop()
            await app.state.ingestor.stop()
            await app.state.bus.close()
            await app.state.db.dispose()

    app: Any = None
    # Test-connection and sync-now are the tenant service's to ask (with the ingest.control scope).
    routers: list[APIRouter] = [
        internal_router(lambda: app.state.ingestor, tester, require_caller("tenant", scope="ingest.control"))
    ]
    app = create_service_app(
        settings,
        title=title,
        routers=routers,
        lifespan=lifespan,
        readiness={"database": lambda: app.state.db.ping(), "broker": lambda: app.state.bus.ping()},
    )
    for router in extra_routers(app) if extra_routers else ():
        app.include_router(router)
    instrument_httpx()
    return app
