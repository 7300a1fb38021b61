"""threatintel: Cyware CSAP → normalised events on the bus (the FastAPI app and its Ingestor)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from soc_shared.app import create_service_app, instrument_httpx
from soc_shared.bus import Bus
from soc_shared.db import Database
from soc_shared.security import ServiceTokenProvider, TokenVerifier, require_service
from soc_shared.sync import CredentialsProvider, Ingestor, TenantCredentials, internal_router

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

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.db = Database.from_settings(settings)
        app.state.bus = Bus(settings.amqp_url.get_secret_value(), service=settings.service_name)
        app.state.token_verifier = verifier or TokenVerifier(
            settings.jwks_url, settings.jwt_issuer, settings.jwt_audience
        )
        tokens = ServiceTokenProvider(
            settings.service_token_url,
            settings.service_name,
            settings.service_client_secret.get_secret_value(),
        )
        app.state.ingestor = Ingestor(
            name=settings.service_name,
            vendor="cyware",
            subtype="CYWARE",
            db=app.state.db,
            bus=app.state.bus,
            resources=RESOURCES,
            client_factory=lambda integration, creds: client_for(
                integration, creds, settings, **(client_options or {})
            ),
            credentials=credentials or TenantCredentials(settings.tenant_url, tokens.token),
            concurrency=settings.concurrency,
            lease_seconds=settings.lease_seconds,
        )
        await app.state.bus.connect()
        await app.state.ingestor.start(run_scheduler=settings.scheduler_enabled)
        try:
            yield
        finally:
            await app.state.ingestor.stop()
            await app.state.bus.close()
            await app.state.db.dispose()

    app: FastAPI = create_service_app(
        settings,
        title="SOC Portal — threatintel (Cyware CSAP)",
        routers=[
            internal_router(
                lambda: app.state.ingestor,
                lambda req: test_connection(req, settings, client_options),
                require_service,
            )
        ],
        lifespan=lifespan,
        readiness={"database": lambda: app.state.db.ping(), "broker": lambda: app.state.bus.ping()},
    )
    instrument_httpx()
    return app
