"""Test-connection: reach ServiceDesk Plus with given credentials and say clearly what is wrong.

Probes, in order, each proving one thing the ingestor needs: the MSP accounts (reachable, TLS
trusted, credentials and auth style accepted, MSP edition), one request (the requests module is
readable) and a search on the configured incident-id field (the field exists, so tickets can be
linked to incidents and found again after a crash). The first failure is answered with its
category (``soc_shared.probing``).
"""

from __future__ import annotations

from typing import Any

from soc_shared.probing import probe_connection
from soc_shared.sync import ConnectionTestRequest, ConnectionTestResult
from soc_shared.vendor_http import VendorError

from soc_itsm_ingest.client import SdpClient
from soc_itsm_ingest.config import Settings
from soc_itsm_ingest.resources import client_for, options_of

# A value no incident has: the search must be accepted, not find anything.
PROBE_INCIDENT_ID = "soc-portal-connection-test"


async def _accounts(client: SdpClient) -> dict[str, Any]:
    answer = await client.list_page("accounts", "accounts", {"row_count": 100, "start_index": 1})
    return {
        "accounts": len(answer.records) + (1 if answer.has_more_rows else 0),
        "more_accounts": answer.has_more_rows,
    }


async def _requests(client: SdpClient) -> None:
    await client.list_page(
        "requests",
        "requests",
        {"row_count": 1, "start_index": 1, "sort_field": "last_updated_time", "sort_order": "desc"},
    )


async def _incident_id_field(client: SdpClient) -> None:
    await client.find_requests(options_of(client).incident_id_field, PROBE_INCIDENT_ID, limit=1)


def _failure(client: SdpClient, check: str, exc: VendorError) -> str:
    if check == "incident_id_field":
        return f"the incident-id field {options_of(client).incident_id_field!r} cannot be searched: {exc.message}"
    return exc.message


def _success(client: SdpClient, found: dict[str, Any]) -> str:
    more = "+" if found.pop("more_accounts", False) else ""
    found["auth_style"] = client.auth_style
    return f"connected to ServiceDesk Plus ({found.get('accounts', 0)}{more} accounts)"


async def test_connection(
    request: ConnectionTestRequest, settings: Settings, client_options: dict[str, Any] | None = None
) -> ConnectionTestResult:
    return await probe_connection(
        request,
        lambda integration, credentials, options: client_for(integration, credentials, settings, **options),
        [("accounts", _accounts), ("requests", _requests), ("incident_id_field", _incident_id_field)],
        options=client_options,
        success=_success,
        detail_keys=("field",),
        failure_message=_failure,
    )
