"""What an analyst does on the QRadar console reaches the tenant service: an assignment, a
follow-up flag and a close — each moving only last_persisted_time on the console — show in the
offense detail (with the offense's notes), the offense list and the dashboard's offense widget
(the tenant service's own consumers and API, over the real broker and database)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

tenant_main = pytest.importorskip("soc_tenant.main", reason="the tenant service is not in this checkout")


async def test_console_actions_reach_the_offense_view_and_the_dashboard(
    harness: Any, tap: Any, tokens: Any
) -> None:
    import soc_tenant
    from soc_shared.db import Database, migrate
    from soc_tenant.config import Settings as TenantSettings
    from soc_tenant.readmodel.testing import add_company, eventually, map_qradar

    settings = TenantSettings()
    migrate(settings, Path(soc_tenant.__file__).parent / "migrations")
    tenant = tenant_main.create_app(settings, verifier=tokens.verifier())
    owner = Database.from_settings(settings)

    sim = harness.state
    ingestor = harness.ingestor(["offenses", "offense_notes"])
    try:
        async with tenant.router.lifespan_context(tenant):
            integration = await harness.add_integration(ingestor, settings={"offense_backfill_days": 1})
            company = await add_company(owner, f"console-actions-{integration[:8]}")
            await map_qradar(owner, company, integration, 3)
            offense = sim.new_offense(domain_id=3)
            sim.add_note(offense, "first look: scanner traffic?", "soc.l1.sara")
            await harness.sync(ingestor, integration)
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=tenant),
                base_url="http://tenant",
                headers=tokens.headers(kind="admin"),
            ) as client:
                url = f"/tenant/offenses/by-qradar-id/{integration}/{offense['id']}/"

                async def detail(**expected: Any) -> dict[str, Any] | None:
                    response = await client.get(url)
                    if response.status_code != 200:
                        return None
                    body: dict[str, Any] = response.json()
                    return body if all(body.get(k) == v for k, v in expected.items()) else None

                async def widget() -> dict[str, Any]:
                    response = await client.get("/tenant/dashboard/", params={"company_id": company})
                    assert response.status_code == 200, response.text
                    return dict(response.json()["offenses"])

                first = await eventually(lambda: detail(status="OPEN"))
                assert first["assigned_to"] is None and first["follow_up"] is False
                assert [n["text"] for n in first["notes"]] == ["first look: scanner traffic?"]
                before = await widget()
                assert before["open"] >= 1

                sim.analyst_change(offense, assigned_to="soc.l1.omar")
                await harness.sync(ingestor, integration)
                await eventually(lambda: detail(assigned_to="soc.l1.omar"))
                listed = await client.get(
                    "/tenant/offenses/", params={"assigned_to": "soc.l1.omar", "company_id": company}
                )
                assert offense["id"] in [o["offense_id"] for o in listed.json()["items"]]

                sim.analyst_change(offense, follow_up=True)
                await harness.sync(ingestor, integration)
                await eventually(lambda: detail(follow_up=True))

                sim.add_note(offense, "customer confirms: pen test", "soc.l1.omar")
                sim.close_offense(offense, 2, "soc.l1.omar")
                await harness.sync(ingestor, integration)
                closed = await eventually(lambda: detail(status="CLOSED"))

                async def widget_after_close() -> dict[str, Any] | None:
                    now = await widget()
                    return now if now["open"] == before["open"] - 1 else None

                after = await eventually(widget_after_close)
    finally:
        await owner.dispose()
    # the console never moved last_updated_time for any of the three actions
    assert offense["last_updated_time"] < offense["last_persisted_time"]
    assert closed["closing_reason"] == "False-Positive, Tuned" and closed["closing_user"] == "soc.l1.omar"
    assert closed["assigned_to"] == "soc.l1.omar" and closed["follow_up"] is True and closed["domain_id"] == 3
    assert [n["text"] for n in closed["notes"]] == [
        "first look: scanner traffic?",
        "customer confirms: pen test",
    ]
    assert after["by_status"].get("CLOSED", 0) == before["by_status"].get("CLOSED", 0) + 1
