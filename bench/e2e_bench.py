"""The whole path, every stage its own process: QRadar simulator → siem-ingest → RabbitMQ →
tenant read model → PostgreSQL → visible through the gateway.

    uv run --frozen python bench/e2e_bench.py [--offenses 100000] [--no-notes] [--profile siem-ingest,tenant]

An admin creates a QRadar integration through the gateway (as a person would, public API only);
the clock starts then and stops when `GET /tenant/offenses/` through the gateway counts every
offense the simulator holds. Printed: offenses/s overall (first poll included) and steady (from 10 %
to 90 % visible), when every offense's notes (their own resource) are stored too, and the CPU each process spent per offense (from /proc: on a shared 2-core
machine wall-clock rates depend on whatever else runs, CPU per offense does not). PostgreSQL's CPU
is that of the backends serving this bench's database; its background writers are not counted.

The broker's CPU is the whole RabbitMQ node's (other users of a shared broker included).

``--profile`` runs the named processes under cProfile (a sampling profiler cannot attach to
processes in this sandbox) and writes each one's dump and its busiest functions to
``.local/logs/e2e-bench/`` when it stops; profiled processes run slower, so their figures are
not the unprofiled ones. The load average is printed with the figures (a shared machine).

A database and vhost ``soc_bench_e2e`` are (re)created for the run; nothing touches the suite's own.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
from soc_shared.testing import Launcher, broker_pid, cpu_seconds, free_port, pids_where

ROOT = Path(__file__).resolve().parents[1]
BENCH_DB = BENCH_VHOST = "soc_bench_e2e"
LOGS = ROOT / ".local" / "logs" / "e2e-bench"
ADMIN_PASSWORD = "Bench-admin-Passw0rd!"
MODULES = {
    "auth": "soc_auth",
    "tenant": "soc_tenant",
    "siem-ingest": "soc_siem_ingest",
    "gateway": "soc_gateway",
}


class CpuMeter:
    """CPU seconds per named process; PostgreSQL backends of the bench database are summed (they
    come and go with the pools, so each one seen is remembered with its last reading)."""

    def __init__(self, procs: dict[str, int]) -> None:
        self.procs = procs
        self.broker = [pid] if (pid := broker_pid()) else []
        self.pg_seen: dict[int, float] = {}
        self.pg_start: dict[int, float] = {}

    def _pg(self) -> None:
        for pid in pids_where(lambda comm, cmd: comm.startswith("postgres") and BENCH_DB in cmd):
            value = cpu_seconds(pid)
            self.pg_start.setdefault(pid, value if not self.pg_seen else 0.0)
            self.pg_seen[pid] = value

    def reading(self) -> dict[str, float]:
        self._pg()
        values = {name: cpu_seconds(pid) for name, pid in self.procs.items()}
        values["rabbitmq"] = sum(cpu_seconds(pid) for pid in self.broker)
        values["postgres"] = sum(v - self.pg_start.get(pid, 0.0) for pid, v in self.pg_seen.items())
        return values


class Suite:
    def __init__(self, db: str = BENCH_DB, modules: dict[str, str] | None = None, logs: Path = LOGS) -> None:
        modules = MODULES if modules is None else modules
        self.ports = {name: free_port() for name in [*modules, "sim-qradar"]}
        hostport = os.environ.get("SOC_AMQP_HOSTPORT", "127.0.0.1:5672")
        upstreams = {n: self.url(n) for n in modules if n != "gateway"}
        self.profiled: set[str] = set()
        self.env = {
            **os.environ,
            "SOC_ENV": "dev",
            "SOC_LOG_LEVEL": "WARNING",
            "SOC_DB_NAME": db,
            "SOC_AMQP_URL": f"amqp://soc:soc@{hostport}/{db}",
            "SOC_ADMIN_USERNAME": "admin",
            "SOC_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "SOC_AUTH_URL": self.url("auth"),
            "SOC_GATEWAY_UPSTREAMS": json.dumps(upstreams),
            "SOC_TENANT_SIEM_INGEST_URL": self.url("siem-ingest"),
            "SOC_SIEM_INGEST_TENANT_URL": self.url("tenant"),
            # The bench is one client polling hard: the gateway's per-user limits would throttle it.
            "SOC_GATEWAY_RATE_LIMIT_USER_PER_SECOND": "0",
            "SOC_GATEWAY_RATE_LIMIT_ADDRESS_PER_SECOND": "0",
        }
        for name in modules:
            self.env[f"SOC_{name.upper().replace('-', '_')}_PORT"] = str(self.ports[name])
        self.logs = logs
        self.launcher = Launcher(env=self.env, logs=logs)
        self.procs = self.launcher.procs

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def start(self, name: str, args: list[str], health: str, env: dict[str, str] | None = None) -> None:
        if name in self.profiled:
            args = ["-m", "cProfile", "-o", str(self.logs / f"profile-{name}.prof"), *args]
        self.launcher.env = {**self.env, **(env or {})}
        try:
            # a loaded machine (or cProfile) starts slowly
            self.launcher.start(name, args, health, timeout=300)
        finally:
            self.launcher.env = self.env

    def stop(self) -> None:
        for name in self.profiled:
            # SIGINT: the service stops gracefully and cProfile still writes its dump (a re-raised
            # SIGTERM would end the interpreter before it does).
            proc = self.procs.get(name)
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    pass
        self.launcher.stop_all()


def notes_stored() -> int:
    """Offenses whose notes the read model holds (read as the tenant's owner role)."""
    import psycopg
    from soc_shared.provision import role_password
    from soc_tenant.config import Settings

    settings = Settings()
    dsn = (
        f"host={settings.db_host} port={settings.db_port} dbname={BENCH_DB} user={settings.db_user} "
        f"password={settings.db_password.get_secret_value() or role_password(settings.db_user)} "
        "options=-csearch_path=tenant"
    )
    try:
        with psycopg.connect(dsn) as conn:
            row = conn.execute("SELECT count(*) FROM qradar_offense_notes").fetchone()
            return int(row[0]) if row else 0
    except psycopg.Error:
        return 0


def summarise_profile(path: Path, top: int = 30) -> None:
    """The busiest functions of a cProfile dump: own time, then cumulative time."""
    import io
    import pstats

    out = io.StringIO()
    stats = pstats.Stats(str(path), stream=out)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    path.with_suffix(".summary.txt").write_text(out.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--offenses", type=int, default=100_000)
    parser.add_argument(
        "--no-notes",
        action="store_true",
        help="integration setting offense_notes=false (notes not synced at all)",
    )
    parser.add_argument("--profile", default="", help="comma list of processes to run under cProfile")
    args = parser.parse_args()
    os.environ["SOC_DB_NAME"] = BENCH_DB
    from soc_shared.provision import provision_database, provision_vhost

    provision_database(BENCH_DB, fresh=True)
    provision_vhost(BENCH_VHOST, fresh=True)
    suite = Suite()
    suite.profiled = {n for n in args.profile.split(",") if n}
    try:
        sim = suite.url("sim-qradar")
        suite.start(
            "sim-qradar",
            ["-m", "soc_simulators", "qradar", "--port", str(suite.ports["sim-qradar"])],
            f"{sim}/_sim/state",
        )
        seeded = httpx.post(f"{sim}/_sim/seed", json={"offenses": args.offenses}, timeout=600).json()
        total = seeded["total"]
        for name, module in MODULES.items():
            suite.start(name, ["-m", module], f"{suite.url(name)}/healthz")
        gateway = suite.url("gateway")
        api = httpx.Client(base_url=gateway, timeout=30)
        token = api.post("/auth/login/", json={"username": "admin", "password": ADMIN_PASSWORD}).json()
        api.headers["authorization"] = f"Bearer {token['access_token']}"
        meter = CpuMeter({name: proc.pid for name, proc in suite.procs.items()})
        before = meter.reading()
        t0 = time.monotonic()
        created = api.post(
            "/integration/",
            json={
                "integration_type": "SIEM",
                "subtype": "IBM_QRADAR",
                "instance_name": "e2e bench",
                "base_url": sim,
                "verify_tls": True,
                "polling_interval_seconds": 60,
                "credential_kind": "API_KEY",
                "credentials": {"api_key": "qradar-demo-token"},
                "settings": {"offense_notes": False} if args.no_notes else {},
            },
        )
        created.raise_for_status()
        print(
            f"{total} offenses in the simulator, {os.cpu_count()} CPU cores; waiting until the API lists them"
        )
        marks: dict[float, float] = {}
        visible = 0
        deadline = t0 + max(600, total / 500)
        while visible < total and time.monotonic() < deadline:
            r = api.get("/tenant/offenses/", params={"limit": 1})
            if r.status_code == 200:
                visible = r.json()["total"]
                for frac in (0.1, 0.9):
                    if visible >= frac * total and frac not in marks:
                        marks[frac] = time.monotonic()
            meter.reading()  # remembers PostgreSQL backends while they exist
            time.sleep(0.25)
        t_end = time.monotonic()
        after = meter.reading()
        notes_at = None
        if not args.no_notes:
            notes_deadline = time.monotonic() + max(300, total / 200)
            while time.monotonic() < notes_deadline:
                if notes_stored() >= total:
                    notes_at = time.monotonic()
                    break
                time.sleep(1)
        print(f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())} (at the end)")
        if visible < total:
            print(f"only {visible} of {total} visible after {t_end - t0:.0f} s")
        print(
            f"\noverall   {visible / (t_end - t0):>9,.0f} offenses/s  ({visible} in {t_end - t0:.1f} s, first poll included)"
        )
        if 0.1 in marks and 0.9 in marks and marks[0.9] > marks[0.1]:
            print(
                f"steady    {0.8 * total / (marks[0.9] - marks[0.1]):>9,.0f} offenses/s  (10 % → 90 % visible)"
            )
        if notes_at is not None:
            print(f"notes     every offense's notes stored {notes_at - t0:.1f} s after the start")
        elif not args.no_notes:
            print(f"notes     {notes_stored()} of {total} offenses' notes stored when the bench gave up")
        print(f"\n{'process':<14}{'CPU s':>8}{'µs/offense':>12}   (while offenses flowed)")
        total_us = 0.0
        for name in [*suite.procs, "rabbitmq", "postgres"]:
            used = after.get(name, 0.0) - before.get(name, 0.0)
            per = used / max(visible, 1) * 1e6
            total_us += per
            print(f"{name:<14}{used:>8.1f}{per:>12.1f}")
        print(
            f"{'all':<14}{'':>8}{total_us:>12.1f}   (→ {1e6 / max(total_us, 1e-9) * (os.cpu_count() or 1):,.0f} offenses/s on {os.cpu_count()} cores if CPU-bound)"
        )
    finally:
        suite.stop()
    for name in suite.profiled:
        target = LOGS / f"profile-{name}.prof"
        if target.exists():
            summarise_profile(target)
            print(f"profile of {name}: {target.with_suffix('.summary.txt')}")


if __name__ == "__main__":
    main()
