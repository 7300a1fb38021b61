"""Test-connection: reach Cyware CSAP with given credentials and say clearly what is wrong.

Probes, in order, each proving one thing the sync needs: one alert of ``list_alert`` (reachable,
TLS trusted, the request signature accepted — right access id and secret key, and our clock within
the server's window — and the alerts permission), then the reference lists the other resources
read: tags, recipient groups, categories and additional fields. The first failure is answered with
its category (unreachable, tls, timeout, bad_credentials, clock, permission, not_found,
invalid_request, rate_limited, server_error, bad_response).
"""

from __future__ import annotations

from typing import Any

import httpx
from soc_shared.sync import ConnectionTestRequest, ConnectionTestResult
from soc_shared.vendor_http import RetryPolicy, VendorError

from soc_threatintel.client import CywareClient
from soc_threatintel.config import Settings
from soc_threatintel.resources import client_for

TEST_TIMEOUT = httpx.Timeout(15.0, connect=5.0, pool=5.0)
CHECKS = ("alerts", "tags", "recipient_groups", "categories", "additional_fields")


async def _probe(client: CywareClient, check: str) -> dict[str, Any]:
    if check == "alerts":
        _, count, _ = await client.list_alerts(page=1, page_size=1)
        return {"alert_count": count}
    if check == "tags":
        await client.tags()
    elif check == "recipient_groups":
        await client.recipient_groups()
    elif check == "categories":
        await client.categories()
    elif check == "additional_fields":
        await client.additional_fields()
    return {}


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
    except VendorError as exc:  # incomplete credentials, invalid settings, a custom CA that is not PEM
        return ConnectionTestResult(ok=False, category=exc.category.value, message=exc.message)
    passed: list[str] = []
    found: dict[str, Any] = {}
    check = CHECKS[0]
    try:
        for check in CHECKS:
            found.update(await _probe(client, check))
            passed.append(check)
    except VendorError as exc:
        details: dict[str, Any] = {
            "status": exc.status,
            "vendor_code": exc.vendor_code,
            "failed_check": check,
            "passed_checks": passed,
        }
        for key in ("reason", "server_time", "our_time", "clock_skew_seconds"):
            if key in exc.details:
                details[key] = exc.details[key]
        return ConnectionTestResult(
            ok=False, category=exc.category.value, message=exc.message, details=details
        )
    finally:
        await client.aclose()
    count = found.get("alert_count")
    return ConnectionTestResult(
        ok=True,
        message="connected to Cyware CSAP" + (f" ({count} alerts visible)" if count is not None else ""),
        details={"passed_checks": passed, **found},
    )
