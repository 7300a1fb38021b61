"""Test-connection: reach ServiceDesk Plus with given credentials and say clearly what is wrong.

Probes, in order, each proving one thing the ingestor needs: the MSP accounts (reachable, TLS
trusted, credentials and auth style accepted, MSP edition), one request (the requests module is
readable) and a search on the configured incident-id field (the field exists, so tickets can be
linked to incidents and found again after a crash). The first failure is answered with its
category (unreachable, tls, timeout, bad_credentials, permission, not_found, invalid_request,
rate_limited, server_error, bad_response).
"""

from __future__ import annotations

from typing import Any

import httpx
from soc_shared.sync import ConnectionTestRequest, ConnectionTestResult
from soc_shared.vendor_http import RetryPolicy, VendorError

from soc_itsm_ingest.client import SdpClient
from soc_itsm_ingest.config import Settings
from soc_itsm_ingest.resources import client_for, options_of

TEST_TIMEOUT = httpx.Timeout(15.0, connect=5.0, pool=5.0)
# A value no incident has: the search must be accepted, not find anything.
PROBE_INCIDENT_ID = "soc-portal-connection-test"


async def _probe(client: SdpClient, check: str, state: dict[str, Any]) -> None:
    if check == "accounts":
        answer = await client.list_page("accounts", "accounts", {"row_count": 100, "start_index": 1})
        state["accounts"] = len(answer.records) + (1 if answer.has_more_rows else 0)
        state["more_accounts"] = answer.has_more_rows
    elif check == "requests":
        await client.list_page(
            "requests",
            "requests",
            {"row_count": 1, "start_index": 1, "sort_field": "last_updated_time", "sort_order": "desc"},
        )
    elif check == "incident_id_field":
        await client.find_requests(options_of(client).incident_id_field, PROBE_INCIDENT_ID, limit=1)


async def test_connection(
    request: ConnectionTestRequest, settings: Settings, client_options: dict[str, Any] | None = None
) -> ConnectionTestResult:
    integration = {
        "id": "connection-test",
        "base_url": request.base_url,
        "verify_tls": request.verify_tls,
        "settings": request.settings,
        "credential_kind": request.credential_kind,
    }
    credentials = {
        "credential_kind": request.credential_kind,
        "secrets": request.credentials,
        "ca_pem": request.ca_pem,
    }
    options: dict[str, Any] = {
        "retry": RetryPolicy(attempts=2, base_delay=0.2, max_retry_after=5),
        "timeout": TEST_TIMEOUT,
    }
    options.update(client_options or {})
    try:
        client = client_for(integration, credentials, settings, **options)
    except ValueError as exc:
        return ConnectionTestResult(ok=False, category="invalid_request", message=str(exc))
    except VendorError as exc:  # e.g. a custom CA that is not a PEM bundle
        return ConnectionTestResult(ok=False, category=exc.category.value, message=exc.message)
    passed: list[str] = []
    state: dict[str, Any] = {}
    check = "accounts"
    try:
        for check in ("accounts", "requests", "incident_id_field"):
            await _probe(client, check, state)
            passed.append(check)
    except VendorError as exc:
        details: dict[str, Any] = {
            "status": exc.status,
            "vendor_code": exc.vendor_code,
            "failed_check": check,
            "passed_checks": passed,
        }
        if "field" in exc.details:
            details["field"] = exc.details["field"]
        message = exc.message
        if check == "incident_id_field":
            message = (
                f"the incident-id field {options_of(client).incident_id_field!r} cannot be searched: "
                f"{exc.message}"
            )
        return ConnectionTestResult(ok=False, category=exc.category.value, message=message, details=details)
    finally:
        await client.aclose()
    more = "+" if state.get("more_accounts") else ""
    return ConnectionTestResult(
        ok=True,
        message=f"connected to ServiceDesk Plus ({state.get('accounts', 0)}{more} accounts)",
        details={
            "accounts": state.get("accounts", 0),
            "passed_checks": passed,
            "auth_style": client.auth_style,
        },
    )
