"""threatintel: Cyware CSAP → normalised events on the bus."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from soc_shared.security import TokenVerifier
from soc_shared.sync import CredentialsProvider, create_ingestor_app

from soc_threatintel.config import Settings
from soc_threatintel.connection import test_connection
from soc_threatintel.resources import RESOURCES, client_for


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
        vendor="cyware",
        subtype="CYWARE",
        title="SOC Portal — threatintel (Cyware CSAP)",
        resources=RESOURCES,
        client_factory=lambda app, integration, creds: client_for(
            integration, creds, settings, **(client_options or {})
        ),
        tester=lambda req: test_connection(req, settings, client_options),
        verifier=verifier,
        credentials=credentials,
    )
