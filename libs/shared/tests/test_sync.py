"""The sync scheduler on real PostgreSQL and RabbitMQ: leases, cursors, failures, replicas."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from alembic import command
from soc_shared.bus import Bus, PublishError
from soc_shared.db import Database, alembic_config
from soc_shared.events import IntegrationChanged, SiemDomain, make_event
from soc_shared.provision import admin_dsn
from soc_shared.sync import Ingestor, Page, Resource, SyncContext, sync_state_table
from soc_shared.testing import REPO_ROOT
from soc_shared.vendor_http import VendorError, VendorErrorCategory

SIEM_MIGRATIONS = REPO_ROOT / "services" / "siem-ingest" / "src" / "soc_siem_ingest" / "migrations"
SCHEMA = "siem_ingest"  # any ingestor schema will do; these tests use their own integration ids


@pytest.fixture(scope="module")
async def db():
    url = f"postgresql+psycopg://soc_siem_ingest:soc_siem_ingest@127.0.0.1:{os.environ.get('SOC_DB_PORT', '55432')}/{os.environ['SOC_DB_NAME']}"
    # the schema as an ingestor's migrations build it (never created past them: they would refuse)
    command.upgrade(alembic_config(SIEM_MIGRATIONS, url, SCHEMA), "head")
    database = Database(url, schema=SCHEMA)
    yield database
    await database.dispose()


@pytest.fixture
async def bus():
    b = Bus(os.environ["SOC_AMQP_URL"], service="test-sync")
    await b.connect()
    yield b
    await b.close()


class Vendor:
    """A fake vendor collection of ``n`` records read in pages of ``size`` after a cursor."""

    def __init__(self, n: int, size: int = 10) -> None:
        self.records = list(range(1, n + 1))
        self.size = size
        self.fail_after_pages: int | None = None
        self.in_flight = 0
        self.max_in_flight = 0
        self.reads: list[tuple[str, int]] = []

    async def fetch(self, ctx: SyncContext, cursor: dict[str, Any] | None) -> AsyncIterator[Page]:
        after = (cursor or {}).get("after", 0)
        pages = 0
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            while True:
                await asyncio.sleep(0.01)
                chunk = [r for r in self.records if r > after][: self.size]
                if not chunk:
                    return
                if self.fail_after_pages is not None and pages >= self.fail_after_pages:
                    raise VendorError(VendorErrorCategory.SERVER_ERROR, "vendor answered 500 five times")
                self.reads.append((ctx.integration_id, chunk[0]))
                events = [
                    make_event(
                        "siem.domain.upserted",
                        SiemDomain(domain_id=r, name=f"d{r}"),
                        source=ctx.source,
                        subject=str(r),
                        integration_id=ctx.integration_id,
                    )
                    for r in chunk
                ]
                after = chunk[-1]
                pages += 1
                yield Page(events=events, cursor={"after": after})
        finally:
            self.in_flight -= 1


async def _credentials(_: str) -> dict[str, Any]:
    return {"secrets": {}}


def _ingestor(db: Database, bus: Bus, vendor: Vendor, **kw: Any) -> Ingestor:
    return Ingestor(
        name="test-ingest",
        vendor="fake",
        subtype="IBM_QRADAR",
        db=db,
        bus=bus,
        resources=[Resource("records", 60, vendor.fetch)],
        client_factory=lambda i, c: None,
        credentials=_credentials,
        **kw,
    )


async def _add_integration(ingestor: Ingestor, integration_id: str) -> None:
    async with ingestor.db.session() as session:
        await ingestor.apply_integration(
            session,
            IntegrationChanged(
                integration_id=integration_id,
                integration_type="SIEM",
                subtype="IBM_QRADAR",
                instance_name=integration_id,
                status="active",
                base_url="http://vendor.test",
                credential_kind="API_KEY",
                changed_at=datetime.now(UTC),
            ),
        )


async def _state(db: Database, integration_id: str) -> dict[str, Any]:
    async with db.session() as session:
        row = (
            (
                await session.execute(
                    sa.select(sync_state_table).where(sync_state_table.c.integration_id == integration_id)
                )
            )
            .mappings()
            .one()
        )
    return dict(row)


async def test_cursor_advances_page_by_page_and_a_failure_keeps_the_last_confirmed_page(db, bus):
    vendor = Vendor(50, size=10)
    vendor.fail_after_pages = 3
    ingestor = _ingestor(db, bus, vendor)
    iid = f"cur-{uuid.uuid4().hex[:6]}"
    await _add_integration(ingestor, iid)
    assert await ingestor.run_due_once() == 1
    state = await _state(db, iid)
    assert state["cursor"] == {"after": 30}
    assert state["consecutive_failures"] == 1
    assert state["last_error_category"] == "server_error"
    assert state["lease_owner"] is None
    # The failed run is retried later (backoff), from the last confirmed page.
    vendor.fail_after_pages = None
    await ingestor.trigger(iid)
    assert await ingestor.run_due_once() == 1
    state = await _state(db, iid)
    assert (
        state["cursor"] == {"after": 50}
        and state["consecutive_failures"] == 0
        and state["last_error"] is None
    )
    assert [first for _, first in vendor.reads if _ == iid] == [1, 11, 21, 31, 41]


async def test_unconfirmed_publish_does_not_advance_the_cursor(db, bus):
    vendor = Vendor(20, size=10)
    ingestor = _ingestor(db, bus, vendor)
    iid = f"pub-{uuid.uuid4().hex[:6]}"
    await _add_integration(ingestor, iid)

    original = bus.publish
    calls = {"n": 0}

    async def flaky_publish(events, **kw):
        calls["n"] += 1
        if calls["n"] == 2:
            raise PublishError("broker did not confirm")
        return await original(events, **kw)

    bus.publish = flaky_publish  # type: ignore[method-assign]
    await ingestor.run_due_once()
    state = await _state(db, iid)
    assert state["cursor"] == {"after": 10}
    assert state["last_error_category"] == "bus"


async def test_two_replicas_never_run_the_same_integration_resource_at_once_and_finish_everything(db, bus):
    vendor = Vendor(30, size=5)
    a, b = _ingestor(db, bus, vendor, concurrency=3), _ingestor(db, bus, vendor, concurrency=3)
    ids = [f"rep-{uuid.uuid4().hex[:6]}" for _ in range(6)]
    for iid in ids:
        await _add_integration(a, iid)
    done = await asyncio.gather(a.run_due_once(), b.run_due_once())
    while sum(done):
        done = await asyncio.gather(a.run_due_once(), b.run_due_once())
    per_integration: dict[str, list[int]] = {}
    for iid, first in vendor.reads:
        per_integration.setdefault(iid, []).append(first)
    for iid in ids:
        # Each page of each integration was read exactly once across both replicas.
        assert per_integration[iid] == [1, 6, 11, 16, 21, 26]
        assert (await _state(db, iid))["cursor"] == {"after": 30}


async def test_claims_are_exclusive_under_skip_locked(db, bus):
    vendor = Vendor(1)
    a, b = _ingestor(db, bus, vendor), _ingestor(db, bus, vendor)
    iid = f"lease-{uuid.uuid4().hex[:6]}"
    await _add_integration(a, iid)
    claims = await asyncio.gather(a.claim(10), b.claim(10))
    mine = [r for rows in claims for r in rows if r["integration_id"] == iid]
    assert len(mine) == 1
    state = await _state(db, iid)
    assert state["lease_owner"] in (a.owner, b.owner) and state["lease_until"] is not None


def test_ingest_role_cannot_touch_another_schema():
    dsn = (
        admin_dsn(os.environ["SOC_DB_NAME"])
        .replace("user=soc_admin", "user=soc_siem_ingest")
        .replace(
            f"password={os.environ.get('SOC_PG_ADMIN_PASSWORD', 'soc_admin')}", "password=soc_siem_ingest"
        )
    )
    with psycopg.connect(dsn) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("CREATE TABLE auth.intruder (id int)")


async def test_a_live_run_keeps_its_lease_however_long_a_page_takes(db, bus):
    """The heartbeat renews the lease while the run lives: a page slower than the lease does not
    hand the work to another replica mid-run."""
    vendor = Vendor(3, size=3)
    original = vendor.fetch

    async def slow_fetch(ctx: SyncContext, cursor: dict[str, Any] | None) -> AsyncIterator[Page]:
        await asyncio.sleep(3.5)  # longer than the 2 s lease
        async for page in original(ctx, cursor):
            yield page

    a = Ingestor(
        name="test-ingest",
        vendor="fake",
        subtype="IBM_QRADAR",
        db=db,
        bus=bus,
        resources=[Resource("records", 60, slow_fetch)],
        client_factory=lambda i, c: None,
        credentials=_credentials,
        lease_seconds=2,
    )
    b = _ingestor(db, bus, vendor, lease_seconds=2)
    iid = f"beat-{uuid.uuid4().hex[:6]}"
    await _add_integration(a, iid)
    [row] = [r for r in await a.claim(10) if r["integration_id"] == iid]
    run = asyncio.create_task(a.run_one(row))
    await asyncio.sleep(2.8)
    assert not [r for r in await b.claim(10) if r["integration_id"] == iid], "lease lapsed during a live run"
    await run
    state = await _state(db, iid)
    assert state["cursor"] == {"after": 3} and state["lease_owner"] is None


async def test_a_dead_replicas_lease_lapses_within_lease_seconds(db, bus):
    """A replica killed mid-run renews nothing: another replica takes the work over once the short
    lease has passed, not after a long fixed one."""
    vendor = Vendor(2)
    dead, alive = _ingestor(db, bus, vendor, lease_seconds=1), _ingestor(db, bus, vendor, lease_seconds=1)
    iid = f"dead-{uuid.uuid4().hex[:6]}"
    await _add_integration(dead, iid)
    assert [r for r in await dead.claim(10) if r["integration_id"] == iid]  # claims, then "dies"
    assert not [r for r in await alive.claim(10) if r["integration_id"] == iid]
    await asyncio.sleep(1.5)
    taken = [r for r in await alive.claim(10) if r["integration_id"] == iid]
    assert taken and (await _state(db, iid))["lease_owner"] == alive.owner
