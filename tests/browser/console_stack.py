"""The whole suite for the browser tests: the four vendor simulators and every service (real
processes, migrations included) on free loopback ports, the console served by the gateway, and the
demo data seeded through the public API exactly as ``make up`` does.

Standalone (to look at the console against demo data without taking make up's fixed ports):
``uv run --frozen python tests/browser/console_stack.py`` provisions the database ``soc_dev_<user>`` and
prints the gateway URL and logins.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from soc_shared.testing import free_port

ROOT = Path(__file__).resolve().parents[2]
LOGS = ROOT / ".local" / "logs" / "browser"
ADMIN_USERNAME = "admin"
ADMIN_PASSWORD = "Browser-admin-Passw0rd!"
SERVICES = {
    "auth": "soc_auth",
    "tenant": "soc_tenant",
    "siem-ingest": "soc_siem_ingest",
    "soar-ingest": "soc_soar_ingest",
    "itsm-ingest": "soc_itsm_ingest",
    "threatintel": "soc_threatintel",
    "gateway": "soc_gateway",
}
SIMULATORS = ("qradar", "xsoar", "sdp", "cyware")
DEMO_PROFILE = {"xsoar": ["--profile", "demo"]}  # as make up (scripts/run_suite.py) starts it


class PortTaken(RuntimeError):
    """A process could not bind the free port chosen for it: someone else took it meanwhile."""


class ConsoleStack:
    def __init__(self, *, live: bool = False, db: str | None = None, vhost: str | None = None) -> None:
        self.live = live
        self.db, self.vhost = db, vhost
        self.ports = {name: free_port() for name in SERVICES}
        self.sim_ports = {vendor: free_port() for vendor in SIMULATORS}
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.logins: list[str] = []
        LOGS.mkdir(parents=True, exist_ok=True)

    @property
    def env(self) -> dict[str, str]:
        url = self.url
        return {
            **os.environ,
            "SOC_LOG_LEVEL": "WARNING",
            # Every browser test signs in: the login bucket must not be what a test measures.
            "SOC_GATEWAY_RATE_LIMIT_LOGIN_PER_MINUTE": "600",
            "SOC_GATEWAY_RATE_LIMIT_LOGIN_BURST": "100",
            # The demo OpenLDAP (scripts/deps.sh) speaks plain LDAP on loopback: the explicit opt-in.
            "SOC_AUTH_LDAP_ALLOW_PLAIN": "true",
            "SOC_ADMIN_USERNAME": ADMIN_USERNAME,
            "SOC_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "SOC_AUTH_URL": url("auth"),
            "SOC_GATEWAY_UPSTREAMS": json.dumps({n: url(n) for n in SERVICES if n != "gateway"}),
            "SOC_TENANT_SIEM_INGEST_URL": url("siem-ingest"),
            "SOC_TENANT_SOAR_INGEST_URL": url("soar-ingest"),
            "SOC_TENANT_ITSM_INGEST_URL": url("itsm-ingest"),
            "SOC_TENANT_THREATINTEL_URL": url("threatintel"),
            **{f"SOC_{n.upper().replace('-', '_')}_TENANT_URL": url("tenant") for n in SERVICES if "-" in n},
            "SOC_THREATINTEL_TENANT_URL": url("tenant"),
            **{f"SOC_{n.upper().replace('-', '_')}_PORT": str(p) for n, p in self.ports.items()},
            **self._own_database(),
        }

    def _own_database(self) -> dict[str, str]:
        if not self.db:
            return {}
        base = os.environ.get("SOC_AMQP_URL", "amqp://soc:soc@127.0.0.1:5672/soc").rsplit("/", 1)[0]
        return {"SOC_DB_NAME": self.db, "SOC_AMQP_URL": f"{base}/{self.vhost or self.db}"}

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    @property
    def gateway(self) -> str:
        return self.url("gateway")

    def _launch(self, name: str, args: list[str], health: str) -> tuple[str, subprocess.Popen[bytes], str]:
        log = open(LOGS / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            [sys.executable, *args], cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        self.procs.append((name, proc))
        return name, proc, health

    @staticmethod
    def _wait(started: list[tuple[str, subprocess.Popen[bytes], str]], timeout: float = 600) -> None:
        deadline = time.monotonic() + timeout
        pending = list(started)
        while pending:
            for item in list(pending):
                name, proc, health = item
                if proc.poll() is not None:
                    log = (LOGS / f"{name}.log").read_text()[-4000:]
                    if "address already in use" in log[-600:]:
                        raise PortTaken(name)
                    raise RuntimeError(f"{name} exited: {log}")
                try:
                    if httpx.get(health, timeout=1).status_code == 200:
                        pending.remove(item)
                except httpx.HTTPError:
                    pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"not healthy after {timeout}s: {[p[0] for p in pending]}; see {LOGS}")
            time.sleep(0.2)

    def start(self) -> ConsoleStack:
        # Processes start side by side (each spends seconds importing): the simulators and auth
        # first, since every service fetches auth's keys, then the rest. A free port can be taken
        # by someone else before a slow start binds it: then that wave starts again on new ports.
        for attempt in range(3):
            try:
                self._first_wave()
                break
            except PortTaken:
                self._stop_wave(["auth", *(f"sim-{v}" for v in SIMULATORS)])
                self.sim_ports = {vendor: free_port() for vendor in SIMULATORS}
                self.ports["auth"] = free_port()
                if attempt == 2:
                    raise
        wave = [name for name in SERVICES if name != "auth"]
        for attempt in range(3):
            try:
                self._wait(
                    [self._launch(name, ["-m", SERVICES[name]], f"{self.url(name)}/healthz") for name in wave]
                )
                break
            except PortTaken:
                self._stop_wave(wave)
                self.ports.update({name: free_port() for name in wave})
                if attempt == 2:
                    raise
        sys.path.insert(0, str(ROOT / "scripts"))
        from demo import seed_demo

        self.logins = seed_demo(self.gateway, ADMIN_USERNAME, ADMIN_PASSWORD, self.sim_ports)
        return self

    def _stop_wave(self, names: list[str]) -> None:
        for name, proc in [p for p in self.procs if p[0] in names]:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=15)
            self.procs.remove((name, proc))

    def _first_wave(self) -> None:
        live = ["--live"] if self.live else []
        first = [
            self._launch(
                f"sim-{vendor}",
                ["-m", "soc_simulators", vendor, "--port", str(port), *live, *DEMO_PROFILE.get(vendor, [])],
                f"http://127.0.0.1:{port}/_sim/state",
            )
            for vendor, port in self.sim_ports.items()
        ]
        first.append(self._launch("auth", ["-m", SERVICES["auth"]], f"{self.url('auth')}/healthz"))
        self._wait(first)

    def stop(self) -> None:
        for _name, proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
        for _name, proc in reversed(self.procs):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.procs.clear()


def main() -> None:  # pragma: no cover - a developer's tool
    from soc_shared.provision import provision_database, provision_vhost

    name = f"soc_dev_{os.environ.get('USER', 'console')}"
    os.environ.setdefault("SOC_ENV", "dev")
    os.environ["SOC_DB_NAME"] = name
    os.environ["SOC_AMQP_URL"] = f"amqp://soc:soc@127.0.0.1:5672/{name}"
    provision_database(name, fresh=True)
    provision_vhost(name, fresh=True)
    stack = ConsoleStack(live="--live" in sys.argv)
    # SIGTERM (kill <pid>) stops the children too, as Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        stack.start()
        print(f"console: {stack.gateway}/   admin: {ADMIN_USERNAME} / {ADMIN_PASSWORD}", flush=True)  # noqa: T201
        for line in stack.logins:
            print("  " + line, flush=True)  # noqa: T201
        while True:
            time.sleep(3600)
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
