"""End-to-end fixtures: the real service processes (``python -m soc_<service>``, migrations included)
and a vendor simulator, on their own loopback ports, against the session's database and vhost."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from soc_shared.testing import Launcher

ROOT = Path(__file__).resolve().parents[2]
LOGS = ROOT / ".local" / "logs" / "e2e"

PORTS = {
    "gateway": 18000,
    "auth": 18001,
    "tenant": 18002,
    "siem-ingest": 18011,
    "soar-ingest": 18012,
    "itsm-ingest": 18013,
    "threatintel": 18014,
}
SIM_PORTS = {"qradar": 19101, "xsoar": 19102, "sdp": 19103, "cyware": 19104}
MODULES = {
    "gateway": "soc_gateway",
    "auth": "soc_auth",
    "tenant": "soc_tenant",
    "siem-ingest": "soc_siem_ingest",
    "soar-ingest": "soc_soar_ingest",
    "itsm-ingest": "soc_itsm_ingest",
    "threatintel": "soc_threatintel",
}
ADMIN_PASSWORD = "E2e-admin-Passw0rd!"


def url(name: str) -> str:
    return f"http://127.0.0.1:{PORTS[name]}"


class Suite:
    def __init__(self) -> None:
        self.env = dict(os.environ)
        self.env.update(
            {
                "SOC_ENV": "test",
                # The tests sign in many times from one address within a minute.
                "SOC_GATEWAY_RATE_LIMIT_LOGIN_BURST": "100",
                "SOC_LOG_LEVEL": "INFO",
                "SOC_ADMIN_USERNAME": "admin",
                "SOC_ADMIN_PASSWORD": ADMIN_PASSWORD,
                "SOC_AUTH_URL": url("auth"),
                "SOC_AUTH_PORT": str(PORTS["auth"]),
                "SOC_TENANT_PORT": str(PORTS["tenant"]),
                "SOC_SIEM_INGEST_PORT": str(PORTS["siem-ingest"]),
                "SOC_SOAR_INGEST_PORT": str(PORTS["soar-ingest"]),
                "SOC_ITSM_INGEST_PORT": str(PORTS["itsm-ingest"]),
                "SOC_THREATINTEL_PORT": str(PORTS["threatintel"]),
                "SOC_GATEWAY_PORT": str(PORTS["gateway"]),
                "SOC_GATEWAY_UPSTREAMS": json.dumps({n: url(n) for n in PORTS if n != "gateway"}),
                "SOC_TENANT_SIEM_INGEST_URL": url("siem-ingest"),
                "SOC_TENANT_SOAR_INGEST_URL": url("soar-ingest"),
                "SOC_TENANT_ITSM_INGEST_URL": url("itsm-ingest"),
                "SOC_TENANT_THREATINTEL_URL": url("threatintel"),
                "SOC_SIEM_INGEST_TENANT_URL": url("tenant"),
                "SOC_SOAR_INGEST_TENANT_URL": url("tenant"),
                "SOC_ITSM_INGEST_TENANT_URL": url("tenant"),
                "SOC_THREATINTEL_TENANT_URL": url("tenant"),
            }
        )
        self.launcher = Launcher(env=self.env, logs=LOGS)

    @property
    def procs(self) -> dict[str, subprocess.Popen[bytes]]:
        return self.launcher.procs

    def start(self, name: str, args: list[str], health: str, timeout: float = 60) -> None:
        self.launcher.start(name, args, health, timeout)

    def service(self, name: str) -> None:
        self.start(name, ["-m", MODULES[name]], f"{url(name)}/healthz")

    def simulator(self, vendor: str) -> None:
        port = SIM_PORTS[vendor]
        self.start(
            f"sim-{vendor}",
            ["-m", "soc_simulators", vendor, "--port", str(port)],
            f"http://127.0.0.1:{port}/_sim/state",
        )

    def stop(self, name: str) -> None:
        self.launcher.stop(name)

    def stop_all(self) -> None:
        self.launcher.stop_all()


@pytest.fixture(scope="session")
def suite() -> Iterator[Suite]:
    s = Suite()
    try:
        s.simulator("qradar")
        for name in ("auth", "tenant", "siem-ingest", "gateway"):
            s.service(name)
        yield s
    finally:
        s.stop_all()
