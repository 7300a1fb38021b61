"""Many tenants: one replica of siem-ingest serving thousands of QRadar integrations, each polled
every 60 s, every stage its own process (QRadar simulator fleet → siem-ingest → RabbitMQ → tenant →
PostgreSQL → tenant API).

    uv run --frozen python bench/many_tenants_bench.py [--steps 250,500,1000,2000] [--window 120]
        [--offenses 40] [--second-replica] [--concurrency 4]

One simulator process serves every console (``--instances``: console n under ``/i/<n>/``, its own
seeded history of ``--offenses`` offenses, about a fifth of them open). Integrations are added
through the tenant API in steps; after each step has done its first sync, a measuring window
changes random consoles (``/_sim/tick``: 1-3 new offenses, updates, closes) every
``--change-every`` seconds and records when each new offense becomes visible through the tenant API
(``GET /tenant/offenses/by-qradar-id/...``): the freshness lag from a vendor change to the API,
which the aim bounds by the polling interval + 5 s. Printed per step: the lag (p50/p95/max),
sync runs/s, siem-ingest CPU % and RSS, PostgreSQL connections per role, and broker connections and
channels per user. With ``--second-replica`` a second siem-ingest process joins for a last window
and the runs each replica did are printed (leases split the work; ``soc_sync_runs_total`` of each
replica's ``/metrics``).

The Ariel-computed resources (EPS, the 21 metric families) are switched off per integration
(``eps_enabled: false``, ``metric_families: []``): the bench measures the polling of offenses, notes
and the reference snapshots, not a console's search engine. Figures, never assertions; the load
average is printed with them (a shared machine). Database and vhost ``soc_bench_tenants`` are
(re)created for the run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import statistics
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from e2e_bench import ADMIN_PASSWORD, ROOT, CpuMeter, Suite, summarise_profile  # noqa: E402
from soc_shared.testing import free_port  # noqa: E402

BENCH_DB = "soc_bench_tenants"
LOGS = ROOT / ".local" / "logs" / "many-tenants-bench"
MODULES = {"auth": "soc_auth", "tenant": "soc_tenant", "siem-ingest": "soc_siem_ingest"}
SETTINGS = {"eps_enabled": False, "metric_families": []}


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Observer:
    """PostgreSQL connections (per role) and RabbitMQ connections/channels (per user) of the bench."""

    def __init__(self) -> None:
        import psycopg
        from soc_shared.provision import admin_dsn

        self.pg = psycopg.connect(admin_dsn(BENCH_DB), autocommit=True)
        self.mgmt = httpx.Client(
            base_url=os.environ.get("SOC_AMQP_MGMT_URL", "http://127.0.0.1:15672"),
            auth=("soc", "soc"),
            timeout=10,
        )

    def db_connections(self) -> dict[str, int]:
        rows = self.pg.execute(
            "SELECT usename, count(*) FROM pg_stat_activity WHERE datname = %s GROUP BY 1 ORDER BY 1",
            (BENCH_DB,),
        ).fetchall()
        return {str(u): int(n) for u, n in rows}

    def broker(self) -> dict[str, tuple[int, int]]:
        """user → (connections, channels) on the bench's vhost."""
        try:
            conns = self.mgmt.get("/api/connections", params={"columns": "user,vhost,channels"}).json()
        except (httpx.HTTPError, ValueError):
            return {}
        out: dict[str, tuple[int, int]] = {}
        for c in conns:
            if c.get("vhost") != BENCH_DB:
                continue
            n, ch = out.get(c["user"], (0, 0))
            out[c["user"]] = (n + 1, ch + int(c.get("channels") or 0))
        return out

    def known(self, integration_ids: list[str]) -> int:
        """Integrations the ingestor has applied (from ``tenant.integration.changed``)."""
        row = self.pg.execute(
            "SELECT count(*) FROM siem_ingest.integration WHERE id = ANY(%s)", (integration_ids,)
        ).fetchone()
        return int(row[0]) if row else 0

    def waits(self) -> str:
        """What the bench database's backends are doing now (state / wait event), most common first."""
        rows = self.pg.execute(
            """SELECT usename, coalesce(wait_event_type || ':' || wait_event, state), count(*)
               FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()
               AND state <> 'idle' GROUP BY 1, 2 ORDER BY 3 DESC LIMIT 6""",
            (BENCH_DB,),
        ).fetchall()
        return ", ".join(f"{u.removeprefix('soc_')} {w} {n}" for u, w, n in rows) or "all idle"

    def queue(self, name: str) -> tuple[int, int]:
        """(ready, unacked) messages of one queue of the bench's vhost."""
        try:
            q = self.mgmt.get(f"/api/queues/{BENCH_DB}/{name}").json()
        except (httpx.HTTPError, ValueError):
            return (-1, -1)
        return int(q.get("messages_ready") or 0), int(q.get("messages_unacknowledged") or 0)

    def synced(self, integration_ids: list[str]) -> int:
        """Integrations whose offenses and notes both synced once."""
        row = self.pg.execute(
            """SELECT count(*) FROM (
                 SELECT integration_id FROM siem_ingest.sync_state
                 WHERE integration_id = ANY(%s) AND resource IN ('offenses', 'offense_notes')
                   AND last_success_at IS NOT NULL
                 GROUP BY 1 HAVING count(*) = 2) s""",
            (integration_ids,),
        ).fetchone()
        return int(row[0]) if row else 0


