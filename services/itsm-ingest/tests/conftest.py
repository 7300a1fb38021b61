"""itsm-ingest test fixtures: the ingestor harness of ``soc_shared.testing.ingestor`` (the session's
real database and broker, the ServiceDesk Plus simulator in-process or on a loopback socket,
Ingestor replicas wired to it, a tap on the bus), plus TicketService replicas."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import soc_itsm_ingest
from fastapi import FastAPI
from soc_itsm_ingest.config import Settings
from soc_itsm_ingest.mapping import StaticTicketRouting, TicketRouting
from soc_itsm_ingest.resources import RESOURCES, client_for
from soc_itsm_ingest.tickets import TicketService
from soc_shared.db import migrate
from soc_shared.events import IncidentSeverity, IncidentStatus, SoarIncident
from soc_shared.sync import Ingestor
from soc_shared.testing import VENDOR_SAMPLES, EventTap, ServerThread, free_port
from soc_shared.testing.ingestor import FAST_RETRY, IngestorHarness, IngestorKind, integration_change
from soc_simulators import sdp as sdp_sim
from soc_simulators import zoho as zoho_sim

SAMPLES = VENDOR_SAMPLES / "sdp"
TOKEN = sdp_sim.AUTH_TOKEN
UDF = f"udf_fields.{sdp_sim.UDF_SOAR_ID}"
SOAR_INTEGRATION = "soar-test"
ACME = sdp_sim.ACCOUNTS[0]  # the SDP account of the XSOAR account ACME.soar_account


def sample(name: str) -> Any:
    return json.loads((SAMPLES / name).read_text())


def oauth_credentials(**secrets: str) -> dict[str, Any]:
    """ServiceDesk Plus Cloud credentials: the simulated Zoho client and its refresh token."""
    base = {
        "client_id": zoho_sim.CLIENT_ID,
        "client_secret": zoho_sim.CLIENT_SECRET,
        "refresh_token": zoho_sim.REFRESH_TOKEN,
    }
    return {"credential_kind": "OAUTH_CLIENT", "secrets": {**base, **secrets}, "ca_pem": None}


def token_credentials(token: str = TOKEN) -> dict[str, Any]:
    return {"credential_kind": "API_KEY", "secrets": {"api_key": token}, "ca_pem": None}


def incident(
    incident_id: str | None = None,
    *,
    priority: str = "P1",
    account: str | None = None,
    status: IncidentStatus = IncidentStatus.ACTIVE,
    version: int = 1,
    name: str = "Brute force on VPN",
) -> SoarIncident:
    now = datetime.now(UTC)
    return SoarIncident(
        incident_id=incident_id or f"inc-{uuid.uuid4().hex[:10]}",
        account=account or ACME.soar_account,
        name=name,
        status=status,
        severity=IncidentSeverity.HIGH,
        created=now,
        modified=now,
        priority=priority,  # type: ignore[arg-type]
        rules=["VPN brute force"],
        source_ips=["203.0.113.7"],
        configuration_item="vpn-gw-01",
        version=version,
    )


KIND = IngestorKind(
    name="itsm-ingest",
    vendor="sdp",
    subtype="MANAGEENGINE_SDP",
    integration_type="ITSM",
    credential_kind="API_KEY",
    resources=RESOURCES,
    client_for=client_for,
    sim_url="http://sdp.sim",
    id_prefix="sdp",
    tap_keys=("itsm.#", "ingest.sync.reported"),
    default_credentials=token_credentials,
    instance_name="SDP test",
)


def change(integration_id: str, **kwargs: Any) -> Any:
    return integration_change(KIND, integration_id, **kwargs)


class Harness(IngestorHarness):
    """The ingestor harness plus TicketService replicas and the routing they use."""

    def tickets(
        self,
        routing: TicketRouting,
        *,
        ingestor: Ingestor | None = None,
        cls: type[TicketService] = TicketService,
        **kwargs: Any,
    ) -> TicketService:
        kwargs.setdefault("lease_seconds", 60)
        return cls(ingestor=ingestor or self.ingestor([]), routing=routing, **kwargs)

    def routing(
        self,
        integration_id: str,
        *,
        account_id: str = ACME.id,
        priorities: Sequence[str] = ("P1", "P2"),
        company_id: str = "company-acme",
    ) -> StaticTicketRouting:
        return StaticTicketRouting.from_json(
            [
                {
                    "soar_integration_id": SOAR_INTEGRATION,
                    "account": ACME.soar_account,
                    "company_id": company_id,
                    "itsm_integration_id": integration_id,
                    "account_id": account_id,
                    "policy": {"priorities": list(priorities)},
                }
            ]
        )

    def tickets_for(self, incident_id: str) -> list[str]:
        """Request ids in the simulator whose incident-id field holds ``incident_id``."""
        return [
            rec.id
            for rec in list(self.state.records.values())
            if rec.doc["udf_fields"].get(sdp_sim.UDF_SOAR_ID) == incident_id
        ]


@pytest.fixture(scope="session")
def ingestor_kind() -> IngestorKind:
    return KIND


@pytest.fixture(scope="session")
def harness_class() -> type[IngestorHarness]:
    return Harness


@pytest.fixture(scope="session")
def settings() -> Settings:
    s = Settings(scheduler_enabled=False, tickets_enabled=False)
    migrate(s, Path(soc_itsm_ingest.__file__).parent / "migrations")
    return s


@pytest.fixture
def simulator() -> FastAPI:
    return sdp_sim.create_app(seed=21, requests=300, xsoar_incidents=200)


@pytest.fixture(scope="module")
def socket_simulator() -> Any:
    return lambda: sdp_sim.create_app(seed=5, requests=20, xsoar_incidents=50)


@pytest.fixture(scope="session")
def kit() -> Any:
    """The helpers above for test modules (they cannot import this conftest by name)."""
    return SimpleNamespace(
        sample=sample,
        token_credentials=token_credentials,
        oauth_credentials=oauth_credentials,
        change=change,
        incident=incident,
        ServerThread=ServerThread,
        FAST_RETRY=FAST_RETRY,
        TOKEN=TOKEN,
        UDF=UDF,
        Tap=EventTap,
        SAMPLES=SAMPLES,
        SOAR_INTEGRATION=SOAR_INTEGRATION,
        ACME=ACME,
        free_port=free_port,
    )
