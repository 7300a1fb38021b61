"""soar-ingest: Cortex XSOAR → normalised events on the bus."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from soc_shared.security import TokenVerifier
from soc_shared.sync import CredentialsProvider, create_ingestor_app

from soc_soar_ingest.config import Settings
from soc_soar_ingest.connection import test_connection
from soc_soar_ingest.resources import RESOURCES, sync_for
from soc_soar_ingest.state import NoteMarks


def create_app(
    settings: Settings | None = None,
    *,
    verifier: TokenVerifier | None = None,
    credentials: CredentialsProvider | None = None,
    client_options: dict[str, Any] | None = None,
) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def note_marks(app: FastAPI, _tokens: Any) -> AsyncIterator[None]:
        # Per-incident note watermarks live in this service's schema (see state.py).
        app.state.note_marks = NoteMarks(app.state.db)
        yield

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
    )
