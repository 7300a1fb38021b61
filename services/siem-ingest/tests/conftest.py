"""siem-ingest test fixtures: the real database and broker of the session, the QRadar simulator
in-process (ASGI) or on a loopback socket, an Ingestor wired to them, and a tap on the bus."""

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
import soc_siem_ingest
from fastapi import FastAPI
from soc_shared.bus import Bus
from soc_shared.db import Database, migrate
from soc_shared.events import IntegrationChanged
from soc_shared.sync import Ingestor
from soc_shared.testing import VENDOR_SAMPLES, EventTap, ServerThread, free_port
from soc_shared.vendor_http import RetryPolicy
from soc_siem_ingest.config import Settings
from soc_siem_ingest.resources import RESOURCES, client_for
from soc_simulators import qradar as qradar_sim

SAMPLES = VENDOR_SAMPLES / "qradar"
TOKEN = qradar_sim.DEFAULT_TOKEN
FAST_RETRY = RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05, max_retry_after=2)


def sample(name: str) -> Any:
    return json.loads((SAMPLES / name).read_text())


def token_credentials(token: str = TOKEN) -> dict[str, Any]:
    return {"credential_kind": "API_KEY", "secrets": {"api_key": token}, "ca_pem": None}


@pytest.fixture(scope="session")
def settings() -> Settings:
    s = Settings(
        scheduler_enabled=False,
        ariel_poll_initial_seconds=0.02,
        ariel_poll_max_seconds=0.1,
        metrics_settle_seconds=0,
        ariel_timeout_seconds=20,
    )
    migrate(s, Path(soc_siem_ingest.__file__).parent / "migrations")
    return s


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def db(settings: Settings) -> AsyncIterator[Database]:
    database = Database.from_settings(settings)
    yield database
    await database.dispose()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def bus(settings: Settings) -> AsyncIterator[Bus]:
    b = Bus(settings.amqp_url.get_secret_value(), service="siem-ingest-tests")
    await b.connect()
    yield b
    await b.close()


class Tap(EventTap):
    """The shared event tap under this service's queue-name prefix."""

    def __init__(self) -> None:
        super().__init__("siem-tests")


@pytest_asyncio.fixture(loop_scope="session")
async def tap(bus: Bus) -> AsyncIterator[Tap]:
    t = await Tap().start(bus, ["siem.#", "ingest.sync.reported"])
    yield t
    await t.stop()


@dataclass
class Harness:
    """One simulator, one or more Ingestor replicas, integrations cleaned up afterwards."""

    settings: Settings
    db: Database
    bus: Bus
    sim: FastAPI
    integrations: list[str] = field(default_factory=list)
    credentials: dict[str, Any] = field(default_factory=token_credentials)

    @property
    def state(self) -> qradar_sim.QRadarState:
        return self.sim.state.sim

    def transport(self) -> httpx.AsyncBaseTransport:
        return httpx.ASGITransport(app=self.sim)

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

        async def credentials(_: str) -> dict[str, Any]:
            return self.credentials

        return Ingestor(
            name="siem-ingest",
            vendor="qradar",
            subtype="IBM_QRADAR",
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
        settings: dict[str, Any] | None = None,
        base_url: str = "http://qradar.sim",
    ) -> str:
        integration_id = f"qr-{uuid.uuid4().hex[:10]}"
        async with ingestor.db.session() as session:
            await ingestor.apply_integration(
                session, change(integration_id, settings=settings, base_url=base_url)
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


def change(
    integration_id: str,
    *,
    settings: dict[str, Any] | None = None,
    deleted: bool = False,
    base_url: str = "http://qradar.sim",
) -> IntegrationChanged:
    return IntegrationChanged(
        integration_id=integration_id,
        integration_type="SIEM",
        subtype="IBM_QRADAR",
        instance_name="QRadar test",
        status="active",
        deleted=deleted,
        base_url=base_url,
        credential_kind="API_KEY",
        settings=settings or {},
        changed_at=datetime.now(UTC),
    )


@pytest_asyncio.fixture(loop_scope="session")
async def harness(settings: Settings, db: Database, bus: Bus) -> AsyncIterator[Harness]:
    h = Harness(settings, db, bus, qradar_sim.create_app(seed=21, offenses=300, ariel_delay=0.05))
    yield h
    await h.cleanup(h.ingestor([]))


# ------------------------------------------------------------------------- simulator on a socket


@pytest.fixture(scope="module")
def socket_sim() -> Iterator[tuple[FastAPI, str]]:
    app = qradar_sim.create_app(seed=5, offenses=40, ariel_delay=0.05)
    with ServerThread(app) as server:
        yield app, f"http://127.0.0.1:{server.port}"


@pytest.fixture(scope="session")
def kit() -> Any:
    """The helpers above for test modules (they cannot import this conftest by name)."""
    from types import SimpleNamespace

    return SimpleNamespace(
        sample=sample,
        token_credentials=token_credentials,
        change=change,
        ServerThread=ServerThread,
        FAST_RETRY=FAST_RETRY,
        TOKEN=TOKEN,
        Tap=Tap,
        SAMPLES=SAMPLES,
        free_port=free_port,
    )
