"""Test-connection: reach XSOAR with given credentials and say clearly what is wrong."""

from __future__ import annotations

from soc_shared.sync import ConnectionTestRequest, ConnectionTestResult
from soc_shared.vendor_http import RetryPolicy, VendorError

from soc_soar_ingest.config import Settings
from soc_soar_ingest.resources import SyncOptions, client_for


async def test_connection(request: ConnectionTestRequest, settings: Settings) -> ConnectionTestResult:
    integration = {
        "id": "connection-test",
        "base_url": request.base_url,
        "verify_tls": request.verify_tls,
        "settings": request.settings,
    }
    credentials = {
        "credential_kind": request.credential_kind,
        "secrets": request.credentials,
        "ca_pem": request.ca_pem,
    }
    try:
        options = SyncOptions.from_settings(request.settings, settings)
        client = client_for(integration, credentials, settings, retry=RetryPolicy(attempts=2, base_delay=0.2))
    except VendorError as exc:
        return ConnectionTestResult(ok=False, category=str(exc.category), message=exc.message)
    except ValueError as exc:
        return ConnectionTestResult(ok=False, category="invalid_request", message=str(exc))
    try:
        accounts = await client.accounts()
        names = sorted(a.name for a in accounts or [])
        if options.accounts is not None:
            names = [n for n in names if n in options.accounts]
        # Reading one incident proves the key may search where the sync will (the first account's
        # own routes on a multi-tenant master, the root otherwise).
        scope = names[0] if names else ""
        total, _ = await client.search_incidents(scope, size=1)
        if accounts:
            message = (
                f"connected to Cortex XSOAR ({client.auth_style}), multi-tenant with {len(accounts)} accounts"
            )
        else:
            message = f"connected to Cortex XSOAR ({client.auth_style}), single tenant"
        return ConnectionTestResult(
            ok=True,
            message=message,
            details={
                "auth_style": client.auth_style,
                "multi_tenant": bool(accounts),
                "accounts": names,
                "incidents": total,
            },
        )
    except VendorError as exc:
        return ConnectionTestResult(
            ok=False, category=str(exc.category), message=exc.message, details={"status": exc.status}
        )
    finally:
        await client.aclose()
