"""Fixtures for soar-ingest: the XSOAR simulator in-process (ASGI) or on a loopback socket, the
service app against the session's real PostgreSQL and RabbitMQ, and a tap on ``soc.events``."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import soc_soar_ingest
import sqlalchemy as sa
from fastapi import FastAPI
from soc_shared.bus import Bus
from soc_shared.db import migrate
from soc_shared.events import IntegrationChanged
from soc_shared.sync import Ingestor, integration_table, sync_state_table
from soc_shared.testing import ServerThread, free_port
from soc_shared.vendor_http import RetryPolicy
from soc_simulators import xsoar
from soc_soar_ingest.config import Settings
from soc_soar_ingest.main import create_app
from soc_soar_ingest.state import note_mark_table

V6 = {"credential_kind": "API_KEY", "secrets": {"api_key": xsoar.API_KEY}, "ca_pem": None}
V8 = {
    "credential_kind": "API_KEY",
    "secrets": {"api_key": xsoar.API_KEY_V8, "api_key_id": xsoar.API_KEY_V8_ID},
    "ca_pem": None,
}
SIM_URL = "http://xsoar.sim"
FAST_RETRY = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05)


@pytest.fixture(scope="session")
def settings() -> Settings:
    s = Settings(scheduler_enabled=False)
    migrate(s, Path(soc_soar_ingest.__file__).parent / "migrations")
    return s


@dataclass
class Harness:
    """One soar-ingest app (lifespan entered) reading one simulator, with static credentials."""

    app: FastAPI
    sim: FastAPI
    credentials: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def ingestor(self) -> Ingestor:
        return self.app.state.ingestor

    @property
    def bus(self) -> Bus:
        return self.app.state.bus

    async def add_integration(
        self,
        integration_id: str | None = None,
        *,
        credentials: dict[str, Any] | None = None,
        settings: dict[str, Any] | None = None,
        base_url: str = SIM_URL,
    ) -> str:
        integration_id = integration_id or f"xsoar-{uuid.uuid4().hex[:8]}"
        self.credentials[integration_id] = credentials or V6
        async with self.ingestor.db.session() as session:
            await self.ingestor.apply_integration(
                session,
                IntegrationChanged(
                    integration_id=integration_id,
                    integration_type="SOAR",
                    subtype="CORTEX_XSOAR",
                    instance_name=f"test {integration_id}",
                    status="active",
                    base_url=base_url,
                    credential_kind="API_KEY",
                    settings=settings or {},
                    changed_at=datetime.now(UTC),
                ),
            )
        return integration_id

    async def sync(self, integration_id: str | None = None) -> int:
        """Run everything due now (after making ``integration_id``'s resources due) until idle."""
        if integration_id is not None:
            await self.ingestor.trigger(integration_id)
        runs = 0
        while n := await self.ingestor.run_due_once():
            runs += n
        return runs

    async def state(self, integration_id: str, resource: str) -> dict[str, Any]:
        rows = [r for r in await self.ingestor.states(integration_id) if r["resource"] == resource]
        assert rows, f"no sync state for {integration_id}/{resource}"
        return rows[0]

    async def sim_post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=self.sim), base_url=SIM_URL) as client:
            response = await client.post(path, json=body or {})
            assert response.status_code < 300, response.text
            return response.json() if response.content else None

    async def sim_get(self, path: str) -> Any:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=self.sim), base_url=SIM_URL) as client:
            response = await client.get(path)
            assert response.status_code == 200, response.text
            return response.json()

    async def clear_faults(self) -> None:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=self.sim), base_url=SIM_URL) as client:
            await client.delete("/_sim/faults")


async def wipe_state(harness: Harness) -> None:
    """Tests share the session database: start each from no integrations at all."""
    async with harness.ingestor.db.session() as session:
        for table in (note_mark_table, sync_state_table, integration_table):
            await session.execute(sa.delete(table))


