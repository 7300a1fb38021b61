"""The QRadar resources this ingestor syncs, declared as data: name, interval, fetch."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from soc_shared.events import make_event
from soc_shared.sync import Page, Resource, SyncContext
from soc_siem_ingest import normalize
from soc_siem_ingest.client import QRadarClient


async def fetch_domains(ctx: SyncContext, cursor: dict[str, Any] | None) -> AsyncIterator[Page]:
    client: QRadarClient = ctx.client
    async for raw_page in client.pages("config/domain_management/domains"):
        events = []
        for raw in raw_page:
            d = normalize.domain(raw)
            events.append(make_event("siem.domain.upserted", d, source=ctx.source, subject=str(d.domain_id),
                                     integration_id=ctx.integration_id, vendor_tenant=d.domain_id))
        yield Page(events=events, cursor=None)


RESOURCES = [
    Resource("domains", interval_seconds=300, fetch=fetch_domains, description="QRadar domains (the seed's tenants)"),
]


def client_for(integration: dict[str, Any], credentials: dict[str, Any], settings: Any, **options: Any) -> QRadarClient:
    """Build a client from an integration row and the credentials the tenant service handed over."""
    secrets = credentials.get("secrets") or {}
    return QRadarClient(
        integration["base_url"], integration_id=str(integration["id"]),
        token=secrets.get("api_key"), username=secrets.get("username"), password=secrets.get("password"),
        api_version=(integration.get("settings") or {}).get("api_version", settings.qradar_api_version),
        verify_tls=integration.get("verify_tls", True), ca_pem=credentials.get("ca_pem"),
        page_size=settings.page_size, **options,
    )
