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
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from soc_shared.testing import Launched, Launcher, PortTaken, free_port

ROOT = Path(__file__).resolve().parents[2]
LOGS = ROOT / ".local" / "logs" / "browser"
STATE = LOGS / "dev-stack.json"  # the running development stack's ports (main())
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
DEMO_PROFILE = {
    vendor: ["--profile", "demo"] for vendor in ("qradar", "xsoar", "sdp")
}  # as make up (scripts/run_suite.py) starts it
OIDC_DIR = ROOT / "scripts" / "oidc-provider"
OIDC_CLIENT_SECRET = "console-oidc-client-secret-0123456789abcdef"
# The identity provider's people (a real OpenID Provider: the oidc-provider package on Node). Their
# groups map to companies as the demo's directory groups do.
OIDC_ACCOUNTS = {
    "olivia": {
        "password": "olivia-pass",
        "claims": {"email": "olivia@acme.example", "name": "Olivia Ortiz", "groups": ["acme-soc-users"]},
    },
    "uma": {
        "password": "uma-pass",
        "claims": {"email": "uma@nowhere.example", "name": "Uma Unmapped", "groups": ["elsewhere"]},
    },
}


def oidc_available() -> bool:
    """Node and the provider's packages (npm ci when missing); without Node the stack has no SSO."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        return False
    if not (OIDC_DIR / "node_modules" / "oidc-provider").exists():
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=OIDC_DIR,
            check=True,
            timeout=300,
        )
    return True


class ConsoleStack:
    def __init__(self, *, live: bool = False, db: str | None = None, vhost: str | None = None) -> None:
        self.live = live
        self.db, self.vhost = db, vhost
        self.ports = {name: free_port() for name in SERVICES}
        self.sim_ports = {vendor: free_port() for vendor in SIMULATORS}
        self.oidc_port = free_port() if oidc_available() else None
        self.launcher = Launcher(env={}, logs=LOGS)
        self.logins: list[str] = []
        self._policy_gateways: dict[str, str] = {}
        self.base_env: dict[str, str] | None = None  # the environment of an attached stack

    @property
    def env(self) -> dict[str, str]:
        url = self.url
        return {
            **(self.base_env or os.environ),
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
            **self._oidc(),
        }

    @property
    def oidc_issuer(self) -> str | None:
        return f"http://127.0.0.1:{self.oidc_port}" if self.oidc_port else None

    def _oidc(self) -> dict[str, str]:
        if not self.oidc_issuer:
            return {}
        provider = {
            "name": "corp",
            "display_name": "Corporate SSO",
            "issuer": self.oidc_issuer,
            "client_id": "soc-console",
            "client_secret": OIDC_CLIENT_SECRET,
            "redirect_uri": f"{self.gateway}/sso/callback",
            "allow_http": True,
        }
        return {"SOC_AUTH_OIDC_PROVIDERS": json.dumps([provider])}

    def _oidc_config(self) -> Path:
        config = LOGS / "oidc-provider.json"
        client = {
            "client_id": "soc-console",
            "client_secret": OIDC_CLIENT_SECRET,
            "redirect_uris": [f"{self.gateway}/sso/callback"],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
        }
        config.write_text(
            json.dumps({"port": self.oidc_port, "clients": [client], "accounts": OIDC_ACCOUNTS})
        )
        return config

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

    def _launch(
        self, name: str, args: list[str], health: str, *, program: str | None = None, cwd: Path = ROOT
    ) -> Launched:
        self.launcher.env = self.env  # the ports may have changed since the last wave
        return self.launcher.launch(name, args, health, program=program, cwd=cwd)

    def _wait(self, started: list[Launched], timeout: float = 600) -> None:
        self.launcher.wait(started, timeout)

    def start(self) -> ConsoleStack:
        # Processes start side by side (each spends seconds importing): the simulators and auth
        # first, since every service fetches auth's keys, then the rest. A free port can be taken
        # by someone else before a slow start binds it: then that wave starts again on new ports.
        for attempt in range(3):
            try:
                self._first_wave()
                break
            except PortTaken:
                self._stop_wave(["auth", "oidc", *(f"sim-{v}" for v in SIMULATORS)])
                self.sim_ports = {vendor: free_port() for vendor in SIMULATORS}
                self.oidc_port = free_port() if self.oidc_port else None
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
            except PortTaken as taken:
                self._stop_wave(wave)
                # The gateway's port is in the identity provider's redirect address: kept unless taken.
                self.ports.update(
                    {n: free_port() for n in wave if n != "gateway" or taken.args[0] == "gateway"}
                )
                if attempt == 2:
                    raise
        sys.path.insert(0, str(ROOT / "scripts"))
        from demo import seed_demo

        self.logins = seed_demo(self.gateway, ADMIN_USERNAME, ADMIN_PASSWORD, self.sim_ports)
        return self

    def _stop_wave(self, names: list[str]) -> None:
        for name in names:
            self.launcher.stop(name)

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
        if self.oidc_issuer:
            first.append(
                self._launch(
                    "oidc",
                    ["server.mjs", str(self._oidc_config())],
                    f"{self.oidc_issuer}/.well-known/openid-configuration",
                    program="node",
                    cwd=OIDC_DIR,
                )
            )
        first.append(self._launch("auth", ["-m", SERVICES["auth"]], f"{self.url('auth')}/healthz"))
        self._wait(first)

    def start_policy_gateway(self, mfa_policy: str) -> str:
        """A second auth (MFA policy ``mfa_policy``) and a gateway in front of it and of the same
        services and database: sign-ins through it follow that policy, the rest of the suite keeps
        its own. Started on first use (a test of the policy), stopped with the stack."""
        name = f"policy-{mfa_policy}"
        if name in self._policy_gateways:
            return self._policy_gateways[name]
        for attempt in range(3):
            auth_port, gateway_port = free_port(), free_port()
            auth_url = f"http://127.0.0.1:{auth_port}"
            upstreams = {n: self.url(n) for n in SERVICES if n != "gateway"} | {"auth": auth_url}
            self.launcher.env = self.env | {
                "SOC_AUTH_MFA_POLICY": mfa_policy,
                "SOC_AUTH_PORT": str(auth_port),
                "SOC_AUTH_URL": auth_url,
                "SOC_GATEWAY_PORT": str(gateway_port),
                "SOC_GATEWAY_UPSTREAMS": json.dumps(upstreams),
            }
            try:
                self._wait(
                    [self.launcher.launch(f"{name}-auth", ["-m", SERVICES["auth"]], f"{auth_url}/healthz")]
                )
                gateway = f"http://127.0.0.1:{gateway_port}"
                self._wait(
                    [
                        self.launcher.launch(
                            f"{name}-gateway", ["-m", SERVICES["gateway"]], f"{gateway}/healthz"
                        )
                    ]
                )
                break
            except PortTaken:
                self._stop_wave([f"{name}-auth", f"{name}-gateway"])
                if attempt == 2:
                    raise
        self._policy_gateways[name] = gateway
        return gateway

    def save_state(self, path: Path) -> None:
        """The ports of a running stack, for tests run against it (SOC_CONSOLE_STACK_URL)."""
        path.write_text(
            json.dumps(
                {
                    "ports": self.ports,
                    "sim_ports": self.sim_ports,
                    "oidc_port": self.oidc_port,
                    "db": self.db or os.environ.get("SOC_DB_NAME"),
                    "vhost": self.vhost or os.environ.get("SOC_AMQP_URL", "").rsplit("/", 1)[-1] or None,
                    # The settings its processes run with (a development stack: SOC_ENV=dev, no secrets).
                    "environment": {k: v for k, v in self.env.items() if k.startswith("SOC_")},
                }
            )
        )

    @classmethod
    def attach(cls, path: Path) -> ConsoleStack:
        """A running stack (started by main()) described by its saved state; stop() stops only what
        this object started."""
        state = json.loads(path.read_text())
        stack = cls.__new__(cls)
        stack.live = False
        stack.db, stack.vhost = state["db"], state["vhost"]
        stack.ports, stack.sim_ports, stack.oidc_port = state["ports"], state["sim_ports"], state["oidc_port"]
        stack.launcher = Launcher(env={}, logs=LOGS)
        stack.logins = []
        stack._policy_gateways = {}
        stack.base_env = {k: v for k, v in os.environ.items() if not k.startswith("SOC_")} | state[
            "environment"
        ]
        return stack

    def stop(self) -> None:
        self.launcher.stop_all()


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
        stack.save_state(STATE)
        print(f"console: {stack.gateway}/   admin: {ADMIN_USERNAME} / {ADMIN_PASSWORD}", flush=True)  # noqa: T201
        for line in stack.logins:
            print("  " + line, flush=True)  # noqa: T201
        while True:
            time.sleep(3600)
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
