"""The ingestors' test harness, as a pytest plugin (registered by the repository's root
``conftest.py``): the session's real database and broker, a tap on ``soc.events``, and
``IngestorHarness`` — one vendor simulator in-process (ASGI) or on a loopback socket, Ingestor
replicas wired to it, integrations added and cleaned up — so each ingestor's ``conftest.py`` only
says what differs: its ``IngestorKind`` (the ``ingestor_kind`` fixture) and its ``settings``.

Fixtures: ``db``, ``bus`` (session), ``tap`` (``soc.events`` under the kind's keys),
``tap_factory`` (taps on other keys), ``harness`` (needs ``simulator``: the vendor simulator app of
the test), ``socket_sim`` (needs ``socket_simulator``: an app factory, served on a loopback port for
the module). ``IngestorHarness.serve`` runs the ingestor's whole service app (its lifespan, internal
routes and extensions) on the harness's simulator and credentials.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

import httpx
import pytest
import pytest_asyncio

from soc_shared.bus import Bus
from soc_shared.db import Database
from soc_shared.events import IntegrationChanged
from soc_shared.sync import Ingestor, Resource
from soc_shared.testing import EventTap, ServerThread
from soc_shared.vendor_http import RetryPolicy

# Vendor faults are retried fast in tests (the policy's shape is what the tests exercise).
FAST_RETRY = RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05, max_retry_after=2)


@dataclass(frozen=True)
class IngestorKind:
    """What distinguishes one ingestor in its tests."""

    name: str  # "siem-ingest"
    vendor: str  # "qradar"
    subtype: str  # "IBM_QRADAR"
    integration_type: str  # "SIEM"
    credential_kind: str  # "API_KEY"
    resources: Sequence[Resource]
    client_for: Callable[..., Any]  # (integration, credentials, settings, **options) -> client
    sim_url: str  # the simulator's base URL in-process, e.g. "http://qradar.sim"
    id_prefix: str  # integration ids of the tests: "<prefix>-<hex>"
    tap_keys: tuple[str, ...]  # routing keys the tap listens to
    default_credentials: Callable[[], dict[str, Any]]
    instance_name: str = "test"
    company_id: str | None = None  # threat intelligence integrations belong to a company
    retry: RetryPolicy = FAST_RETRY


def integration_change(
    kind: IngestorKind,
    integration_id: str,
    *,
    settings: dict[str, Any] | None = None,
    deleted: bool = False,
    base_url: str | None = None,
    **company: str | None,
) -> IntegrationChanged:
    """``tenant.integration.changed`` for one integration of ``kind``, as the tenant service sends it
    (``company_id=...`` overrides the kind's company)."""
    if set(company) - {"company_id"}:
        raise TypeError(f"unexpected arguments: {sorted(set(company) - {'company_id'})}")
    return IntegrationChanged(
        integration_id=integration_id,
        integration_type=kind.integration_type,
        subtype=kind.subtype,
        instance_name=kind.instance_name,
        status="active",
        deleted=deleted,
        base_url=base_url or kind.sim_url,
        credential_kind=kind.credential_kind,
        company_id=company.get("company_id", kind.company_id),
        settings=settings or {},
        changed_at=datetime.now(UTC),
    )


@dataclass
class IngestorHarness:
    """One simulator, one or more Ingestor replicas, integrations cleaned up afterwards."""

    kind: IngestorKind
    settings: Any
    db: Database
    bus: Bus
    sim: Any  # the simulator's FastAPI app
    integrations: list[str] = field(default_factory=list)
    credentials: dict[str, dict[str, Any]] = field(default_factory=dict)  # integration id -> credentials
    # for every other integration (None: the kind's default credentials)
    default_credentials: dict[str, Any] | None = None

    @property
    def state(self) -> Any:
        return self.sim.state.sim

    @property
    def board(self) -> Any:
        return self.sim.state.faults

    def transport(self) -> httpx.AsyncBaseTransport:
        return httpx.ASGITransport(app=self.sim)

    def control(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=self.transport(), base_url=self.kind.sim_url)

    def credentials_of(self, integration_id: str) -> dict[str, Any]:
        found = self.credentials.get(integration_id) or self.default_credentials
        return found if found is not None else self.kind.default_credentials()

    def ingestor(
        self,
        resources: Sequence[str] | None = None,
        *,
        bus: Bus | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        concurrency: int = 4,
        network: bool = False,
        keep_clients: bool = False,
        **client_options: Any,
    ) -> Ingestor:
        """``network``: real sockets to the integration's base URL instead of the in-process simulator."""
        chosen = [r for r in self.kind.resources if resources is None or r.name in resources]
        options = {"retry": self.kind.retry, **client_options}
        if not network:
            options["transport"] = transport or self.transport()

        async def credentials(integration_id: str) -> dict[str, Any]:
            return self.credentials_of(integration_id)

        return Ingestor(
            name=self.kind.name,
            vendor=self.kind.vendor,
            subtype=self.kind.subtype,
            db=self.db,
            bus=bus or self.bus,
            resources=chosen,
            client_factory=lambda i, c: self.kind.client_for(i, c, self.settings, **options),
            credentials=credentials,
            concurrency=concurrency,
            lease_seconds=60,
            keep_clients=keep_clients,
        )

    def change(self, integration_id: str, **kwargs: Any) -> IntegrationChanged:
        return integration_change(self.kind, integration_id, **kwargs)

    async def add_integration(
        self,
        ingestor: Ingestor,
        *,
        integration_id: str | None = None,
        credentials: dict[str, Any] | None = None,
        **change: Any,
    ) -> str:
        integration_id = integration_id or f"{self.kind.id_prefix}-{uuid.uuid4().hex[:10]}"
        if credentials is not None:
            self.credentials[integration_id] = credentials
        async with ingestor.db.session() as session:
            await ingestor.apply_integration(session, self.change(integration_id, **change))
        self.integrations.append(integration_id)
        return integration_id

    async def sync(
        self, ingestor: Ingestor, integration_id: str | None = None, resource: str | None = None
    ) -> list[dict[str, Any]]:
        """Make the resource(s) due now (``integration_id`` None: only what is due anyway) and run
        until nothing is due; the sync states after."""
        if integration_id is not None:
            await ingestor.trigger(integration_id, resource)
        while await ingestor.run_due_once():
            pass
        return await ingestor.states(integration_id)

    @asynccontextmanager
    async def serve(
        self,
        create_app: Callable[..., Any],
        verifier: Any,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        network: bool = False,
        **client_options: Any,
    ) -> AsyncIterator[Any]:
        """The ingestor's service app (``create_app(settings, verifier=, credentials=,
        client_options=)``) with its lifespan entered: its Ingestor is ``app.state.ingestor``,
        reading this harness's simulator (over real sockets to the integration's base URL with
        ``network``) with this harness's credentials."""
        options = {"retry": self.kind.retry, **client_options}
        if not network:
            options["transport"] = transport or self.transport()

        async def credentials(integration_id: str) -> dict[str, Any]:
            return self.credentials_of(integration_id)

        app = create_app(self.settings, verifier=verifier, credentials=credentials, client_options=options)
        async with app.router.lifespan_context(app):
            yield app

    async def state_of(self, ingestor: Ingestor, integration_id: str, resource: str) -> dict[str, Any]:
        return next(s for s in await ingestor.states(integration_id) if s["resource"] == resource)

    async def cleanup(self, ingestor: Ingestor) -> None:
        for integration_id in self.integrations:
            async with ingestor.db.session() as session:
                await ingestor.apply_integration(session, self.change(integration_id, deleted=True))


# ------------------------------------------------------------------------------------- fixtures
# One pytest session may run several ingestors' tests: their databases and brokers are kept per
# schema / per ingestor (a session-scoped fixture of this plugin would be shared between them).
@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def _ingestor_connections() -> AsyncIterator[dict[str, Any]]:
    opened: dict[str, Any] = {}
    yield opened
    for connection in opened.values():
        if isinstance(connection, Bus):
            await connection.close()
        else:
            await connection.dispose()


@pytest_asyncio.fixture(loop_scope="session")
async def db(settings: Any, _ingestor_connections: dict[str, Any]) -> Database:
    """The ingestor's own schema on the session's database."""
    key = f"db:{settings.db_schema}"
    if key not in _ingestor_connections:
        _ingestor_connections[key] = Database.from_settings(settings)
    database: Database = _ingestor_connections[key]
    return database


@pytest_asyncio.fixture(loop_scope="session")
async def bus(settings: Any, ingestor_kind: IngestorKind, _ingestor_connections: dict[str, Any]) -> Bus:
    """A connection to the session's vhost, named after the ingestor."""
    key = f"bus:{ingestor_kind.name}"
    if key not in _ingestor_connections:
        connection = Bus(settings.amqp_url.get_secret_value(), service=f"{ingestor_kind.name}-tests")
        await connection.connect()
        _ingestor_connections[key] = connection
    found: Bus = _ingestor_connections[key]
    return found


@pytest_asyncio.fixture(loop_scope="session")
async def tap(bus: Bus, ingestor_kind: IngestorKind, tap_class: type[EventTap]) -> AsyncIterator[EventTap]:
    t = await tap_class(f"{ingestor_kind.name}-tests").start(bus, list(ingestor_kind.tap_keys))
    yield t
    await t.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def tap_factory(
    bus: Bus, ingestor_kind: IngestorKind, tap_class: type[EventTap]
) -> AsyncIterator[Callable[..., Awaitable[EventTap]]]:
    """``await tap_factory(keys)``: a tap on these routing keys (default: the kind's), stopped after
    the test."""
    taps: list[EventTap] = []

    async def make(keys: Sequence[str] | None = None) -> EventTap:
        t = await tap_class(f"{ingestor_kind.name}-tests").start(bus, list(keys or ingestor_kind.tap_keys))
        taps.append(t)
        return t

    yield make
    for t in taps:
        await t.stop()


@pytest.fixture(scope="session")
def tap_class() -> type[EventTap]:
    """The tap's class (an ingestor may add helpers in a subclass)."""
    return EventTap


@pytest.fixture(scope="session")
def harness_class() -> type[IngestorHarness]:
    """The harness's class (an ingestor may add helpers in a subclass)."""
    return IngestorHarness


@pytest_asyncio.fixture(loop_scope="session")
async def harness(
    ingestor_kind: IngestorKind,
    harness_class: type[IngestorHarness],
    settings: Any,
    db: Database,
    bus: Bus,
    simulator: Any,
) -> AsyncIterator[IngestorHarness]:
    h = harness_class(ingestor_kind, settings, db, bus, simulator)
    yield h
    await h.cleanup(h.ingestor([]))


class SocketSim(NamedTuple):
    app: Any  # the simulator's FastAPI app
    url: str  # its base URL on loopback


@pytest.fixture(scope="module")
def socket_sim(socket_simulator: Callable[[], Any]) -> Iterator[SocketSim]:
    """The simulator behind a real loopback socket (timeouts, refused connections, TLS are real)."""
    app = socket_simulator()
    with ServerThread(app) as server:
        yield SocketSim(app, f"http://127.0.0.1:{server.port}")
