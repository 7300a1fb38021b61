"""An offense synced, updated and closed reaches the tenant service's read model, which shows the
latest version (the tenant service's own consumers and API, over the real broker and database)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

tenant_main = pytest.importorskip("soc_tenant.main", reason="the tenant service is not in this checkout")


async def test_tenant_shows_the_latest_offense_version(harness: Any, tap: Any, tokens: Any) -> None:
    import soc_tenant
    from soc_shared.db import migrate
    from soc_tenant.config import Settings as TenantSettings

    settings = TenantSettings()
    migrate(settings, Path(soc_tenant.__file__).parent / "migrations")
    tenant = tenant_main.create_app(settings, verifier=tokens.verifier())
    if "/tenant/offenses/by-qradar-id/{integration_id}/{offense_id}/" not in tenant.openapi()["paths"]:
        pytest.skip("the tenant read model has no offense view yet")

    sim = harness.state
    ingestor = harness.ingestor(["offenses"])
    async with tenant.router.lifespan_context(tenant):
        integration = await harness.add_integration(ingestor, settings={"offense_backfill_days": 1})
        offense = sim.new_offense(domain_id=3)
        await harness.sync(ingestor, integration)
        sim.touch(offense, event_count=offense["event_count"] + 5, assigned_to="soc.l1.omar")
        await harness.sync(ingestor, integration)
        sim.close_offense(offense, 2, "soc.l1.omar")
        await harness.sync(ingestor, integration)
        await tap.settle()
        versions = sorted(
            e.data["version"]
            for e in tap.of(integration, "siem.offense.upserted")
            if e.data["offense_id"] == offense["id"]
        )
        assert len(versions) == 3

        url = f"/tenant/offenses/by-qradar-id/{integration}/{offense['id']}/"
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=tenant),
            base_url="http://tenant",
            headers=tokens.headers(kind="admin"),
        ) as client:
            body: dict[str, Any] = {}
            for _ in range(100):
                response = await client.get(url)
                if response.status_code == 200:
                    body = response.json()
                    if body.get("version") == versions[-1]:
                        break
                await asyncio.sleep(0.1)
    assert body.get("version") == versions[-1], body
    assert body["status"] == "CLOSED" and body["closing_reason"] == "False-Positive, Tuned"
    assert body["assigned_to"] == "soc.l1.omar" and body["domain_id"] == 3
