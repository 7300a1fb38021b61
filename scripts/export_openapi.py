"""Print the gateway's merged OpenAPI document without starting anything: each public service's app
is built in-process, its document taken, and merged exactly as the gateway merges them at run time.

``python scripts/export_openapi.py > web/openapi.json`` (scripts/gen_client.sh does this, then
generates the console's typed client from it).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from soc_gateway.config import Settings as GatewaySettings
from soc_gateway.main import VERSION
from soc_gateway.openapi import merge_specs
from soc_gateway.routing import RouteTable


def documents() -> dict[str, dict]:
    from soc_auth.main import create_app as auth_app
    from soc_tenant.main import create_app as tenant_app

    return {"auth": auth_app().openapi(), "tenant": tenant_app().openapi()}


def main() -> None:
    settings = GatewaySettings()
    table = RouteTable.load(Path(settings.routes_file), default_timeout=settings.default_timeout)
    merged = merge_specs(documents(), table, version=VERSION)
    json.dump(merged, sys.stdout, indent=1, sort_keys=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