@pytest.fixture
async def make_harness(settings: Settings, tokens: Any) -> AsyncIterator[Callable[..., Any]]:
    """``await make_harness(sim)`` → a started Harness; several may share one simulator and DB."""
    stack: list[Any] = []

    async def make(
        sim: FastAPI,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        network: bool = False,
        retry: RetryPolicy = FAST_RETRY,
        **client_options: Any,
    ) -> Harness:
        """``network``: reach the vendor over real sockets (the integration's base URL), not in-process."""
        holder: dict[str, Harness] = {}

        async def credentials(integration_id: str) -> dict[str, Any]:
            return holder["h"].credentials[integration_id]

        if not network:
            client_options["transport"] = transport or httpx.ASGITransport(app=sim)
        app = create_app(
            settings,
            verifier=tokens.verifier(),
            credentials=credentials,
            client_options={"retry": retry, **client_options},
        )
        context = app.router.lifespan_context(app)
        await context.__aenter__()
        stack.append(context)
        harness = holder["h"] = Harness(app=app, sim=sim)
        if len(stack) == 1:
            await wipe_state(harness)
        return harness

    yield make
    for context in reversed(stack):
        await context.__aexit__(None, None, None)


class EventTap:
    """A private queue bound to ``soc.events``: every event published while it listens."""

    def __init__(self, bus: Bus, keys: tuple[str, ...] = ("soar.#", "ingest.sync.reported")) -> None:
        self.bus = bus
        self.keys = keys
        self.queue: Any = None
        self.channel: Any = None
        self.received: list[dict[str, Any]] = []

    async def __aenter__(self) -> EventTap:
        self.channel = await self.bus.channel(prefetch=2000)
        self.queue = await self.channel.declare_queue(exclusive=True, auto_delete=True)
        for key in self.keys:
            await self.queue.bind("soc.events", routing_key=key)
        await self.queue.consume(self._on_message, no_ack=True)
        return self

    async def _on_message(self, message: Any) -> None:
        # One event, or a CloudEvents batch of them (application/cloudevents-batch+json).
        body = json.loads(message.body)
        self.received.extend(body if isinstance(body, list) else [body])

    async def __aexit__(self, *exc: object) -> None:
        await self.channel.close()

    async def drain(self) -> list[dict[str, Any]]:
        """Everything published so far, in arrival order (publishes are confirmed, so a finished
        sync is already queued: wait until the queue is empty and deliveries have stopped)."""
        stable = 0
        while stable < 3:
            before = len(self.received)
            await asyncio.sleep(0.02)
            waiting = (
                await self.channel.declare_queue(self.queue.name, passive=True)
            ).declaration_result.message_count
            stable = stable + 1 if waiting == 0 and len(self.received) == before else 0
        events, self.received = self.received, []
        return events


@pytest.fixture
async def tap_factory() -> AsyncIterator[Callable[[Bus], Any]]:
    taps: list[EventTap] = []

    async def make(bus: Bus, keys: tuple[str, ...] = ("soar.#", "ingest.sync.reported")) -> EventTap:
        tap = EventTap(bus, keys)
        await tap.__aenter__()
        taps.append(tap)
        return tap

    yield make
    for tap in taps:
        await tap.__aexit__(None, None, None)


def of_type(events: list[dict[str, Any]], routing_key: str) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == f"soc.{routing_key}.v1"]


# ------------------------------------------------------------------------------- socket simulator


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on (it was free a moment ago)."""
    return free_port()


@dataclass
class SocketSim:
    app: FastAPI
    url: str


@pytest.fixture(scope="module")
def socket_sim() -> Iterator[SocketSim]:
    """The simulator behind a real loopback socket (timeouts, refused connections and TLS are real)."""
    app = xsoar.create_app(seed=21)
    with ServerThread(app) as server:
        yield SocketSim(app=app, url=f"http://127.0.0.1:{server.port}")
