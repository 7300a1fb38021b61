"""The contract suite: every public service as a real process (auth, tenant, the four ingestors and
the gateway, migrations included) on free loopback ports, with a database and a vhost of its own —
the contract run sends generated writes, so nothing it creates is seen by another test."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from soc_shared.provision import provision_database, provision_vhost
from soc_shared.testing import SERVICE_MODULES, TEST_DB, TEST_VHOST, Launcher, listen_port

ROOT = Path(__file__).resolve().parents[2]
LOGS = ROOT / ".local" / "logs" / "contract"
ADMIN_PASSWORD = "Contract-admin-Passw0rd!"
MODULES = SERVICE_MODULES


def _env_name(service: str) -> str:
    return service.upper().replace("-", "_")


@dataclass
class ContractSuite:
    ports: dict[str, int] = field(default_factory=lambda: {name: listen_port() for name in MODULES})
    env: dict[str, str] = field(default_factory=dict)
    token: str = ""
    launcher: Launcher | None = None

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    @property
    def gateway(self) -> str:
        return self.url("gateway")

    def configure(self, db: str, vhost: str) -> None:
        env = dict(os.environ)
        hostport = os.environ.get("SOC_AMQP_HOSTPORT", "127.0.0.1:5672")
        env.update(
            {
                "SOC_ENV": "test",
                "SOC_LOG_LEVEL": "WARNING",
                "SOC_DB_NAME": db,
                "SOC_AMQP_URL": f"amqp://soc:soc@{hostport}/{vhost}",
                "SOC_ADMIN_USERNAME": "admin",
                "SOC_ADMIN_PASSWORD": ADMIN_PASSWORD,
                "SOC_AUTH_LDAP_ALLOW_PLAIN": "true",  # the test directory on loopback speaks plain LDAP
                "SOC_AUTH_URL": self.url("auth"),
                "SOC_GATEWAY_UPSTREAMS": json.dumps({n: self.url(n) for n in MODULES if n != "gateway"}),
                # Generated requests come fast and from one user: the contract is the subject here.
                "SOC_GATEWAY_RATE_LIMIT_USER_PER_SECOND": "10000",
                "SOC_GATEWAY_RATE_LIMIT_USER_BURST": "100000",
                "SOC_GATEWAY_RATE_LIMIT_ADDRESS_PER_SECOND": "10000",
                "SOC_GATEWAY_RATE_LIMIT_ADDRESS_BURST": "100000",
            }
        )
        for name in MODULES:
            env[f"SOC_{_env_name(name)}_PORT"] = str(self.ports[name])
        for ingestor in ("siem-ingest", "soar-ingest", "itsm-ingest", "threatintel"):
            env[f"SOC_TENANT_{_env_name(ingestor)}_URL"] = self.url(ingestor)
            env[f"SOC_{_env_name(ingestor)}_TENANT_URL"] = self.url("tenant")
        self.env = env
        self.launcher = Launcher(env=env, logs=LOGS)

    def start(self, names: list[str], timeout: float = 240) -> None:
        """Start the services at once (each migrates its own schema) and wait until all are healthy."""
        assert self.launcher is not None, "configure() first"
        self.launcher.wait(
            [self.launcher.launch(n, ["-m", MODULES[n]], f"{self.url(n)}/healthz") for n in names], timeout
        )

    def log_tail(self, name: str) -> str:
        return self.launcher.log_tail(name) if self.launcher else ""

    def stop_all(self) -> None:
        if self.launcher is not None:
            self.launcher.stop_all()

    def merged_spec(self) -> dict[str, Any]:
        """The gateway's merged document once every upstream's document is in it."""
        deadline = time.monotonic() + 120
        while True:
            spec = httpx.get(f"{self.gateway}/swagger.json?refresh=true", timeout=60).json()
            upstreams = spec.get("info", {}).get("x-soc-upstreams", {})
            if all(u.get("status") == "ok" for u in upstreams.values()) or time.monotonic() > deadline:
                return spec
            time.sleep(0.5)


@pytest.fixture(scope="session")
def contract_suite() -> Iterator[ContractSuite]:
    db, vhost = f"{TEST_DB}_contract", f"{TEST_VHOST}_contract"
    provision_database(db, fresh=True)
    provision_vhost(vhost, fresh=True)
    suite = ContractSuite()
    suite.configure(db, vhost)
    try:
        started = time.monotonic()
        suite.start(list(MODULES))
        print(f"contract suite started in {time.monotonic() - started:.1f}s")
        answer = httpx.post(
            f"{suite.gateway}/auth/admin/login/",
            json={"username": "admin", "password": ADMIN_PASSWORD},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        suite.token = answer.json()["access_token"]
        yield suite
    finally:
        suite.stop_all()


@pytest.fixture(scope="session")
def merged_spec(contract_suite: ContractSuite) -> dict[str, Any]:
    return contract_suite.merged_spec()
