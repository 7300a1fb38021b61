"""Test-connection: reach QRadar with given credentials and say clearly what is wrong.

Probes, in order, each proving one thing the sync needs: ``system/about`` (reachable, TLS trusted,
credentials accepted, ``Version`` supported), the domains (configuration read), one offense with a
``filter`` (the offenses capability; a limited token fails here with ``permission``) and the Ariel
searches list (the Ariel capability the EPS and event-log families need). The first failure is
answered with its category (unreachable, tls, timeout, bad_credentials, permission, not_found,
invalid_request, rate_limited, server_error, bad_response).
"""

from __future__ import annotations

from typing import Any

import httpx
from soc_shared.sync import ConnectionTestRequest, ConnectionTestResult
from soc_shared.vendor_http import RetryPolicy, VendorError

from soc_siem_ingest.client import QRadarClient
from soc_siem_ingest.config import Settings
from soc_siem_ingest.resources import DOMAINS, client_for

TEST_TIMEOUT = httpx.Timeout(15.0, connect=5.0, pool=5.0)


async def _probe(client: QRadarClient, check: str) -> None:
    if check == "domains":
        await client.get_page(DOMAINS, 0, 1, params={"fields": "id"})
    elif check == "offenses":
        await client.get_page(
            "siem/offenses", 0, 1, params={"fields": "id", "filter": "last_updated_time > 0"}
        )
    elif check == "ariel":
        await client.http.request("GET", "ariel/searches", headers={"Range": "items=0-0"})


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
    check = "about"
    try:
        about = await client.about()
        passed.append(check)
        for check in ("domains", "offenses", "ariel"):
            await _probe(client, check)
            passed.append(check)
    except VendorError as exc:
        return ConnectionTestResult(
            ok=False,
            category=exc.category.value,
            message=exc.message,
            details={
                "status": exc.status,
                "vendor_code": exc.vendor_code,
                "failed_check": check,
                "passed_checks": passed,
                **({"reason": exc.details["reason"]} if "reason" in exc.details else {}),
            },
        )
    finally:
        await client.aclose()
    version = about.get("external_version") or about.get("release_name")
    return ConnectionTestResult(
        ok=True,
        message=f"connected to QRadar {version or ''}".strip(),
        details={"version": version, "release": about.get("release_name"), "passed_checks": passed},
    )
