"""siem-ingest test fixtures: the ingestor harness of ``soc_shared.testing.ingestor`` (the session's
real database and broker, the QRadar simulator in-process or on a loopback socket, Ingestor
replicas wired to it, a tap on the bus) for QRadar."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import soc_siem_ingest
from fastapi import FastAPI
from soc_shared.db import migrate
from soc_shared.testing import VENDOR_SAMPLES, EventTap, ServerThread, free_port
from soc_shared.testing.ingestor import FAST_RETRY, IngestorKind, integration_change
from soc_siem_ingest.config import Settings
from soc_siem_ingest.resources import RESOURCES, client_for
from soc_simulators import qradar as qradar_sim

SAMPLES = VENDOR_SAMPLES / "qradar"
TOKEN = qradar_sim.DEFAULT_TOKEN


def sample(name: str) -> Any:
    return json.loads((SAMPLES / name).read_text())


def token_credentials(token: str = TOKEN) -> dict[str, Any]:
    return {"credential_kind": "API_KEY", "secrets": {"api_key": token}, "ca_pem": None}


KIND = IngestorKind(
    name="siem-ingest",
    vendor="qradar",
    subtype="IBM_QRADAR",
    integration_type="SIEM",
    credential_kind="API_KEY",
    resources=RESOURCES,
    client_for=client_for,
    sim_url="http://qradar.sim",
    id_prefix="qr",
    tap_keys=("siem.#", "ingest.sync.reported"),
    default_credentials=token_credentials,
    instance_name="QRadar test",
)


def change(integration_id: str, **kwargs: Any) -> Any:
    return integration_change(KIND, integration_id, **kwargs)


@pytest.fixture(scope="session")
def ingestor_kind() -> IngestorKind:
    return KIND


@pytest.fixture(scope="session")
def settings() -> Settings:
    s = Settings(
        scheduler_enabled=False,
        ariel_poll_initial_seconds=0.02,
        ariel_poll_max_seconds=0.1,
        metrics_settle_seconds=0,
        ariel_timeout_seconds=20,
    )
    migrate(s, Path(soc_siem_ingest.__file__).parent / "migrations")
    return s


@pytest.fixture
def simulator() -> FastAPI:
    return qradar_sim.create_app(seed=21, offenses=300, ariel_delay=0.05)


@pytest.fixture(scope="module")
def socket_simulator() -> Any:
    return lambda: qradar_sim.create_app(seed=5, offenses=40, ariel_delay=0.05)


@pytest.fixture(scope="session")
def kit() -> Any:
    """The helpers above for test modules (they cannot import this conftest by name)."""
    from types import SimpleNamespace

    return SimpleNamespace(
        sample=sample,
        token_credentials=token_credentials,
        change=change,
        ServerThread=ServerThread,
        FAST_RETRY=FAST_RETRY,
        TOKEN=TOKEN,
        Tap=EventTap,
        SAMPLES=SAMPLES,
        free_port=free_port,
    )
