"""The auth service: local and directory sign-in, rotating tokens, JWKS, users, roles, login audit."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute, iter_route_contexts
from soc_shared.app import create_service_app
from soc_shared.bus import Bus
from soc_shared.client_address import trusted_networks
from soc_shared.crypto import Sealer
from soc_shared.db import Database
from soc_shared.errors import error_response
from soc_shared.loop import BackgroundLoop
from soc_shared.security import RevocationList
from sqlalchemy import delete
from sqlalchemy.exc import DataError

from soc_auth.audit.models import login_attempt
from soc_auth.audit.views import router as audit_router
from soc_auth.company.consumer import company_consumer
from soc_auth.config import Settings
from soc_auth.database import utcnow
from soc_auth.internal.views import router as internal_router
from soc_auth.ldap.client import Directory
from soc_auth.ldap.views import router as directory_router
from soc_auth.login.throttle import Throttle
from soc_auth.login.views import router as login_router
from soc_auth.mfa import service as mfa
from soc_auth.mfa.views import router as mfa_router
from soc_auth.oidc.service import OidcClient
from soc_auth.oidc.views import router as oidc_router
from soc_auth.outbox.service import relay as outbox_relay
from soc_auth.password.hashing import Passwords
from soc_auth.preference.views import router as preference_router
from soc_auth.role.views import router as role_router
from soc_auth.session.views import router as session_router
from soc_auth.token import service as tokens
from soc_auth.token.keys import KeyRing
from soc_auth.token.views import router as token_router
from soc_auth.user.bootstrap import ensure_super_admin
from soc_auth.user.views import router as user_router

ROUTERS = [
    login_router,
    mfa_router,
    session_router,
    oidc_router,
    token_router,
    user_router,
    role_router,
    audit_router,
    directory_router,
    preference_router,
    internal_router,
]


def init_state(state: Any, settings: Settings) -> None:
    """Everything the routes use, on ``app.state`` (also used by the benchmark and the CLI)."""
    state.settings = settings
    state.db = Database.from_settings(settings)
    state.bus = Bus(settings.amqp_url.get_secret_value(), service=settings.service_name)
    state.passwords = Passwords(
        settings.argon2_time_cost, settings.argon2_memory_cost_kib, settings.argon2_parallelism
    )
    state.throttle = Throttle(settings)
    state.directory = Directory(settings)
    # The administrators' directory (ad_flag=ADMIN); without one, the customer directory serves both.
    state.admin_directory = (
        Directory(settings.admin_directory_settings()) if settings.has_admin_directory else state.directory
    )
    state.oidc_clients = {
        p.name: OidcClient(p, settings.oidc_http_timeout_seconds) for p in settings.oidc_providers
    }
    state.trusted_proxies = trusted_networks(settings.trusted_proxies)
    state.keys = KeyRing(settings, Sealer.from_env_value(settings.sealing_keys.get_secret_value()))
    state.outbox = None
    state.revocations = RevocationList()
    state.revocations_cursor = datetime.fromtimestamp(0, UTC)


async def sync_revocations(state: Any) -> int:
    """Read the per-user revocation times set since the last round (by any replica) into
    ``state.revocations``; a few seconds of overlap catch transactions that committed late."""
    async with state.db.session() as session:
        rows = await tokens.revocations_since(session, state.revocations_cursor - timedelta(seconds=10))
    for user_id, not_before in rows:
        state.revocations.apply(str(user_id), tokens.to_ms(not_before))
        state.revocations_cursor = max(state.revocations_cursor, not_before)
    return len(rows)


def _revocation_loop(state: Any) -> BackgroundLoop:
    """Revocations made through other replicas, every ``revocation_poll_seconds``."""

    async def step() -> None:
        await sync_revocations(state)

    interval = state.settings.revocation_poll_seconds
    return BackgroundLoop("auth-revocations", step, interval=interval, max_backoff=max(interval, 10.0))


async def load_keys(state: Any) -> None:
    async with state.db.session() as session:
        await state.keys.load(session)
    state.token_verifier = state.keys.verifier


def _maintenance(state: Any) -> BackgroundLoop:
    """Reload the signing keys (rotations made by other replicas) and prune expired rows."""
    settings: Settings = state.settings
    last_prune = [0.0]

    async def step() -> None:
        await tokens.reload_keys(state)
        if time.monotonic() - last_prune[0] >= settings.maintenance_interval_seconds:
            last_prune[0] = time.monotonic()
            async with state.db.session() as session:
                await tokens.prune(session)
                await mfa.prune(session)
                await state.throttle.prune(session, utcnow())
                await session.execute(
                    delete(login_attempt).where(
                        login_attempt.c.at < utcnow() - timedelta(days=settings.login_audit_retention_days)
                    )
                )

    return BackgroundLoop("auth-maintenance", step, interval=settings.signing_key_reload_seconds)


def add_slashless_aliases(app: FastAPI) -> None:
    """Accept every path with and without its trailing slash (the public API promises both)."""
    aliases = APIRouter()
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        path = context.path
        if not isinstance(route, APIRoute) or not path or path == "/" or path.endswith(".json"):
            continue
        alias = path.rstrip("/") if path.endswith("/") else path + "/"
        aliases.add_api_route(
            alias,
            route.endpoint,
            methods=sorted(route.methods or ()),
            response_model=route.response_model,
            status_code=route.status_code,
            response_class=route.response_class,
            dependencies=route.dependencies,
            name=f"{route.name}_alias",
            include_in_schema=False,
            responses=route.responses,
        )
    app.include_router(aliases)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = app.state
        init_state(state, settings)
        background: list[BackgroundLoop] = []
        consumer = None
        try:
            await load_keys(state)
            await sync_revocations(state)
            await ensure_super_admin(state)
            await state.bus.connect()
            state.outbox = outbox_relay(state.db, state.bus)
            state.outbox.start()
            state.outbox.wake()  # events left by a previous run
            if settings.consumers_enabled:
                consumer = company_consumer(state)
                await consumer.start()
            background.extend([_maintenance(state), _revocation_loop(state)])
            for loop in background:
                loop.start()
            yield
        finally:
            for loop in background:
                await loop.stop(grace_seconds=5)
            if consumer is not None:
                await consumer.stop()
            if state.outbox is not None:
                await state.outbox.stop()
            await state.bus.close()
            await state.db.dispose()

    app = create_service_app(
        settings,
        title="SOC Portal — auth",
        description="Sign-in (local and LDAP/Active Directory), rotating tokens, JWKS, users, roles and the login audit.",
        routers=ROUTERS,
        lifespan=lifespan,
        # The directory is not a readiness condition: local administrators must still sign in without it.
        readiness={"database": lambda: app.state.db.ping(), "broker": lambda: app.state.bus.ping()},
    )
    add_slashless_aliases(app)

    @app.exception_handler(DataError)
    async def _unstorable_input(request: Request, exc: DataError) -> JSONResponse:
        # e.g. a NUL character in a text value: bad input, never a 500.
        return error_response(
            422, "invalid_input", "the request contains a value that cannot be stored or searched"
        )

    return app
