"""Test-connection: reach XSOAR with given credentials and say clearly what is wrong.

Probes, in order: the accounts (reachable, TLS trusted, the key and its auth style accepted;
multi-tenant or not), then one incident where the sync will search (the first account's own routes
on a multi-tenant master, the root otherwise). The first failure is answered with its category
(``soc_shared.probing``).
"""

from __future__ import annotations

from typing import Any

from soc_shared.probing import probe_connection
from soc_shared.sync import ConnectionTestRequest, ConnectionTestResult
from soc_shared.vendor_http import RetryPolicy

from soc_soar_ingest.config import Settings
from soc_soar_ingest.resources import SyncOptions, client_for


async def test_connection(request: ConnectionTestRequest, settings: Settings) -> ConnectionTestResult:
    scope: dict[str, Any] = {}

    def make_client(integration: dict[str, Any], credentials: dict[str, Any], options: dict[str, Any]) -> Any:
        scope["options"] = SyncOptions.from_settings(request.settings, settings)
        return client_for(integration, credentials, settings, retry=options["retry"])

    async def accounts(client: Any) -> dict[str, Any]:
        found = await client.accounts() or []
        names = sorted(a.name for a in found)
        if scope["options"].accounts is not None:
            names = [n for n in names if n in scope["options"].accounts]
        # Reading one incident proves the key may search where the sync will (the first account's
        # own routes on a multi-tenant master, the root otherwise).
        scope["first"] = names[0] if names else ""
        return {"multi_tenant": bool(found), "accounts": names, "account_count": len(found)}

    async def incidents(client: Any) -> dict[str, Any]:
        total, _ = await client.search_incidents(scope["first"], size=1)
        return {"incidents": total}

    def success(client: Any, found: dict[str, Any]) -> str:
        found["auth_style"] = client.auth_style
        count = found.pop("account_count")
        if found["multi_tenant"]:
            return f"connected to Cortex XSOAR ({client.auth_style}), multi-tenant with {count} accounts"
        return f"connected to Cortex XSOAR ({client.auth_style}), single tenant"

    return await probe_connection(
        request,
        make_client,
        [("accounts", accounts), ("incidents", incidents)],
        options={"retry": RetryPolicy(attempts=2, base_delay=0.2)},
        success=success,
    )
