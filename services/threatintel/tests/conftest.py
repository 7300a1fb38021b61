"""threatintel test fixtures: the real database and broker of the session, the Cyware simulator
in-process (ASGI) or on a loopback socket, Ingestor replicas wired to them, and a tap on the bus."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import soc_threatintel
from fastapi import FastAPI
from soc_shared.bus import Bus
from soc_shared.db import Database, migrate
from soc_shared.events import IntegrationChanged
from soc_shared.sync import Ingestor
from soc_shared.testing import EventTap, ServerThread, free_port
from soc_shared.vendor_http import RetryPolicy
from soc_simulators import cyware as cyware_sim
from soc_threatintel.config import Settings
from soc_threatintel.resources import RESOURCES, client_for

FIXTURES = Path(__file__).resolve().parent / "fixtures"
ACME = ("acme-access", "acme-secret")
GLOBEX = ("globex-access", "globex-secret")
FAST_RETRY = RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05, max_retry_after=2)
SIM_URL = "http://cyware.sim"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def cyware_credentials(tenant: tuple[str, str] = ACME) -> dict[str, Any]:
    return {
        "credential_kind": "SECRET_KEY_ACCESS_KEY",
        "secrets": {"access_key": tenant[0], "secret_key": tenant[1]},
        "ca_pem": None,
    }


@pytest.fixture(scope="session")
def settings() -> Settings:
    s = Settings(scheduler_enabled=False)
    migrate(s, Path(soc_threatintel.__file__).parent / "migrations")
    return s


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def db(settings: Settings) -> AsyncIterator[Database]:
    database = Database.from_settings(settings)
    yield database
    await database.dispose()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def bus(settings: Settings) -> AsyncIterator[Bus]:
    b = Bus(settings.amqp_url.get_secret_value(), service="threatintel-tests")
    await b.connect()
    yield b
    await b.close()


class Tap(EventTap):
    """The shared event tap under this service's queue-name prefix."""

    def __init__(self) -> None:
        super().__init__("threatintel-tests")

    def alerts(self, integration_id: str) -> list[str]:
        """Short ids of the ti.alert.upserted events of one integration, in arrival order."""
        return [e.data["short_id"] for e in self.of(integration_id, "ti.alert.upserted")]


@pytest_asyncio.fixture(loop_scope="session")
async def tap(bus: Bus) -> AsyncIterator[Tap]:
    t = await Tap().start(bus, ["ti.#", "ingest.sync.reported"])
    yield t
    await t.stop()


def change(
    integration_id: str,
    *,
    settings: dict[str, Any] | None = None,
    deleted: bool = False,
    base_url: str = SIM_URL,
    company_id: str | None = "company-acme",
) -> IntegrationChanged:
    return IntegrationChanged(
        integration_id=integration_id,
        integration_type="THREAT_INTELLIGENCE",
        subtype="CYWARE",
        instance_name="Cyware test",
        status="active",
        deleted=deleted,
        base_url=base_url,
        credential_kind="SECRET_KEY_ACCESS_KEY",
        company_id=company_id,
        settings=settings or {},
        changed_at=datetime.now(UTC),
    )


@dataclass
class Harness:
    """One simulator, one or more Ingestor replicas, integrations cleaned up afterwards."""

    settings: Settings
    db: Database
    bus: Bus
    sim: FastAPI
    integrations: list[str] = field(default_factory=list)
    credentials: dict[str, dict[str, Any]] = field(default_factory=dict)  # integration id -> credentials

    @property
    def state(self) -> cyware_sim.CywareState:
        return self.sim.state.sim

    @property
    def board(self) -> Any:
        return self.sim.state.faults

    def tenant(self, access_id: str = ACME[0]) -> cyware_sim.TenantData:
        return self.state.tenants[access_id]

    def transport(self) -> httpx.AsyncBaseTransport:
        return httpx.ASGITransport(app=self.sim)

    def control(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=self.transport(), base_url=SIM_URL)

    def ingestor(
        self,
        resources: Sequence[str] | None = None,
        *,
        bus: Bus | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        concurrency: int = 4,
        network: bool = False,
        **client_options: Any,
    ) -> Ingestor:
        """``network``: real sockets to the integration's base URL instead of the in-process simulator."""
        chosen = [r for r in RESOURCES if resources is None or r.name in resources]
        options = {"retry": FAST_RETRY, **client_options}
        if not network:
            options["transport"] = transport or self.transport()

        async def credentials(integration_id: str) -> dict[str, Any]:
            return self.credentials.get(integration_id) or cyware_credentials()

        return Ingestor(
            name="threatintel",
            vendor="cyware",
            subtype="CYWARE",
            db=self.db,
            bus=bus or self.bus,
            resources=chosen,
            client_factory=lambda i, c: client_for(i, c, self.settings, **options),
            credentials=credentials,
            concurrency=concurrency,
            lease_seconds=60,
        )

    async def add_integration(
        self,
        ingestor: Ingestor,
        *,
        tenant: tuple[str, str] = ACME,
        settings: dict[str, Any] | None = None,
        base_url: str = SIM_URL,
        company_id: str | None = "company-acme",
    ) -> str:
        integration_id = f"cy-{uuid.uuid4().hex[:10]}"
        self.credentials[integration_id] = cyware_credentials(tenant)
        async with ingestor.db.session() as session:
            await ingestor.apply_integration(
                session, change(integration_id, settings=settings, base_url=base_url, company_id=company_id)
            )
        self.integrations.append(integration_id)
        return integration_id

    async def sync(
        self, ingestor: Ingestor, integration_id: str, resource: str | None = None
    ) -> list[dict[str, Any]]:
        """Make the resource(s) due now and run until nothing is due; the sync states after."""
        await ingestor.trigger(integration_id, resource)
        while await ingestor.run_due_once():
            pass
        return await ingestor.states(integration_id)

    async def state_of(self, ingestor: Ingestor, integration_id: str, resource: str) -> dict[str, Any]:
        return next(s for s in await ingestor.states(integration_id) if s["resource"] == resource)

    async def cleanup(self, ingestor: Ingestor) -> None:
        for integration_id in self.integrations:
            async with ingestor.db.session() as session:
                await ingestor.apply_integration(session, change(integration_id, deleted=True))


@pytest_asyncio.fixture(loop_scope="session")
async def harness(settings: Settings, db: Database, bus: Bus) -> AsyncIterator[Harness]:
    h = Harness(settings, db, bus, cyware_sim.create_app(seed=21, alerts_per_tenant=120))
    yield h
    await h.cleanup(h.ingestor([]))


# ------------------------------------------------------------------------- simulator on a socket


@pytest.fixture(scope="module")
def socket_sim() -> Iterator[tuple[FastAPI, str]]:
    app = cyware_sim.create_app(seed=5, alerts_per_tenant=40)
    with ServerThread(app) as server:
        yield app, f"http://127.0.0.1:{server.port}"


@pytest.fixture(scope="session")
def kit() -> Any:
    """The helpers above for test modules (they cannot import this conftest by name)."""
    from types import SimpleNamespace

    return SimpleNamespace(
        fixture=fixture,
        cyware_credentials=cyware_credentials,
        change=change,
        ServerThread=ServerThread,
        FAST_RETRY=FAST_RETRY,
        ACME=ACME,
        GLOBEX=GLOBEX,
        Tap=Tap,
        free_port=free_port,
        SIM_URL=SIM_URL,
    )
