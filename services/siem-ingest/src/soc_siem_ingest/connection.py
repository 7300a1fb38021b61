"""Test-connection: reach QRadar with given credentials and say clearly what is wrong."""

from __future__ import annotations

from soc_shared.sync import ConnectionTestRequest, ConnectionTestResult
from soc_shared.vendor_http import RetryPolicy, VendorError
from soc_siem_ingest.config import Settings
from soc_siem_ingest.resources import client_for


async def test_connection(request: ConnectionTestRequest, settings: Settings) -> ConnectionTestResult:
    integration = {"id": "connection-test", "base_url": request.base_url, "verify_tls": request.verify_tls,
                   "settings": request.settings}
    credentials = {"credential_kind": request.credential_kind, "secrets": request.credentials, "ca_pem": request.ca_pem}
    try:
        client = client_for(integration, credentials, settings, retry=RetryPolicy(attempts=2, base_delay=0.2))
    except ValueError as exc:
        return ConnectionTestResult(ok=False, category="invalid_request", message=str(exc))
    try:
        about = await client.about()
        # Reading a page of offenses proves the token has the capability the sync needs.
        async for _ in client.pages("siem/offenses", params={"fields": "id"}, page_size=1):
            break
        return ConnectionTestResult(ok=True, message=f"connected to QRadar {about.get('external_version', '')}".strip(),
                                    details={"version": about.get("external_version")})
    except VendorError as exc:
        return ConnectionTestResult(ok=False, category=str(exc.category), message=exc.message,
                                    details={"status": exc.status})
    finally:
        await client.aclose()
