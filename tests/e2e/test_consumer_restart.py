"""Simulator → siem-ingest → RabbitMQ → tenant, with the tenant's consumers stopped while the
ingestor publishes: once they are back, every event is there."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import soc_siem_ingest
import soc_tenant
import sqlalchemy as sa
from soc_shared.db import migrate
from soc_shared.events import IntegrationChanged
from soc_shared.sync import sync_state_table
from soc_siem_ingest.config import Settings as SiemSettings
from soc_siem_ingest.main import create_app as create_siem_app
from soc_simulators import qradar as qradar_sim
from soc_tenant import readmodel
from soc_tenant.config import Settings as TenantSettings
from soc_tenant.main import create_app as create_tenant_app

from .conftest import Suite


@pytest.fixture
def no_other_siem_ingest(suite: Suite) -> Iterator[None]:
    """The suite's own siem-ingest shares this database: its scheduler would claim this test's rows and
    fail them (the integration exists only here, not in the tenant it asks for credentials)."""
    suite.stop("siem-ingest")
    try:
        yield
    finally:
        suite.service("siem-ingest")


async def test_stopped_tenant_consumer_finds_every_event_after_restart(tokens, no_other_siem_ingest):
    tenant_settings, siem_settings = TenantSettings(), SiemSettings(scheduler_enabled=False)
    migrate(tenant_settings, Path(soc_tenant.__file__).parent / "migrations")
    migrate(siem_settings, Path(soc_siem_ingest.__file__).parent / "migrations")

    sim = qradar_sim.create_app(seed=11)
    sim_transport = httpx.ASGITransport(app=sim)

    async def credentials(_: str) -> dict:
        return {"credential_kind": "API_KEY", "secrets": {"api_key": "qradar-demo-token"}, "ca_pem": None}

    tenant = create_tenant_app(tenant_settings, verifier=tokens.verifier())
    siem = create_siem_app(
        siem_settings,
        verifier=tokens.verifier(),
        credentials=credentials,
        client_options={"transport": sim_transport},
    )
    admin = tokens.headers(kind="admin")
    integration_id = f"e2e-{uuid.uuid4().hex[:8]}"

    async with tenant.router.lifespan_context(tenant), siem.router.lifespan_context(siem):
        await readmodel.stop(tenant)  # the tenant's consumers are away...
        ingestor = siem.state.ingestor
        async with ingestor.db.session() as session:
            await ingestor.apply_integration(
                session,
                IntegrationChanged(
                    integration_id=integration_id,
                    integration_type="SIEM",
                    subtype="IBM_QRADAR",
                    instance_name="restart test",
                    status="active",
                    base_url="http://qradar.sim",
                    credential_kind="API_KEY",
                    changed_at=datetime.now(UTC),
                ),
            )
        # ...while siem-ingest polls and publishes. The test database holds other tests'
        # integrations too: their rows are parked (and put back below) so only this one is run.
        s_t = sync_state_table
        async with ingestor.db.session() as session:
            parked = (
                await session.execute(
                    sa.select(s_t.c.integration_id, s_t.c.resource, s_t.c.next_run_at).where(
                        s_t.c.integration_id != integration_id
                    )
                )
            ).all()
            await session.execute(
                sa.update(s_t)
                .where(s_t.c.integration_id != integration_id)
                .values(next_run_at=sa.func.now() + sa.text("interval '1 day'"))
            )
        deadline = asyncio.get_running_loop().time() + 240
        while True:
            states = await ingestor.states(integration_id)
            now = datetime.now(UTC)
            ran = [s for s in states if s["enabled"]]
            if ran and all((s["last_success_at"] or s["last_error"]) and s["next_run_at"] > now for s in ran):
                break
            assert asyncio.get_running_loop().time() < deadline, states
            if not await ingestor.run_due_once():
                await asyncio.sleep(0.1)
        async with ingestor.db.session() as session:
            for row in parked:
                await session.execute(
                    sa.update(s_t)
                    .where(s_t.c.integration_id == row.integration_id, s_t.c.resource == row.resource)
                    .values(next_run_at=row.next_run_at)
                )
        assert states and all(s["last_error"] is None for s in states), [
            (s["resource"], s["last_error"]) for s in states if s["last_error"]
        ]

        async with httpx.AsyncClient(transport=sim_transport, base_url="http://qradar.sim") as sim_client:
            r = await sim_client.get(
                "/api/config/domain_management/domains",
                headers={"SEC": "qradar-demo-token", "Version": "16.0"},
            )
            expected = {d["id"] for d in r.json()}
        assert expected

        await readmodel.start(tenant)  # back: the queue kept everything
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=tenant), base_url="http://tenant"
        ) as client:
            got: set[int] = set()
            for _ in range(100):
                r = await client.get("/tenant/qradar-tenants/", params={"limit": 500}, headers=admin)
                assert r.status_code == 200, r.text
                got = {d["domain_id"] for d in r.json()["items"] if d["integration_id"] == integration_id}
                if got >= expected:
                    break
                await asyncio.sleep(0.1)
        assert got == expected
