"""threatintel test fixtures: the ingestor harness of ``soc_shared.testing.ingestor`` (the session's
real database and broker, the Cyware simulator in-process or on a loopback socket, Ingestor
replicas wired to it, a tap on the bus) for Cyware, whose integrations belong to a company."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import soc_threatintel
from fastapi import FastAPI
from soc_shared.db import migrate
from soc_shared.sync import Ingestor
from soc_shared.testing import EventTap, ServerThread, free_port
from soc_shared.testing.ingestor import FAST_RETRY, IngestorHarness, IngestorKind, integration_change
from soc_simulators import cyware as cyware_sim
from soc_threatintel.config import Settings
from soc_threatintel.resources import RESOURCES, client_for

FIXTURES = Path(__file__).resolve().parent / "fixtures"
ACME = ("acme-access", "acme-secret")
GLOBEX = ("globex-access", "globex-secret")
SIM_URL = "http://cyware.sim"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def cyware_credentials(tenant: tuple[str, str] = ACME) -> dict[str, Any]:
    return {
        "credential_kind": "SECRET_KEY_ACCESS_KEY",
        "secrets": {"access_key": tenant[0], "secret_key": tenant[1]},
        "ca_pem": None,
    }


KIND = IngestorKind(
    name="threatintel",
    vendor="cyware",
    subtype="CYWARE",
    integration_type="THREAT_INTELLIGENCE",
    credential_kind="SECRET_KEY_ACCESS_KEY",
    resources=RESOURCES,
    client_for=client_for,
    sim_url=SIM_URL,
    id_prefix="cy",
    tap_keys=("ti.#", "ingest.sync.reported"),
    default_credentials=cyware_credentials,
    instance_name="Cyware test",
    company_id="company-acme",
)


def change(integration_id: str, **kwargs: Any) -> Any:
    return integration_change(KIND, integration_id, **kwargs)


class Tap(EventTap):
    def alerts(self, integration_id: str) -> list[str]:
        """Short ids of the ti.alert.upserted events of one integration, in arrival order."""
        return [e.data["short_id"] for e in self.of(integration_id, "ti.alert.upserted")]


class Harness(IngestorHarness):
    """The ingestor harness; an integration reads one Cyware tenant (``tenant``: its keys)."""

    def tenant(self, access_id: str = ACME[0]) -> cyware_sim.TenantData:
        return self.state.tenants[access_id]

    async def add_integration(  # type: ignore[override]
        self, ingestor: Ingestor, *, tenant: tuple[str, str] = ACME, **change: Any
    ) -> str:
        return await super().add_integration(ingestor, credentials=cyware_credentials(tenant), **change)


@pytest.fixture(scope="session")
def ingestor_kind() -> IngestorKind:
    return KIND


@pytest.fixture(scope="session")
def harness_class() -> type[IngestorHarness]:
    return Harness


@pytest.fixture(scope="session")
def tap_class() -> type[EventTap]:
    return Tap


@pytest.fixture(scope="session")
def settings() -> Settings:
    s = Settings(scheduler_enabled=False)
    migrate(s, Path(soc_threatintel.__file__).parent / "migrations")
    return s


@pytest.fixture
def simulator() -> FastAPI:
    return cyware_sim.create_app(seed=21, alerts_per_tenant=120)


@pytest.fixture(scope="module")
def socket_simulator() -> Any:
    return lambda: cyware_sim.create_app(seed=5, alerts_per_tenant=40)


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
