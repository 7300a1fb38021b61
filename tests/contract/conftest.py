"""The contract suite: every public service as a real process (auth, tenant, the four ingestors and
the gateway, migrations included) on free loopback ports, with a database and a vhost of its own —
the contract run sends generated writes, so nothing it creates is seen by another test."""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from soc_shared.provision import provision_database, provision_vhost
from soc_shared.testing import TEST_DB, TEST_VHOST

ROOT = Path(__file__).resolve().parents[2]
LOGS = ROOT / ".local" / "logs" / "contract"
ADMIN_PASSWORD = "Contract-admin-Passw0rd!"
MODULES = {
    "auth": "soc_auth",
    "tenant": "soc_tenant",
    "siem-ingest": "soc_siem_ingest",
    "soar-ingest": "soc_soar_ingest",
    "itsm-ingest": "soc_itsm_ingest",
    "threatintel": "soc_threatintel",
    "gateway": "soc_gateway",
}


def _listen_port() -> int:
    """A free port below the kernel's ephemeral range, so that no outgoing connection of another
    process takes it between this check and the service's bind."""
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(20000, 30000)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port between 20000 and 30000")


def _env_name(service: str) -> str:
    return service.upper().replace("-", "_")


@dataclass
class ContractSuite:
    ports: dict[str, int] = field(default_factory=lambda: {name: _listen_port() for name in MODULES})
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    token: str = ""

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

    def start(self, names: list[str], timeout: float = 240) -> None:
        """Start the services at once (each migrates its own schema) and wait until all are healthy."""
        LOGS.mkdir(parents=True, exist_ok=True)
        for name in names:
            log = open(LOGS / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
            self.procs[name] = subprocess.Popen(
                [sys.executable, "-m", MODULES[name]],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        waiting = set(names)
        deadline = time.monotonic() + timeout
        while waiting and time.monotonic() < deadline:
            for name in sorted(waiting):
                proc = self.procs[name]
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with {proc.returncode}: {self.log_tail(name)}")
                try:
                    if httpx.get(f"{self.url(name)}/healthz", timeout=1).status_code == 200:
                        waiting.discard(name)
                except httpx.HTTPError:
                    pass
            time.sleep(0.2)
        if waiting:
            raise RuntimeError(f"not healthy after {timeout}s: {sorted(waiting)}")

    def log_tail(self, name: str) -> str:
        return (LOGS / f"{name}.log").read_text(errors="replace")[-3000:]

    def stop_all(self) -> None:
        for proc in reversed(list(self.procs.values())):
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.procs.clear()

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