def runs_total(metrics_url: str) -> float:
    try:
        text = httpx.get(metrics_url, timeout=10).text
    except httpx.HTTPError:
        return 0.0
    return sum(float(m[1]) for m in re.finditer(r"^soc_sync_runs_total\{[^}]*\} ([0-9.e+]+)$", text, re.M))


async def create_integrations(
    api: httpx.AsyncClient, sim: str, first: int, last: int, interval: int
) -> list[tuple[int, str]]:
    sem = asyncio.Semaphore(8)

    async def one(n: int) -> tuple[int, str]:
        async with sem:
            for attempt in range(5):
                r = await api.post(
                    "/integration/",
                    json={
                        "integration_type": "SIEM",
                        "subtype": "IBM_QRADAR",
                        "instance_name": f"console {n}",
                        "base_url": f"{sim}/i/{n}",
                        "verify_tls": True,
                        "polling_interval_seconds": interval,
                        "credential_kind": "API_KEY",
                        "credentials": {"api_key": "qradar-demo-token"},
                        "settings": SETTINGS,
                    },
                )
                if r.status_code == 201:
                    return n, str(r.json()["id"])
                await asyncio.sleep(1 + attempt)
            r.raise_for_status()
            raise AssertionError("unreachable")

    return list(await asyncio.gather(*(one(n) for n in range(first, last))))


async def measure(
    api: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    consoles: list[tuple[int, str]],
    window: float,
    change_every: float,
) -> list[float]:
    """Change random consoles during ``window`` s; the lag of every new offense until the API shows it."""
    lags: list[float] = []
    pending: list[tuple[float, str, int]] = []
    stop = time.monotonic() + window

    async def changer() -> None:
        while time.monotonic() < stop:
            n, integration = random.choice(consoles)
            t = time.time()
            r = await sim.post(f"/i/{n}/_sim/tick")
            if r.status_code == 200:
                pending.extend((t, integration, oid) for oid in r.json()["created"])
            await asyncio.sleep(change_every)

    async def checker() -> None:
        give_up = stop + 180
        while (time.monotonic() < stop or pending) and time.monotonic() < give_up:
            for item in list(pending):
                t, integration, oid = item
                r = await api.get(f"/tenant/offenses/by-qradar-id/{integration}/{oid}/")
                if r.status_code == 200:
                    lags.append(time.time() - t)
                    pending.remove(item)
            await asyncio.sleep(1.0)
        if pending:
            print(f"  {len(pending)} changes not visible 180 s after the window")

    await asyncio.gather(changer(), checker())
    return lags


