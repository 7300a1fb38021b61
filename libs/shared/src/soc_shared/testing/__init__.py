"""Test support shared by every service's tests: real servers (local or testcontainers), a fresh
database and vhost per test session, and tokens signed with a session key."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from soc_shared.security import TokenVerifier

REPO_ROOT = Path(__file__).resolve().parents[5]
SHARED_DIR = REPO_ROOT.parent / "shared"
# Recorded vendor answers, copied into the repository (tests never read files outside it).
VENDOR_SAMPLES = REPO_ROOT / "tests" / "fixtures" / "vendor-samples"

# One database and vhost per test session; override to run two sessions side by side.
TEST_DB = os.environ.get("SOC_TEST_DB", "soc_test")
TEST_VHOST = os.environ.get("SOC_TEST_VHOST", TEST_DB)


def _port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def docker_available() -> bool:
    if os.environ.get("SOC_TEST_CONTAINERS", "auto") == "0" or shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=5).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@dataclass
class Stack:
    """Where the real servers of this test session are, and what to stop at the end."""

    kind: str
    containers: list[Any] = field(default_factory=list)

    def stop(self) -> None:
        for c in self.containers:
            c.stop()


def start_containers() -> Stack:  # pragma: no cover - only where a Docker engine answers
    import psycopg
    from testcontainers.postgres import PostgresContainer
    from testcontainers.rabbitmq import RabbitMqContainer

    pg = PostgresContainer("postgres:15", username="postgres", password="postgres", dbname="postgres").start()
    mq = (
        RabbitMqContainer("rabbitmq:3.12-management", username="soc", password="soc")
        .with_exposed_ports(5672, 15672)
        .start()
    )
    os.environ["SOC_DB_HOST"] = pg.get_container_host_ip()
    os.environ["SOC_DB_PORT"] = str(pg.get_exposed_port(5432))
    with psycopg.connect(
        host=os.environ["SOC_DB_HOST"],
        port=os.environ["SOC_DB_PORT"],
        user="postgres",
        password="postgres",
        dbname="postgres",
        autocommit=True,
    ) as conn:
        conn.execute("CREATE ROLE soc_admin LOGIN SUPERUSER PASSWORD 'soc_admin'")
    host = mq.get_container_host_ip()
    os.environ["SOC_AMQP_HOSTPORT"] = f"{host}:{mq.get_exposed_port(5672)}"
    os.environ["SOC_AMQP_MGMT_URL"] = f"http://{host}:{mq.get_exposed_port(15672)}"
    return Stack("containers", [pg, mq])


def start_local() -> Stack:
    """The project's own servers from Debian packages (scripts/deps.sh), started if not running."""
    ports = [
        int(os.environ.get("SOC_DB_PORT", "55432")),
        int(os.environ.get("SOC_AMQP_PORT", "5672")),
        int(os.environ.get("SOC_LDAP_PORT", "3389")),
    ]
    if not all(_port_open("127.0.0.1", p) for p in ports):
        subprocess.run(["bash", str(REPO_ROOT / "scripts" / "deps.sh"), "start"], check=True)
    for _ in range(100):
        if all(_port_open("127.0.0.1", p) for p in ports):
            break
        time.sleep(0.1)
    return Stack("local")


def provide_test_secrets() -> dict[str, str]:
    """Secrets for a non-dev run against the local servers, put in the environment (kept if set).

    Outside ``dev`` no service starts on a built-in secret (``soc_shared.settings``): the sealing
    keys and the service secret are random for each session; the database, broker and directory
    passwords are those of the local servers (scripts/deps.sh), stated explicitly."""
    import base64
    import secrets

    from soc_shared.provision import SERVICE_SCHEMAS, TENANT_APP_ROLE

    values = {
        "SOC_SEALING_KEYS": f"t{secrets.token_hex(3)}:{base64.b64encode(secrets.token_bytes(32)).decode()}",
        "SOC_SERVICE_SECRET": secrets.token_urlsafe(24),
        "SOC_AUTH_LDAP_BIND_PASSWORD": os.environ.get("SOC_LDAP_BIND_PASSWORD", "svc-portal-pass"),
    }
    for role in [f"soc_{s}" for s in SERVICE_SCHEMAS] + [TENANT_APP_ROLE]:
        values[f"SOC_DB_PASSWORD_{role.upper()}"] = role
    for name, value in values.items():
        os.environ.setdefault(name, value)
    return {name: os.environ[name] for name in values}


