"""Test-connection: reach QRadar with given credentials and say clearly what is wrong.

Probes, in order, each proving one thing the sync needs: ``system/about`` (reachable, TLS trusted,
credentials accepted, ``Version`` supported), the domains (configuration read), one offense with a
``filter`` (the offenses capability; a limited token fails here with ``permission``) and the Ariel
searches list (the Ariel capability the EPS and event-log families need). The first failure is
answered with its category (``soc_shared.probing``).
"""

from __future__ import annotations

from typing import Any

from soc_shared.probing import probe_connection
from soc_shared.sync import ConnectionTestRequest, ConnectionTestResult

from soc_siem_ingest.client import QRadarClient
from soc_siem_ingest.config import Settings
from soc_siem_ingest.resources import DOMAINS, client_for


async def _about(client: QRadarClient) -> dict[str, Any]:
    about = await client.about()
    return {
        "version": about.get("external_version") or about.get("release_name"),
        "release": about.get("release_name"),
    }


async def _domains(client: QRadarClient) -> None:
    await client.get_page(DOMAINS, 0, 1, params={"fields": "id"})


async def _offenses(client: QRadarClient) -> None:
    await client.get_page("siem/offenses", 0, 1, params={"fields": "id", "filter": "last_updated_time > 0"})


async def _ariel(client: QRadarClient) -> None:
    await client.http.request("GET", "ariel/searches", headers={"Range": "items=0-0"})


async def test_connection(
    request: ConnectionTestRequest, settings: Settings, client_options: dict[str, Any] | None = None
) -> ConnectionTestResult:
    return await probe_connection(
        request,
        lambda integration, credentials, options: client_for(integration, credentials, settings, **options),
        [("about", _about), ("domains", _domains), ("offenses", _offenses), ("ariel", _ariel)],
        options=client_options,
        success=lambda _client, found: f"connected to QRadar {found.get('version') or ''}".strip(),
    )