async def run(args: argparse.Namespace, suite: Suite) -> None:
    steps = [int(x) for x in args.steps.split(",")]
    tenant = suite.url("tenant")
    token = args.token
    headers = {"authorization": f"Bearer {token}"}
    observer = Observer()
    consoles: list[tuple[int, str]] = []
    ingest = suite.procs["siem-ingest"].pid
    meter = CpuMeter({name: proc.pid for name, proc in suite.procs.items()})
    print(f"{os.cpu_count()} CPU cores; load average {load()} at the start\n")
    header = (
        f"{'integrations':>12} {'lag p50':>8} {'p95':>7} {'max':>7} {'n':>4} {'runs/s':>7} "
        f"{'ingest CPU%':>11} {'RSS MB':>7} {'tenant CPU%':>11} {'PG conns':>22} {'broker conns/chans':>28} load"
    )
    async with (
        httpx.AsyncClient(base_url=tenant, headers=headers, timeout=60) as api,
        httpx.AsyncClient(base_url=suite.url("sim-qradar"), timeout=60) as sim,
    ):
        rows = []
        for target in steps:
            began = time.monotonic()
            consoles += await create_integrations(
                api, suite.url("sim-qradar"), len(consoles), target, args.interval
            )
            ids = [i for _, i in consoles]
            created = time.monotonic()
            print(f"{target} integrations created in {created - began:.0f} s (load {load()})")
            all_known = None
            while observer.synced(ids) < len(ids) and time.monotonic() - began < args.warmup:
                known = observer.known(ids)
                if known == len(ids) and all_known is None:
                    all_known = time.monotonic() - began
                ready, unacked = observer.queue("siem-ingest.integrations")
                print(
                    f"  {time.monotonic() - began:5.0f} s: ingestor knows {known}, first sync of "
                    f"{observer.synced(ids)}; integration changes queued {ready}+{unacked}; "
                    f"db: {observer.waits()}; load {load()}"
                )
                await asyncio.sleep(10)
            done = observer.synced(ids)
            when = f"after {all_known:.0f} s" if all_known is not None else "within the warm-up"
            print(
                f"{target} integrations: all known to the ingestor {when}, "
                f"first sync of {done} done {time.monotonic() - began:.0f} s after adding them"
            )
            rows.append(await window(args, api, sim, consoles, observer, meter, ingest, suite, target))
            print(header)
            print(rows[-1])
        if args.second_replica:
            before = {"siem-ingest": runs_total(f"{suite.url('siem-ingest')}/metrics")}
            second = free_port()
            suite.ports["siem-ingest-2"] = second
            suite.start(
                "siem-ingest-2",
                ["-m", "soc_siem_ingest"],
                f"http://127.0.0.1:{second}/healthz",
                env={"SOC_SIEM_INGEST_PORT": str(second)},
            )
            meter.procs["siem-ingest-2"] = suite.procs["siem-ingest-2"].pid
            before["siem-ingest-2"] = runs_total(f"http://127.0.0.1:{second}/metrics")
            row = await window(args, api, sim, consoles, observer, meter, ingest, suite, len(consoles))
            after = {
                "siem-ingest": runs_total(f"{suite.url('siem-ingest')}/metrics"),
                "siem-ingest-2": runs_total(f"http://127.0.0.1:{second}/metrics"),
            }
            print("\nwith a second replica:")
            print(header)
            print(row)
            for name in after:
                print(f"  {name}: {after[name] - before[name]:.0f} sync runs in the window")