def prepare_session() -> Stack:
    """Start or find the servers, then give this session a fresh database and vhost."""
    from soc_shared.provision import provision_database, provision_vhost

    stack = start_containers() if docker_available() else start_local()
    os.environ["SOC_ENV"] = "test"
    os.environ["SOC_CHECK_RESPONSES"] = "1"
    os.environ["SOC_DB_NAME"] = TEST_DB
    hostport = os.environ.get("SOC_AMQP_HOSTPORT", "127.0.0.1:5672")
    os.environ["SOC_AMQP_URL"] = f"amqp://soc:soc@{hostport}/{TEST_VHOST}"
    os.environ.setdefault("SOC_LDAP_URLS", "ldap://127.0.0.1:3389")
    provide_test_secrets()
    provision_database(TEST_DB, fresh=True)
    provision_vhost(TEST_VHOST, fresh=True)
    return stack


class TokenFactory:
    """Signs tokens like the auth service does, with a key of this test session."""

    def __init__(self, issuer: str = "soc-portal-auth", audience: str = "soc-portal") -> None:
        from soc_shared.security import generate_signing_key, public_jwk

        self.issuer = issuer
        self.audience = audience
        self.key, self.kid = generate_signing_key()
        self.jwks = {"keys": [public_jwk(self.key, self.kid)]}

    def verifier(self) -> TokenVerifier:
        from soc_shared.security import TokenVerifier

        return TokenVerifier.from_keys(self.jwks, self.issuer, self.audience)

    def token(
        self,
        *,
        kind: str = "admin",
        sub: str | None = None,
        username: str | None = None,
        roles: list[str] | None = None,
        permissions: list[str] | None = None,
        company_id: str | None = None,
        read_only: bool = False,
        typ: str = "access",
        ttl: int = 900,
        **extra: Any,
    ) -> str:
        from soc_shared.security import sign_token

        now = int(time.time())
        sub = sub or str(uuid.uuid4())
        default_roles = {"admin": ["SUPER_ADMIN"], "tenant": ["TENANT_ADMIN"], "service": []}[kind]
        claims = {
            "sub": sub,
            "username": username or f"{kind}-{sub[:8]}",
            "kind": kind,
            "roles": default_roles if roles is None else roles,
            "permissions": ["DASHBOARD", "REPORTS", "THREAT_INTELLIGENCE", "ASSETS"]
            if permissions is None
            else permissions,
            "company_id": company_id,
            "read_only": read_only,
            "typ": typ,
            "jti": uuid.uuid4().hex,
            "iat": now,
            "nbf": now,
            "exp": now + ttl,
            "iss": self.issuer,
            "aud": self.audience,
            **extra,
        }
        return sign_token(self.key, self.kid, claims)

    def headers(self, **kw: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(**kw)}"}


class EventTap:
    """A temporary exclusive queue on ``soc.events``: collects every event published under the
    bound routing keys, for tests that assert what a service put on the bus."""

    def __init__(self, name: str = "tests") -> None:
        self.name = name
        self.events: list[Any] = []
        self._channel: Any = None
        self._queue: Any = None
        self._drained = 0

    async def start(self, bus: Any, keys: Any) -> EventTap:
        from soc_shared.bus import decode_message

        self._channel = await bus.channel(prefetch=5000)
        queue = await self._channel.declare_queue(
            f"{self.name}.tap.{uuid.uuid4().hex[:8]}", exclusive=True, auto_delete=True
        )
        for key in keys:
            await queue.bind("soc.events", routing_key=key)

        async def on_message(message: Any) -> None:
            events, _ = decode_message(message.body, message.content_type)
            self.events.extend(envelope for envelope, _ in events)
            await message.ack()

        await queue.consume(on_message)
        self._queue = queue
        return self

    def of(self, integration_id: str, routing_key: str | None = None) -> list[Any]:
        return [
            e
            for e in self.events
            if e.integrationid == integration_id
            and (routing_key is None or e.type == f"soc.{routing_key}.v1")
        ]

    async def settle(self, quiet: float = 0.3, limit: float = 15.0) -> None:
        """Wait until no new event arrived for ``quiet`` seconds (confirmed ≠ delivered to us yet)."""
        import asyncio

        deadline = time.monotonic() + limit
        seen = -1
        while time.monotonic() < deadline:
            if len(self.events) == seen:
                return
            seen = len(self.events)
            await asyncio.sleep(quiet)

    async def drain(self) -> list[dict[str, Any]]:
        """The events received since the last drain, as they were on the wire (JSON objects), once
        the queue is empty and nothing arrived for a moment (publishes are confirmed, so whatever a
        finished run published is already queued)."""
        import asyncio

        stable = 0
        while stable < 3:
            before = len(self.events)
            await asyncio.sleep(0.02)
            waiting = (
                await self._channel.declare_queue(self._queue.name, passive=True)
            ).declaration_result.message_count
            stable = stable + 1 if waiting == 0 and len(self.events) == before else 0
        fresh, self._drained = self.events[self._drained :], len(self.events)
        return [e.model_dump(mode="json", exclude_none=True) for e in fresh]

    async def stop(self) -> None:
        if self._channel is not None:
            await self._channel.close()


