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


def _change(integration_id: str, **kw: Any) -> IntegrationChanged:
    values: dict[str, Any] = {
        "integration_type": "SIEM",
        "subtype": "IBM_QRADAR",
        "instance_name": integration_id,
        "status": "active",
        "base_url": "http://vendor.test",
        "credential_kind": "API_KEY",
        "changed_at": datetime.now(UTC),
        **kw,
    }
    return IntegrationChanged(integration_id=integration_id, **values)


async def _apply(ingestor: Ingestor, *changes: IntegrationChanged) -> None:
    async with ingestor.db.session() as session:
        await ingestor.apply_integrations(session, list(changes))


async def _states(db: Database, integration_id: str) -> dict[str, dict[str, Any]]:
    async with db.session() as session:
        rows = (
            (
                await session.execute(
                    sa.select(sync_state_table).where(sync_state_table.c.integration_id == integration_id)
                )
            )
            .mappings()
            .all()
        )
    return {r["resource"]: dict(r) for r in rows}


def _multi(vendor: Vendor, *names: str, **enabled: Any) -> list[Resource]:
    return [Resource(n, 60, vendor.fetch, enabled=enabled.get(n)) for n in names]


async def test_a_batch_of_integration_changes_is_two_statements_and_waits_for_no_run(db, bus):
    """Fifty integrations with ten resources each are applied in two statements (not 550), while
    runs of the same rows are in flight: the runs hold no row lock the upsert would wait for."""
    vendor = Vendor(1)
    release = asyncio.Event()
    original = vendor.fetch

    async def held_fetch(ctx: SyncContext, cursor: dict[str, Any] | None) -> AsyncIterator[Page]:
        await release.wait()
        async for page in original(ctx, cursor):
            yield page

    names = [f"r{i}" for i in range(10)]
    ingestor = Ingestor(
        name="test-ingest",
        vendor="fake",
        subtype="IBM_QRADAR",
        db=db,
        bus=bus,
        resources=[Resource(n, 60, held_fetch) for n in names],
        client_factory=lambda i, c: None,
        credentials=_credentials,
        concurrency=8,
    )
    ids = sorted(f"batch-{uuid.uuid4().hex[:6]}" for _ in range(50))
    await _apply(ingestor, *(_change(i) for i in ids[:4]))
    rows = [r for r in await ingestor.claim(100) if r["integration_id"] in ids]
    assert rows
    runs = [asyncio.create_task(ingestor.run_one(r)) for r in rows]
    await asyncio.sleep(0.2)  # the runs are in flight, holding their leases

    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    sa.event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    try:
        # would never return if the upsert waited for the held runs (they wait for it)
        await asyncio.wait_for(_apply(ingestor, *(_change(i, instance_name=f"{i}!") for i in ids)), 30)
    finally:
        sa.event.remove(db.engine.sync_engine, "before_cursor_execute", count)
    assert len([s for s in statements if s.lstrip().upper().startswith("INSERT")]) == 2, statements
    release.set()
    await asyncio.gather(*runs)
    for iid in ids:
        states = await _states(db, iid)
        assert set(states) == set(names) and all(s["enabled"] for s in states.values())
    # the held runs finished normally: leases given back, their one page read
    for r in rows:
        state = (await _states(db, r["integration_id"]))[r["resource"]]
        assert state["lease_owner"] is None and state["cursor"] == {"after": 1}
    assert len(vendor.reads) == len(rows)


async def test_a_resource_switched_off_in_the_settings_gets_no_run(db, bus):
    vendor = Vendor(1)
    ingestor = Ingestor(
        name="test-ingest",
        vendor="fake",
        subtype="IBM_QRADAR",
        db=db,
        bus=bus,
        resources=_multi(vendor, "always", "optional", optional=lambda s: s.get("optional", True)),
        client_factory=lambda i, c: None,
        credentials=_credentials,
    )
    iid = f"off-{uuid.uuid4().hex[:6]}"
    await _apply(ingestor, _change(iid, settings={"optional": False}))
    claimed = [r["resource"] for r in await ingestor.claim(100) if r["integration_id"] == iid]
    assert claimed == ["always"]
    assert not (await _states(db, iid))["optional"]["enabled"]
    # switched on again: due at once
    await _apply(ingestor, _change(iid, settings={"optional": True}))
    claimed = [r["resource"] for r in await ingestor.claim(100) if r["integration_id"] == iid]
    assert claimed == ["optional"]


