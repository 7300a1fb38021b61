"""itsm-ingest test fixtures: the real database and broker of the session, the ServiceDesk Plus
simulator in-process (ASGI) or on a loopback socket, an Ingestor and a TicketService wired to them,
and a tap on the bus."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import pytest_asyncio
import soc_itsm_ingest
from fastapi import FastAPI
from soc_itsm_ingest.config import Settings
from soc_itsm_ingest.mapping import StaticTicketRouting, TicketRouting
from soc_itsm_ingest.resources import RESOURCES, client_for
from soc_itsm_ingest.tickets import TicketService
from soc_shared.bus import Bus
from soc_shared.db import Database, migrate
from soc_shared.events import IncidentSeverity, IncidentStatus, IntegrationChanged, SoarIncident
from soc_shared.sync import Ingestor
from soc_shared.testing import VENDOR_SAMPLES, EventTap, ServerThread, free_port
from soc_shared.vendor_http import RetryPolicy
from soc_simulators import sdp as sdp_sim
from soc_simulators import zoho as zoho_sim

SAMPLES = VENDOR_SAMPLES / "sdp"
TOKEN = sdp_sim.AUTH_TOKEN
UDF = f"udf_fields.{sdp_sim.UDF_SOAR_ID}"
FAST_RETRY = RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05, max_retry_after=2)
SOAR_INTEGRATION = "soar-test"
ACME = sdp_sim.ACCOUNTS[0]  # the SDP account of the XSOAR account ACME.soar_account


def sample(name: str) -> Any:
    return json.loads((SAMPLES / name).read_text())


def oauth_credentials(**secrets: str) -> dict[str, Any]:
    """ServiceDesk Plus Cloud credentials: the simulated Zoho client and its refresh token."""
    base = {
        "client_id": zoho_sim.CLIENT_ID,
        "client_secret": zoho_sim.CLIENT_SECRET,
        "refresh_token": zoho_sim.REFRESH_TOKEN,
    }
    return {"credential_kind": "OAUTH_CLIENT", "secrets": {**base, **secrets}, "ca_pem": None}


def token_credentials(token: str = TOKEN) -> dict[str, Any]:
    return {"credential_kind": "API_KEY", "secrets": {"api_key": token}, "ca_pem": None}


def incident(
    incident_id: str | None = None,
    *,
    priority: str = "P1",
    account: str | None = None,
    status: IncidentStatus = IncidentStatus.ACTIVE,
    version: int = 1,
    name: str = "Brute force on VPN",
) -> SoarIncident:
    now = datetime.now(UTC)
    return SoarIncident(
        incident_id=incident_id or f"inc-{uuid.uuid4().hex[:10]}",
        account=account or ACME.soar_account,
        name=name,
        status=status,
        severity=IncidentSeverity.HIGH,
        created=now,
        modified=now,
        priority=priority,  # type: ignore[arg-type]
        rules=["VPN brute force"],
        source_ips=["203.0.113.7"],
        configuration_item="vpn-gw-01",
        version=version,
    )


@pytest.fixture(scope="session")
def settings() -> Settings:
    s = Settings(scheduler_enabled=False, tickets_enabled=False)
    migrate(s, Path(soc_itsm_ingest.__file__).parent / "migrations")
    return s


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def db(settings: Settings) -> AsyncIterator[Database]:
    database = Database.from_settings(settings)
    yield database
    await database.dispose()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def bus(settings: Settings) -> AsyncIterator[Bus]:
    b = Bus(settings.amqp_url.get_secret_value(), service="itsm-ingest-tests")
    await b.connect()
    yield b
    await b.close()


class Tap(EventTap):
    """The shared event tap under this service's queue-name prefix."""

    def __init__(self) -> None:
        super().__init__("itsm-tests")


@pytest_asyncio.fixture(loop_scope="session")
async def tap(bus: Bus) -> AsyncIterator[Tap]:
    t = await Tap().start(bus, ["itsm.#", "ingest.sync.reported"])
    yield t
    await t.stop()


def change(
    integration_id: str,
    *,
    settings: dict[str, Any] | None = None,
    deleted: bool = False,
    base_url: str = "http://sdp.sim",
) -> IntegrationChanged:
    return IntegrationChanged(
        integration_id=integration_id,
        integration_type="ITSM",
        subtype="MANAGEENGINE_SDP",
        instance_name="SDP test",
        status="active",
        deleted=deleted,
        base_url=base_url,
        credential_kind="API_KEY",
        settings=settings or {},
        changed_at=datetime.now(UTC),
    )


