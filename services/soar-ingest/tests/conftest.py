"""soar-ingest test fixtures on the ingestor harness of ``soc_shared.testing.ingestor`` (the
session's real database and broker, the XSOAR simulator in-process or on a loopback socket, taps on
``soc.events``). soar-ingest's tests drive the whole service app (its note watermarks, action
runner and internal routes), so a test's replica is ``IngestorHarness.serve`` of soar-ingest's
``create_app``: ``await make_harness(sim)`` → a :class:`Replica`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import soc_soar_ingest
from fastapi import FastAPI
from soc_shared.bus import Bus
from soc_shared.db import Database, migrate
from soc_shared.sync import Ingestor
from soc_shared.testing import free_port
from soc_shared.testing.ingestor import IngestorHarness, IngestorKind
from soc_shared.vendor_http import RetryPolicy
from soc_simulators import xsoar
from soc_soar_ingest.config import Settings
from soc_soar_ingest.main import create_app
from soc_soar_ingest.resources import RESOURCES, client_for

V6 = {"credential_kind": "API_KEY", "secrets": {"api_key": xsoar.API_KEY}, "ca_pem": None}
V8 = {
    "credential_kind": "API_KEY",
    "secrets": {"api_key": xsoar.API_KEY_V8, "api_key_id": xsoar.API_KEY_V8_ID},
    "ca_pem": None,
}
SIM_URL = "http://xsoar.sim"
FAST_RETRY = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05)

KIND = IngestorKind(
    name="soar-ingest",
    vendor="xsoar",
    subtype="CORTEX_XSOAR",
    integration_type="SOAR",
    credential_kind="API_KEY",
    resources=RESOURCES,
    client_for=client_for,
    sim_url=SIM_URL,
    id_prefix="xsoar",
    tap_keys=("soar.#", "ingest.sync.reported"),
    default_credentials=lambda: V6,
    retry=FAST_RETRY,
)


@pytest.fixture(scope="session")
def ingestor_kind() -> IngestorKind:
    return KIND


@pytest.fixture(scope="session")
def settings() -> Settings:
    s = Settings(scheduler_enabled=False)
    migrate(s, Path(soc_soar_ingest.__file__).parent / "migrations")
    return s


@pytest.fixture(scope="module")
def socket_simulator() -> Callable[[], FastAPI]:
    return lambda: xsoar.create_app(seed=21)


@dataclass
class Replica:
    """One soar-ingest service (lifespan entered) on a harness's simulator."""

    harness: IngestorHarness
    app: FastAPI

    @property
    def ingestor(self) -> Ingestor:
        return self.app.state.ingestor

    @property
    def bus(self) -> Bus:
        return self.app.state.bus

    @property
    def credentials(self) -> dict[str, dict[str, Any]]:
        return self.harness.credentials

    async def add_integration(
        self,
        integration_id: str | None = None,
        *,
        credentials: dict[str, Any] | None = None,
        settings: dict[str, Any] | None = None,
        base_url: str | None = None,
    ) -> str:
        return await self.harness.add_integration(
            self.ingestor,
            integration_id=integration_id,
            credentials=credentials or V6,
            settings=settings,
            base_url=base_url,
        )

    async def sync(self, integration_id: str | None = None) -> None:
        """Run everything due now (after making ``integration_id``'s resources due) until idle."""
        await self.harness.sync(self.ingestor, integration_id)

    async def state(self, integration_id: str, resource: str) -> dict[str, Any]:
        return await self.harness.state_of(self.ingestor, integration_id, resource)

    async def sim_post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        async with self.harness.control() as client:
            response = await client.post(path, json=body or {})
            assert response.status_code < 300, response.text
            return response.json() if response.content else None

    async def sim_get(self, path: str) -> Any:
        async with self.harness.control() as client:
            response = await client.get(path)
            assert response.status_code == 200, response.text
            return response.json()

    async def clear_faults(self) -> None:
        async with self.harness.control() as client:
            await client.delete("/_sim/faults")


@pytest.fixture
async def make_harness(
    settings: Settings, db: Database, bus: Bus, tokens: Any
) -> AsyncIterator[Callable[..., Any]]:
    """``await make_harness(sim, **client_options)`` → a started :class:`Replica`; replicas of one
    simulator share its harness (credentials, integrations cleaned up after the test)."""
    harnesses: dict[int, IngestorHarness] = {}
    async with AsyncExitStack() as stack:

        async def make(
            sim: FastAPI,
            *,
            transport: httpx.AsyncBaseTransport | None = None,
            network: bool = False,
            **client_options: Any,
        ) -> Replica:
            """``network``: reach the vendor over real sockets (the integration's base URL)."""
            harness = harnesses.get(id(sim))
            if harness is None:
                harness = harnesses[id(sim)] = IngestorHarness(KIND, settings, db, bus, sim)
                stack.push_async_callback(harness.cleanup, harness.ingestor([]))
            app = await stack.enter_async_context(
                harness.serve(
                    create_app, tokens.verifier(), transport=transport, network=network, **client_options
                )
            )
            return Replica(harness, app)

        yield make


def of_type(events: list[dict[str, Any]], routing_key: str) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == f"soc.{routing_key}.v1"]


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on (it was free a moment ago)."""
    return free_port()
