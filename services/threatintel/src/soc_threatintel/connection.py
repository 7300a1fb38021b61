"""Test-connection: reach Cyware CSAP with given credentials and say clearly what is wrong.

Probes, in order, each proving one thing the sync needs: one alert of ``list_alert`` (reachable,
TLS trusted, the request signature accepted — right access id and secret key, and our clock within
the server's window — and the alerts permission), then the reference lists the other resources
read: tags, recipient groups, categories and additional fields. The first failure is answered with
its category (``soc_shared.probing``; ``clock`` when our clock is outside the server's window).
"""

from __future__ import annotations

from typing import Any

from soc_shared.probing import Probe, probe_connection
from soc_shared.sync import ConnectionTestRequest, ConnectionTestResult

from soc_threatintel.client import CywareClient
from soc_threatintel.config import Settings
from soc_threatintel.resources import client_for


async def _alerts(client: CywareClient) -> dict[str, Any]:
    _, count, _ = await client.list_alerts(page=1, page_size=1)
    return {"alert_count": count}


async def _tags(client: CywareClient) -> None:
    await client.tags()


async def _recipient_groups(client: CywareClient) -> None:
    await client.recipient_groups()


async def _categories(client: CywareClient) -> None:
    await client.categories()


async def _additional_fields(client: CywareClient) -> None:
    await client.additional_fields()


PROBES: list[Probe] = [
    ("alerts", _alerts),
    ("tags", _tags),
    ("recipient_groups", _recipient_groups),
    ("categories", _categories),
    ("additional_fields", _additional_fields),
]
CHECKS = tuple(name for name, _ in PROBES)


def _success(_client: CywareClient, found: dict[str, Any]) -> str:
    count = found.get("alert_count")
    return "connected to Cyware CSAP" + (f" ({count} alerts visible)" if count is not None else "")


async def test_connection(
    request: ConnectionTestRequest, settings: Settings, client_options: dict[str, Any] | None = None
) -> ConnectionTestResult:
    return await probe_connection(
        request,
        lambda integration, credentials, options: client_for(integration, credentials, settings, **options),
        PROBES,
        options=client_options,
        success=_success,
        detail_keys=("reason", "server_time", "our_time", "clock_skew_seconds"),
    )