def free_port() -> int:
    """A free loopback TCP port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerThread:
    """A uvicorn server in a thread of its own (its own event loop), on a loopback port."""

    def __init__(self, app: Any, port: int | None = None, **ssl: Any) -> None:
        import uvicorn

        self.port = port or free_port()
        # A test's control client may sit idle longer than uvicorn's 5 s keep-alive on a loaded
        # machine; the server closing that connection just as the client reuses it reads as
        # "server disconnected" in a test that is about something else.
        self.server = uvicorn.Server(
            uvicorn.Config(
                app,
                host="127.0.0.1",
                port=self.port,
                log_level="warning",
                lifespan="off",
                timeout_keep_alive=120,
                **ssl,
            )
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("test server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


# ------------------------------------------------------------------------ service processes on ports
# What tests, benches and scripts start as real processes: ``python -m <module>`` per service.
SERVICE_MODULES = {
    "auth": "soc_auth",
    "tenant": "soc_tenant",
    "siem-ingest": "soc_siem_ingest",
    "soar-ingest": "soc_soar_ingest",
    "itsm-ingest": "soc_itsm_ingest",
    "threatintel": "soc_threatintel",
    "gateway": "soc_gateway",
}


def listen_port() -> int:
    """A free port below the kernel's ephemeral range, for a process started later: no outgoing
    connection of another process takes it between this check and the process's bind."""
    import random

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


def healthy(url: str) -> bool:
    """Whether ``url`` answers 200 within a second."""
    import httpx

    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


class PortTaken(RuntimeError):
    """A process could not bind the free port chosen for it: someone else took it meanwhile."""


@dataclass
class Launched:
    name: str
    proc: subprocess.Popen[bytes]
    health: str


class Launcher:
    """Starts processes (``python <args>``, one log file each under ``logs``), waits until each
    answers 200 on its health URL, stops them. Used by the e2e, contract and browser suites, the
    benches and the chaos run."""

    def __init__(self, *, env: dict[str, str], logs: Path, cwd: Path = REPO_ROOT) -> None:
        self.env = env
        self.logs = logs
        self.cwd = cwd
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        logs.mkdir(parents=True, exist_ok=True)

    def log_path(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def log_tail(self, name: str, chars: int = 3000) -> str:
        try:
            return self.log_path(name).read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def spawn(
        self, name: str, args: list[str], *, program: str | None = None, cwd: Path | None = None
    ) -> subprocess.Popen[bytes]:
        """Start ``<program> <args>`` (default: this Python) with the launcher's environment, output
        appended to its log."""
        import sys

        with open(self.log_path(name), "ab") as log:
            return subprocess.Popen(
                [program or sys.executable, *args],
                cwd=cwd or self.cwd,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def launch(
        self, name: str, args: list[str], health: str, *, program: str | None = None, cwd: Path | None = None
    ) -> Launched:
        proc = self.spawn(name, args, program=program, cwd=cwd)
        self.procs[name] = proc
        return Launched(name, proc, health)

    def wait(self, started: list[Launched], timeout: float = 120) -> None:
        """Until every started process answers on its health URL; a process that exits fails it
        (``PortTaken`` when its port was taken meanwhile), with the tail of its log."""
        deadline = time.monotonic() + timeout
        pending = list(started)
        while pending:
            for item in list(pending):
                if item.proc.poll() is not None:
                    tail = self.log_tail(item.name)
                    if "address already in use" in tail[-600:]:
                        raise PortTaken(item.name)
                    raise RuntimeError(f"{item.name} exited with {item.proc.returncode}: {tail}")
                if healthy(item.health):
                    pending.remove(item)
            if not pending:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"not healthy after {timeout}s: {[p.name for p in pending]}; see {self.logs}"
                )
            time.sleep(0.2)

    def start(self, name: str, args: list[str], health: str, timeout: float = 120) -> subprocess.Popen[bytes]:
        """Launch one process and wait until it is healthy."""
        launched = self.launch(name, args, health)
        self.wait([launched], timeout)
        return launched.proc

    def stop(self, name: str) -> None:
        proc = self.procs.pop(name, None)
        if proc is not None:
            _terminate([proc])

    def stop_all(self) -> None:
        procs = list(reversed(self.procs.values()))
        self.procs.clear()
        _terminate(procs)


def _terminate(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


# ---------------------------------------------------------------------------- CPU for the benches
def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc; 0 where unreadable). Unlike wall
    time, it is hardly disturbed by whatever else shares the machine."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def pids_where(predicate: Callable[[str, str], bool]) -> list[int]:
    """Processes whose (command name, command line) satisfy ``predicate``."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            comm = (proc / "comm").read_text().strip()
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if predicate(comm, cmdline):
            found.append(int(proc.name))
    return found


def broker_pid() -> int | None:
    """The RabbitMQ node's process (``beam.smp``), if one runs on this machine."""
    pids = pids_where(lambda comm, _: comm == "beam.smp")
    return pids[0] if pids else None