async def test_a_change_keeps_the_schedule_unless_a_resource_failed_or_was_off(db, bus):
    """A status or name change must not make every resource due at once; a failing or re-enabled
    resource is tried again at once (new credentials may be what it was waiting for)."""
    vendor = Vendor(1)
    ingestor = _ingestor(db, bus, vendor)
    ok, failing = f"keep-{uuid.uuid4().hex[:6]}", f"fail-{uuid.uuid4().hex[:6]}"
    await _apply(ingestor, _change(ok), _change(failing))
    rows = {r["integration_id"]: r for r in await ingestor.claim(100) if r["integration_id"] in (ok, failing)}
    await ingestor.run_one(rows[ok])
    vendor.fail_after_pages = 0
    await ingestor.run_one(rows[failing])
    vendor.fail_after_pages = None
    before = {i: (await _state(db, i))["next_run_at"] for i in (ok, failing)}
    assert (await _state(db, failing))["consecutive_failures"] == 1

    await _apply(ingestor, _change(ok, status="error"), _change(failing, credentials_version=2))
    assert (await _state(db, ok))["next_run_at"] == before[ok]
    assert (await _state(db, failing))["next_run_at"] < before[failing]
    assert [
        r["integration_id"] for r in await ingestor.claim(100) if r["integration_id"] in (ok, failing)
    ] == [failing]
    # a shorter polling interval counts from now
    await _apply(ingestor, _change(ok, settings={"resource_intervals": {"records": 5}}))
    state = await _state(db, ok)
    assert state["interval_seconds"] == 5 and state["next_run_at"] < before[ok]


async def test_a_free_slot_claims_again_at_once_not_after_the_poll_interval(db, bus):
    """With one slot and a 60 s poll, three due runs finish one after the other without waiting
    for the poll: a finished run wakes the scheduler."""
    vendor = Vendor(1)
    ingestor = _ingestor(db, bus, vendor, concurrency=1, poll_seconds=60)
    ids = [f"wake-{uuid.uuid4().hex[:6]}" for _ in range(3)]
    await _apply(ingestor, *(_change(i) for i in ids))
    await ingestor.start(consume_integrations=False)
    try:

        async def all_ran() -> None:
            while not all([(await _state(db, i))["last_success_at"] for i in ids]):  # noqa: ASYNC110 (polls the database)
                await asyncio.sleep(0.05)

        await asyncio.wait_for(all_ran(), 30)  # without the wake-up: about 120 s
    finally:
        await ingestor.stop()


class Clients:
    """Credentials by version, as the tenant service hands them out; clients built and closed."""

    def __init__(self) -> None:
        self.secret = "v1"
        self.fetches = 0
        self.built: list[FakeClient] = []

    async def credentials(self, integration_id: str) -> dict[str, Any]:
        self.fetches += 1
        return {"secrets": {"api_key": self.secret}}

    def factory(self, integration: dict[str, Any], credentials: dict[str, Any]) -> FakeClient:
        client = FakeClient(credentials["secrets"]["api_key"])
        self.built.append(client)
        return client


class FakeClient:
    def __init__(self, key: str) -> None:
        self.key = key
        self.closed = False

    async def aclose(self) -> None:
        self.closed = True


