"""soar-ingest: Cortex XSOAR → normalised events on the bus."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from soc_shared.actions import ActionRunner
from soc_shared.security import TokenVerifier, require_caller
from soc_shared.sync import CredentialsProvider, create_ingestor_app
from soc_shared.vendor_http import RetryPolicy

from soc_soar_ingest import actions
from soc_soar_ingest.config import Settings
from soc_soar_ingest.connection import test_connection
from soc_soar_ingest.resources import RESOURCES, client_for, sync_for
from soc_soar_ingest.state import NoteMarks

# An action's vendor calls retry briefly in line (requests XSOAR certainly did not process); longer
# faults are the action runner's backoff, so one attempt ends well inside its lease.
ACTION_RETRY = RetryPolicy(attempts=3, base_delay=0.5, max_delay=5, max_retry_after=10)


def create_app(
    settings: Settings | None = None,
    *,
    verifier: TokenVerifier | None = None,
    credentials: CredentialsProvider | None = None,
    client_options: dict[str, Any] | None = None,
) -> FastAPI:
    settings = settings or Settings()

    def action_client(integration: dict[str, Any], creds: dict[str, Any]) -> Any:
        return client_for(integration, creds, settings, **{"retry": ACTION_RETRY, **(client_options or {})})

    @asynccontextmanager
    async def note_marks(app: FastAPI, _tokens: Any) -> AsyncIterator[None]:
        # Per-incident note watermarks live in this service's schema (see state.py).
        app.state.note_marks = NoteMarks(app.state.db)
        app.state.actions = ActionRunner(
            ingestor=app.state.ingestor,
            table=actions.action_rows,
            requested_key="soar.action.requested",
            completed_key="soar.action.completed",
            handlers=actions.HANDLERS,
            queue=settings.action_queue,
            client_factory=action_client,
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

    return create_ingestor_app(
        settings,
        vendor="xsoar",
        subtype="CORTEX_XSOAR",
        title="SOC Portal — soar-ingest (Cortex XSOAR)",
        resources=RESOURCES,
        client_factory=lambda app, integration, creds: sync_for(
            integration, creds, settings, marks=app.state.note_marks, **(client_options or {})
        ),
        tester=lambda req: test_connection(req, settings),
        verifier=verifier,
        credentials=credentials,
        extension=note_marks,
        extra_routers=lambda app: [
            actions.playbooks_router(app, require_caller("tenant", scope="ingest.control"), action_client)
        ],
    )
