"""The tenant service: control plane (``soc_tenant.control``) and read model
(``soc_tenant.readmodel``) behind one API, each contributing its routers and its bus consumers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from soc_shared.app import create_service_app, instrument_httpx
from soc_shared.bus import Bus
from soc_shared.crypto import Sealer
from soc_shared.db import Database
from soc_shared.security import RevocationFeed, ServiceTokenProvider, TokenVerifier

from soc_tenant import control, notify, readmodel
from soc_tenant.config import Settings
from soc_tenant.dashboard import positives as positives

PARTS = (control, readmodel, notify)


def create_app(settings: Settings | None = None, *, verifier: TokenVerifier | None = None) -> FastAPI:
    settings = settings or Settings()
    # The deployment's true/false-positive rule (a wrong setting stops the start, naming it).
    positives.configure(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.db = Database.from_settings(settings)
        app.state.app_db = Database.from_settings(
            settings, user=settings.app_db_user, password=settings.app_db_password.get_secret_value()
        )
        app.state.bus = Bus(settings.amqp_url.get_secret_value(), service="tenant")
        app.state.sealer = Sealer.from_env_value(settings.sealing_keys.get_secret_value())
        app.state.token_verifier = verifier or TokenVerifier(
            settings.jwks_url, settings.jwt_issuer, settings.jwt_audience
        )
        app.state.service_tokens = ServiceTokenProvider(
            settings.service_token_url, "tenant", settings.service_client_secret.get_secret_value()
        )
        feed = None
        if verifier is None:
            feed = RevocationFeed(
                app.state.token_verifier.revocations,
                settings.revocations_url,
                lambda: app.state.service_tokens.token(),
            )
            feed.start()
        await app.state.bus.connect()
        started = []
        try:
            for part in PARTS:
                await part.start(app)
                started.append(part)
            yield
        finally:
            for part in reversed(started):
                await part.stop(app)
            if feed is not None:
                await feed.stop()
            await app.state.bus.close()
            await app.state.db.dispose()
            await app.state.app_db.dispose()

    app = create_service_app(
        settings,
        title="SOC Portal — tenant service",
        description="Companies, tenant users, integrations, mappings, SLA, chat; dashboards, lists and reports.",
        routers=[r for part in PARTS for r in part.routers],
        lifespan=lifespan,
        readiness={
            "database": lambda: app.state.db.ping(),
            "broker": lambda: app.state.bus.ping(),
        },
    )
    instrument_httpx()
    return app