async def test_kept_clients_are_reused_until_the_integration_changes(db, bus):
    clients = Clients()
    used: list[tuple[str, bool]] = []
    gate = asyncio.Event()
    gate.set()

    async def fetch(ctx: SyncContext, cursor: dict[str, Any] | None) -> AsyncIterator[Page]:
        await gate.wait()
        used.append((ctx.client.key, ctx.client.closed))
        if ctx.client.key == "revoked":
            raise VendorError(VendorErrorCategory.BAD_CREDENTIALS, "refused")
        yield Page(events=[], cursor={"n": len(used)})

    ingestor = Ingestor(
        name="test-ingest",
        vendor="fake",
        subtype="IBM_QRADAR",
        db=db,
        bus=bus,
        resources=[Resource("a", 60, fetch), Resource("b", 60, fetch)],
        client_factory=clients.factory,
        credentials=clients.credentials,
        keep_clients=True,
    )
    iid = f"kept-{uuid.uuid4().hex[:6]}"

    async def run_all() -> None:
        await ingestor.trigger(iid)
        rows = [r for r in await ingestor.claim(100) if r["integration_id"] == iid]
        await asyncio.gather(*(ingestor.run_one(r) for r in rows))

    await _apply(ingestor, _change(iid))
    await run_all()
    await run_all()
    # two resources, two rounds: one credentials fetch, one client
    assert clients.fetches == 1 and len(clients.built) == 1 and not clients.built[0].closed
    assert used == [("v1", False)] * 4

    # a rotated credential: the next run uses it; the old client is closed
    clients.secret = "v2"
    await _apply(ingestor, _change(iid, credentials_version=2))
    await run_all()
    assert clients.fetches == 2 and used[-2:] == [("v2", False)] * 2 and clients.built[0].closed

    # a change consumed by another replica (only the row changed) is noticed too; a run in flight
    # keeps its client open until it ends
    gate.clear()
    await ingestor.trigger(iid)
    [first] = [r for r in await ingestor.claim(1) if r["integration_id"] == iid]
    in_flight = asyncio.create_task(ingestor.run_one(first))
    await asyncio.sleep(0.2)
    clients.secret = "v3"
    other = _ingestor(db, bus, Vendor(1))
    await _apply(other, _change(iid, credentials_version=3))
    [second] = [r for r in await ingestor.claim(100) if r["integration_id"] == iid]
    second_run = asyncio.create_task(ingestor.run_one(second))
    await asyncio.sleep(0.2)
    assert not clients.built[1].closed  # still used by the first run
    gate.set()
    await asyncio.gather(in_flight, second_run)
    assert sorted(used[-2:]) == [("v2", False), ("v3", False)]
    assert clients.built[1].closed and not clients.built[2].closed

    # refused credentials drop the kept client: the next run fetches them again
    clients.secret = "revoked"
    await _apply(other, _change(iid, credentials_version=4))
    await run_all()
    fetches = clients.fetches
    clients.secret = "v5"
    await ingestor.trigger(iid)  # (the same row version: only the failure made it fetch again)
    rows = [r for r in await ingestor.claim(100) if r["integration_id"] == iid]
    await asyncio.gather(*(ingestor.run_one(r) for r in rows))
    assert clients.fetches == fetches + 1 and used[-1] == ("v5", False)
    await ingestor.stop()
    assert all(c.closed for c in clients.built)


async def test_integration_changes_queued_during_runs_are_applied_in_large_batches(db, bus):
    """150 changes waiting on the queue are applied a batch at a time of many, not five (the
    default prefetch): under load each batch waits its turn behind the runs, so batches of five
    made onboarding crawl at about a change a second."""
    vendor = Vendor(1)
    release = asyncio.Event()
    original = vendor.fetch

    async def held_fetch(ctx: SyncContext, cursor: dict[str, Any] | None) -> AsyncIterator[Page]:
        await release.wait()
        async for page in original(ctx, cursor):
            yield page

    name = f"test-onboard-{uuid.uuid4().hex[:6]}"
    ingestor = Ingestor(
        name=name,
        vendor="fake",
        subtype="IBM_QRADAR",
        db=db,
        bus=bus,
        resources=[Resource("records", 60, held_fetch)],
        client_factory=lambda i, c: None,
        credentials=_credentials,
        concurrency=8,
    )
    batches: list[int] = []
    handle = ingestor.on_integration_changed

    async def counted(deliveries: list[Any]) -> None:
        batches.append(len(deliveries))
        await handle(deliveries)

    ingestor.on_integration_changed = counted  # type: ignore[method-assign]
    # the queue exists (and binds) before the changes are published
    await ingestor.start(run_scheduler=False)
    await ingestor.stop()
    ids = sorted(f"onb-{uuid.uuid4().hex[:6]}" for _ in range(150))
    for i in ids:  # one message each, as the tenant's outbox sends them
        await bus.publish([make_event("tenant.integration.changed", _change(i), source="/test", subject=i)])
    await ingestor.start()  # runs in flight (held) while the changes arrive
    try:

        async def all_known() -> None:
            while len(await _known(db, ids)) < len(ids):  # noqa: ASYNC110 (polls the database)
                await asyncio.sleep(0.05)

        await asyncio.wait_for(all_known(), 60)
    finally:
        release.set()
        await ingestor.stop()
    assert sum(batches) >= len(ids)
    assert max(batches) > 5 and len(batches) < len(ids) // 5, batches


async def _known(db: Database, ids: list[str]) -> list[str]:
    from soc_shared.sync import integration_table

    async with db.session() as session:
        rows = await session.execute(sa.select(integration_table.c.id).where(integration_table.c.id.in_(ids)))
        return [r[0] for r in rows]
