"""Simulator → siem-ingest → RabbitMQ → tenant, with the tenant's consumers stopped while the
ingestor publishes: once they are back, every event is there."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import soc_siem_ingest
import soc_tenant
from soc_shared.db import migrate
from soc_shared.events import IntegrationChanged
from soc_siem_ingest.config import Settings as SiemSettings
from soc_siem_ingest.main import create_app as create_siem_app
from soc_simulators import qradar as qradar_sim
from soc_tenant import readmodel
from soc_tenant.config import Settings as TenantSettings
from soc_tenant.main import create_app as create_tenant_app


async def test_stopped_tenant_consumer_finds_every_event_after_restart(tokens):
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
        while await ingestor.run_due_once():  # ...while siem-ingest polls and publishes
            pass
        states = await ingestor.states(integration_id)
        assert states and all(s["last_error"] is None for s in states), states

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
