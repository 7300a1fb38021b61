"""siem-ingest: IBM QRadar → normalised events on the bus."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from soc_shared.security import TokenVerifier
from soc_shared.sync import CredentialsProvider, create_ingestor_app

from soc_siem_ingest.config import Settings
from soc_siem_ingest.connection import test_connection
from soc_siem_ingest.resources import RESOURCES, client_for


def create_app(
    settings: Settings | None = None,
    *,
    verifier: TokenVerifier | None = None,
    credentials: CredentialsProvider | None = None,
    client_options: dict[str, Any] | None = None,
) -> FastAPI:
    settings = settings or Settings()
    return create_ingestor_app(
        settings,
        vendor="qradar",
        subtype="IBM_QRADAR",
        title="SOC Portal — siem-ingest (IBM QRadar)",
        resources=RESOURCES,
        client_factory=lambda app, integration, creds: client_for(
            integration, creds, settings, **(client_options or {})
        ),
        tester=lambda req: test_connection(req, settings, client_options),
        verifier=verifier,
        credentials=credentials,
        # QRadar credentials are static (an authorised-service token, or basic): fetched once per
        # integration change, and one client per integration serves all its runs.
        keep_clients=True,
    )