@dataclass
class Harness:
    """One simulator, Ingestor / TicketService replicas, integrations cleaned up afterwards."""

    settings: Settings
    db: Database
    bus: Bus
    sim: FastAPI
    integrations: list[str] = field(default_factory=list)
    credentials: dict[str, Any] = field(default_factory=token_credentials)

    @property
    def state(self) -> Any:
        return self.sim.state.sim

    @property
    def board(self) -> Any:
        return self.sim.state.faults

    def transport(self) -> httpx.AsyncBaseTransport:
        return httpx.ASGITransport(app=self.sim)

    def control(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=self.transport(), base_url="http://sdp.sim")

    def ingestor(
        self,
        resources: Sequence[str] | None = None,
        *,
        bus: Bus | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        concurrency: int = 4,
        **client_options: Any,
    ) -> Ingestor:
        chosen = [r for r in RESOURCES if resources is None or r.name in resources]
        options = {"retry": FAST_RETRY, "transport": transport or self.transport(), **client_options}

        async def credentials(_: str) -> dict[str, Any]:
            return self.credentials

        return Ingestor(
            name="itsm-ingest",
            vendor="sdp",
            subtype="MANAGEENGINE_SDP",
            db=self.db,
            bus=bus or self.bus,
            resources=chosen,
            client_factory=lambda i, c: client_for(i, c, self.settings, **options),
            credentials=credentials,
            concurrency=concurrency,
            lease_seconds=60,
        )

    def tickets(
        self,
        routing: TicketRouting,
        *,
        ingestor: Ingestor | None = None,
        cls: type[TicketService] = TicketService,
        **kwargs: Any,
    ) -> TicketService:
        kwargs.setdefault("lease_seconds", 60)
        return cls(ingestor=ingestor or self.ingestor([]), routing=routing, **kwargs)

    def routing(
        self,
        integration_id: str,
        *,
        account_id: str = ACME.id,
        priorities: Sequence[str] = ("P1", "P2"),
        company_id: str = "company-acme",
    ) -> StaticTicketRouting:
        return StaticTicketRouting.from_json(
            [
                {
                    "soar_integration_id": SOAR_INTEGRATION,
                    "account": ACME.soar_account,
                    "company_id": company_id,
                    "itsm_integration_id": integration_id,
                    "account_id": account_id,
                    "policy": {"priorities": list(priorities)},
                }
            ]
        )

    async def add_integration(
        self,
        ingestor: Ingestor,
        *,
        settings: dict[str, Any] | None = None,
        integration_id: str | None = None,
        base_url: str = "http://sdp.sim",
    ) -> str:
        integration_id = integration_id or f"sdp-{uuid.uuid4().hex[:10]}"
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

    def tickets_for(self, incident_id: str) -> list[str]:
        """Request ids in the simulator whose incident-id field holds ``incident_id``."""
        return [
            rec.id
            for rec in list(self.state.records.values())
            if rec.doc["udf_fields"].get(sdp_sim.UDF_SOAR_ID) == incident_id
        ]

    async def cleanup(self, ingestor: Ingestor) -> None:
        for integration_id in self.integrations:
            async with ingestor.db.session() as session:
                await ingestor.apply_integration(session, change(integration_id, deleted=True))


@pytest_asyncio.fixture(loop_scope="session")
async def harness(settings: Settings, db: Database, bus: Bus) -> AsyncIterator[Harness]:
    h = Harness(settings, db, bus, sdp_sim.create_app(seed=21, requests=300, xsoar_incidents=200))
    yield h
    await h.cleanup(h.ingestor([]))


# ------------------------------------------------------------------------- simulator on a socket


@pytest.fixture(scope="module")
def socket_sim() -> Iterator[tuple[FastAPI, str]]:
    app = sdp_sim.create_app(seed=5, requests=20, xsoar_incidents=50)
    with ServerThread(app) as server:
        yield app, f"http://127.0.0.1:{server.port}"


@pytest.fixture(scope="session")
def kit() -> Any:
    """The helpers above for test modules (they cannot import this conftest by name)."""
    return SimpleNamespace(
        sample=sample,
        token_credentials=token_credentials,
        oauth_credentials=oauth_credentials,
        change=change,
        incident=incident,
        ServerThread=ServerThread,
        FAST_RETRY=FAST_RETRY,
        TOKEN=TOKEN,
        UDF=UDF,
        Tap=Tap,
        SAMPLES=SAMPLES,
        SOAR_INTEGRATION=SOAR_INTEGRATION,
        ACME=ACME,
        free_port=free_port,
    )
