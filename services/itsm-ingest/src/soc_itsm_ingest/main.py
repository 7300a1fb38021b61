"""itsm-ingest: ManageEngine ServiceDesk Plus → normalised events, and tickets from incidents."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from soc_shared.actions import ActionRunner
from soc_shared.crypto import Sealer
from soc_shared.security import ServiceTokenProvider, TokenVerifier, require_service
from soc_shared.sync import CredentialsProvider, create_ingestor_app
from soc_shared.vendor_http import RetryPolicy

from soc_itsm_ingest import actions
from soc_itsm_ingest.config import Settings
from soc_itsm_ingest.connection import test_connection
from soc_itsm_ingest.mapping import TicketRouting, routing_from_settings
from soc_itsm_ingest.oauth import ZohoTokens
from soc_itsm_ingest.resources import RESOURCES, client_for
from soc_itsm_ingest.tickets import TicketService, ticket_router

# Creating a ticket is not idempotent at the vendor: few, quick retries (only of attempts SDP
# certainly did not process), so one attempt always ends well inside the ticket lease.
TICKET_RETRY = RetryPolicy(attempts=3, base_delay=0.5, max_delay=5, max_retry_after=10)


def create_app(
    settings: Settings | None = None,
    *,
    verifier: TokenVerifier | None = None,
    credentials: CredentialsProvider | None = None,
    client_options: dict[str, Any] | None = None,
    routing: TicketRouting | None = None,
) -> FastAPI:
    settings = settings or Settings()

    def oauth_tokens(app: FastAPI) -> ZohoTokens:
        """Zoho OAuth access tokens of the cloud integrations, shared with every replica."""
        tokens: ZohoTokens | None = getattr(app.state, "oauth_tokens", None)
        if tokens is None:
            tokens = app.state.oauth_tokens = ZohoTokens(
                app.state.db,
                Sealer.from_env_value(settings.sealing_keys.get_secret_value()),
                renew_ahead_seconds=settings.oauth_renew_ahead_seconds,
            )
        return tokens

    @asynccontextmanager
    async def tickets(app: FastAPI, tokens: ServiceTokenProvider) -> AsyncIterator[None]:
        """Tickets from incidents, next to the sync (exactly one ticket per qualifying incident)."""
        ticket_options = {"retry": TICKET_RETRY, **(client_options or {})}
        app.state.tickets = TicketService(
            ingestor=app.state.ingestor,
            routing=routing or routing_from_settings(settings, tokens.token, tokens.invalidate),
            client_factory=lambda integration, creds: client_for(
                integration, creds, settings, oauth_tokens=oauth_tokens(app), **ticket_options
            ),
            queue=settings.ticket_queue,
            lease_seconds=settings.ticket_lease_seconds,
            max_attempts=settings.ticket_max_attempts,
            retry_max_seconds=settings.ticket_retry_max_seconds,
            concurrency=settings.ticket_concurrency,
            reconcile_interval=settings.reconcile_interval_seconds,
            search_before_create=settings.ticket_search_before_create,
        )
        if settings.tickets_enabled:
            await app.state.tickets.start()
        app.state.actions = ActionRunner(
            ingestor=app.state.ingestor,
            table=actions.action_rows,
            requested_key="itsm.action.requested",
            completed_key="itsm.action.completed",
            handlers=actions.HANDLERS,
            queue=settings.action_queue,
            client_factory=lambda integration, creds: client_for(
                integration, creds, settings, oauth_tokens=oauth_tokens(app), **ticket_options
            ),
            lease_seconds=settings.action_lease_seconds,
            max_attempts=settings.action_max_attempts,
            retry_base_seconds=settings.action_retry_base_seconds,
            retry_max_seconds=settings.action_retry_max_seconds,
            reconcile_interval=settings.action_reconcile_seconds,
            sync_after=actions.SYNC_AFTER,
        )
        if settings.actions_enabled:
            await app.state.actions.start()
        try:
            yield
        finally:
            await app.state.actions.stop()
            await app.state.tickets.stop()
            closer = getattr(app.state.tickets.routing, "aclose", None)
            if closer is not None:
                await closer()

    return create_ingestor_app(
        settings,
        vendor="sdp",
        subtype="MANAGEENGINE_SDP",
        title="SOC Portal — itsm-ingest (ManageEngine ServiceDesk Plus)",
        resources=RESOURCES,
        client_factory=lambda app, integration, creds: client_for(
            integration, creds, settings, oauth_tokens=oauth_tokens(app), **(client_options or {})
        ),
        tester=lambda req: test_connection(req, settings, client_options),
        verifier=verifier,
        credentials=credentials,
        extra_routers=lambda app: [ticket_router(lambda: app.state.tickets, require_service)],
        extension=tickets,
    )