async def window(
    args: argparse.Namespace,
    api: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    consoles: list[tuple[int, str]],
    observer: Observer,
    meter: CpuMeter,
    ingest: int,
    suite: Suite,
    target: int,
) -> str:
    runs_before = runs_total(f"{suite.url('siem-ingest')}/metrics") + (
        runs_total(f"http://127.0.0.1:{suite.ports['siem-ingest-2']}/metrics")
        if "siem-ingest-2" in suite.ports
        else 0
    )
    cpu_before = meter.reading()
    t0 = time.monotonic()
    samples: list[tuple[dict[str, int], dict[str, tuple[int, int]], float]] = []

    async def sample() -> None:
        while time.monotonic() - t0 < args.window:
            samples.append((observer.db_connections(), observer.broker(), rss_mb(ingest)))
            await asyncio.sleep(10)

    lags, _ = await asyncio.gather(measure(api, sim, consoles, args.window, args.change_every), sample())
    elapsed = time.monotonic() - t0
    cpu_after = meter.reading()
    runs_after = runs_total(f"{suite.url('siem-ingest')}/metrics") + (
        runs_total(f"http://127.0.0.1:{suite.ports['siem-ingest-2']}/metrics")
        if "siem-ingest-2" in suite.ports
        else 0
    )
    ingest_cpu = (
        sum(cpu_after.get(n, 0.0) - cpu_before.get(n, 0.0) for n in ("siem-ingest", "siem-ingest-2"))
        / elapsed
    )
    tenant_cpu = (cpu_after["tenant"] - cpu_before["tenant"]) / elapsed
    db, broker, rss = samples[-1] if samples else ({}, {}, 0.0)
    peak_db = max((sum(d.values()) for d, _, _ in samples), default=0)
    db_text = ",".join(f"{u.removeprefix('soc_')}:{n}" for u, n in db.items()) + f" (peak {peak_db})"
    broker_text = ",".join(f"{u.removeprefix('soc-')}:{c}/{ch}" for u, (c, ch) in broker.items())
    return (
        f"{target:>12} {statistics.median(lags) if lags else float('nan'):>7.1f}s {pct(lags, 0.95):>6.1f}s "
        f"{max(lags, default=float('nan')):>6.1f}s {len(lags):>4} {(runs_after - runs_before) / elapsed:>7.1f} "
        f"{100 * ingest_cpu:>10.0f}% {max(rss, max((s[2] for s in samples), default=0)):>7.0f} "
        f"{100 * tenant_cpu:>10.0f}% {db_text:>22} {broker_text:>28} {load()}"
    )


def main() -> None:
    global BENCH_DB
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", default="250,500,1000,2000", help="integrations after each step")
    parser.add_argument("--window", type=float, default=120, help="seconds measured per step")
    parser.add_argument("--interval", type=int, default=60, help="polling interval of every integration")
    parser.add_argument("--offenses", type=int, default=40, help="seeded offenses per console")
    parser.add_argument("--change-every", type=float, default=2.0, help="seconds between console changes")
    parser.add_argument(
        "--warmup", type=float, default=600, help="at most this long for a step's first syncs"
    )
    parser.add_argument("--concurrency", type=int, default=4, help="siem-ingest runs at once per replica")
    parser.add_argument("--second-replica", action="store_true")
    parser.add_argument("--db", default=BENCH_DB, help="database and vhost of the run ((re)created)")
    parser.add_argument("--profile", default="", help="comma list of processes to run under cProfile")
    args = parser.parse_args()
    BENCH_DB = args.db
    os.environ["SOC_DB_NAME"] = BENCH_DB
    from soc_shared.provision import provision_database, provision_vhost

    provision_database(BENCH_DB, fresh=True)
    provision_vhost(BENCH_DB, fresh=True)
    suite = Suite(db=BENCH_DB, modules=MODULES, logs=LOGS)
    suite.env["SOC_SIEM_INGEST_CONCURRENCY"] = str(args.concurrency)
    # One login serves the whole run (steps of thousands of integrations outlast the default 15 min).
    suite.env["SOC_AUTH_ACCESS_TOKEN_TTL_SECONDS"] = "86400"
    suite.profiled = {n for n in args.profile.split(",") if n}
    try:
        instances = max(int(x) for x in args.steps.split(","))
        sim = suite.url("sim-qradar")
        suite.start(
            "sim-qradar",
            ["-m", "soc_simulators", "qradar", "--port", str(suite.ports["sim-qradar"]),
             "--instances", str(instances), "--offenses", str(args.offenses)],
            f"{sim}/i/0/_sim/state",
        )  # fmt: skip
        for name, module in MODULES.items():
            suite.start(name, ["-m", module], f"{suite.url(name)}/healthz")
        args.token = httpx.post(
            f"{suite.url('auth')}/auth/login/",
            json={"username": "admin", "password": ADMIN_PASSWORD},
            timeout=30,
        ).json()["access_token"]
        asyncio.run(run(args, suite))
    finally:
        suite.stop()
        for name in suite.profiled:
            target = LOGS / f"profile-{name}.prof"
            if target.exists():
                summarise_profile(target)
                print(f"profile of {name}: {target.with_suffix('.summary.txt')}")


if __name__ == "__main__":
    main()
