"""soar-ingest benchmark: XSOAR incidents per second from the simulator to broker-confirmed events.

    uv run python bench/soar_ingest_bench.py [--incidents 50000] [--war-rooms 3000] [--quick]

Needs the local PostgreSQL and RabbitMQ (``make deps``). Uses its own database and vhost
(``soc_bench_soar``), recreated on every run. A quorum queue bound to ``soar.#`` stands in for the
tenant service's queue, so the broker really stores every event (persistent messages, confirms);
its message count is checked against the records the sync reports.

Scenarios (one integration = one XSOAR master with four accounts unless said otherwise):

1. in-process: the simulator behind ``httpx.ASGITransport`` in this process, one replica.
2. socket, one replica: the simulator as its own process (uvicorn on loopback) — the honest figure.
3. socket, four integrations (one account each), one replica process vs two replica processes.
4. notes: war rooms read per second (one investigation request per changed incident).

Prints figures; it is not a test. ``per_cpu_second`` is records per CPU-second of the replica's
own process (for the in-process scenario the simulator's work included): on a machine shared with
other work, the wall-clock figure understates what one uncontended core does.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH_DB = "soc_bench_soar"
BENCH_VHOST = "soc_bench_soar"
ROOT = Path(__file__).resolve().parents[1]
ACCOUNTS = ("acme", "globex", "initech", "umbrella")


def _env() -> None:
    """Point every setting at the bench database and vhost (before any Settings is created)."""
    os.environ["SOC_DB_NAME"] = BENCH_DB
    hostport = os.environ.get("SOC_AMQP_HOSTPORT", "127.0.0.1:5672")
    os.environ["SOC_AMQP_URL"] = f"amqp://soc:soc@{hostport}/{BENCH_VHOST}"
    os.environ.setdefault("SOC_LOG_LEVEL", "WARNING")
    os.environ.setdefault("SOC_ENV", "test")
    from soc_shared.testing import provide_test_secrets

    provide_test_secrets()


_env()

import httpx  # noqa: E402
import soc_soar_ingest  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from soc_shared.bus import Bus, queued_event_count  # noqa: E402
from soc_shared.db import Database, migrate  # noqa: E402
from soc_shared.events import IntegrationChanged  # noqa: E402
from soc_shared.logging import setup_logging  # noqa: E402
from soc_shared.provision import provision_database, provision_vhost  # noqa: E402
from soc_shared.sync import Ingestor, integration_table, sync_state_table  # noqa: E402
from soc_simulators import xsoar  # noqa: E402
from soc_soar_ingest.config import Settings  # noqa: E402
from soc_soar_ingest.resources import RESOURCES, sync_for  # noqa: E402
from soc_soar_ingest.state import NoteMarks, note_mark_table  # noqa: E402

CREDENTIALS = {"credential_kind": "API_KEY", "secrets": {"api_key": xsoar.API_KEY}, "ca_pem": None}


async def _credentials(_: str) -> dict[str, Any]:
    return CREDENTIALS


def make_ingestor(settings: Settings, db: Database, bus: Bus, **client_options: Any) -> Ingestor:
    marks = NoteMarks(db)
    return Ingestor(
        name="soar-ingest",
        vendor="xsoar",
        subtype="CORTEX_XSOAR",
        db=db,
        bus=bus,
        resources=RESOURCES,
        client_factory=lambda i, c: sync_for(i, c, settings, marks=marks, **client_options),
        credentials=_credentials,
        concurrency=settings.concurrency,
    )


async def reset(db: Database) -> None:
    async with db.session() as session:
        for table in (note_mark_table, sync_state_table, integration_table):
            await session.execute(sa.delete(table))


async def add_integrations(
    ingestor: Ingestor, base_url: str, per_account: bool, fetch_notes: bool
) -> list[str]:
    groups: list[list[str] | None] = [[a] for a in ACCOUNTS] if per_account else [None]
    ids = []
    async with ingestor.db.session() as session:
        for n, accounts in enumerate(groups):
            integration_id = f"bench-{n}"
            settings: dict[str, Any] = {"fetch_notes": fetch_notes}
            if accounts:
                settings["accounts"] = accounts
            await ingestor.apply_integration(
                session,
                IntegrationChanged(
                    integration_id=integration_id,
                    integration_type="SOAR",
                    subtype="CORTEX_XSOAR",
                    instance_name=integration_id,
                    status="active",
                    base_url=base_url,
                    credential_kind="API_KEY",
                    settings=settings,
                    changed_at=datetime.now(UTC),
                ),
            )
            ids.append(integration_id)
    # Only the resource being measured is due; the others wait an hour.
    return ids


async def only_due(db: Database, resource: str) -> None:
    async with db.session() as session:
        await session.execute(
            sa.update(sync_state_table).values(
                next_run_at=sa.case(
                    (sync_state_table.c.resource == resource, sa.func.now()),
                    else_=sa.func.now() + sa.text("interval '1 hour'"),
                )
            )
        )


async def records(db: Database, resource: str) -> int:
    async with db.session() as session:
        rows = (
            await session.execute(
                sa.select(sync_state_table.c.total_records, sync_state_table.c.last_error).where(
                    sync_state_table.c.resource == resource
                )
            )
        ).all()
    errors = [r.last_error for r in rows if r.last_error]
    if errors:
        raise RuntimeError(f"sync errors: {errors[:3]}")
    return sum(r.total_records for r in rows)


class BrokerQueue:
    """The stand-in for the tenant's queue: counts what the broker stored."""

    def __init__(self, bus: Bus, name: str = "bench.soar") -> None:
        self.bus, self.name = bus, name

    async def reset(self) -> None:
        channel = await self.bus.channel()
        await channel.queue_delete(self.name)
        queue = await channel.declare_queue(self.name, durable=True, arguments={"x-queue-type": "quorum"})
        await queue.bind("soc.events", routing_key="soar.#")
        await channel.close()

    async def count(self) -> int:
        channel = await self.bus.channel()
        queue = await channel.declare_queue(self.name, passive=True)
        count = await queued_event_count(self.bus, queue.name)  # events, not (batch) messages
        await channel.close()
        return count


async def sim_total(url: str) -> int:
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": xsoar.API_KEY}) as client:
        return int((await client.post("/incidents/search", json={"filter": {"size": 1}})).json()["total"])


async def run_until_idle(ingestor: Ingestor) -> None:
    while await ingestor.run_due_once():
        pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_simulator(incidents: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "soc_simulators", "xsoar", "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{url}/_sim/state", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("simulator did not start")
        time.sleep(0.1)
    seeded = httpx.post(f"{url}/_sim/seed", json={"incidents": incidents}, timeout=600).json()
    if seeded.get("created") != incidents:
        proc.kill()
        raise RuntimeError(f"seeding failed: {seeded}")
    # Build every incident's JSON once, as a long-running server would have: the first read of a
    # lazily built incident is not what we measure.
    _warm(url)
    return proc, url


def _warm(url: str) -> None:
    with httpx.Client(base_url=url, headers={"Authorization": xsoar.API_KEY}, timeout=600) as client:
        page = 0
        while True:
            data = client.post("/incidents/search", json={"filter": {"page": page, "size": 1000}}).json()[
                "data"
            ]
            if not data:
                return
            page += 1


async def scenario_in_process(
    settings: Settings, db: Database, bus: Bus, queue: BrokerQueue, n: int
) -> dict[str, Any]:
    sim = xsoar.create_app(seed=7, incidents=0)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=sim), base_url="http://sim") as client:
        await client.post("/_sim/seed", json={"incidents": n - len(sim.state.sim.records)})
        page = 0
        while (
            await client.post(
                "/incidents/search",
                headers={"Authorization": xsoar.API_KEY},
                json={"filter": {"page": page, "size": 1000}},
            )
        ).json()["data"]:
            page += 1  # warm the lazily built documents
    total = len(sim.state.sim.records)
    ingestor = make_ingestor(settings, db, bus, transport=httpx.ASGITransport(app=sim))
    await reset(db)
    await queue.reset()
    await add_integrations(ingestor, "http://xsoar.sim", per_account=False, fetch_notes=False)
    await only_due(db, "incidents")
    started, cpu = time.perf_counter(), time.process_time()
    await run_until_idle(ingestor)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    got = await records(db, "incidents")
    stored = await queue.count()
    assert got == total == stored, (got, total, stored)
    return {
        "scenario": "in-process ASGI, 1 replica, 1 integration",
        "incidents": got,
        "seconds": seconds,
        "per_second": got / seconds,
        "per_cpu_second": round(got / cpu),
    }


async def scenario_socket_one(
    settings: Settings, db: Database, bus: Bus, queue: BrokerQueue, url: str, total: int
) -> dict[str, Any]:
    ingestor = make_ingestor(settings, db, bus)
    await reset(db)
    await queue.reset()
    await add_integrations(ingestor, url, per_account=False, fetch_notes=False)
    await only_due(db, "incidents")
    started, cpu = time.perf_counter(), time.process_time()
    await run_until_idle(ingestor)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    got = await records(db, "incidents")
    stored = await queue.count()
    assert got == total == stored, (got, total, stored)
    return {
        "scenario": "socket, 1 replica, 1 integration",
        "incidents": got,
        "seconds": seconds,
        "per_second": got / seconds,
        "per_cpu_second": round(got / cpu),
    }


def run_workers(replicas: int, concurrency: int) -> tuple[list[dict[str, Any]], float]:
    """Start ``replicas`` worker processes, let them go at once, wait for all: (their reports, seconds)."""
    env = {**os.environ, "SOC_SOAR_INGEST_CONCURRENCY": str(concurrency)}
    workers = [
        subprocess.Popen(
            [sys.executable, __file__, "--worker"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(replicas)
    ]
    for worker in workers:  # connected to the database and the broker: start together
        assert worker.stdout is not None and worker.stdout.readline().strip() == "READY"
    started = time.perf_counter()
    for worker in workers:
        assert worker.stdin is not None
        worker.stdin.write("GO\n")
        worker.stdin.flush()
    runs = []
    for worker in workers:
        out, _ = worker.communicate(timeout=3600)
        runs.append(json.loads(out.strip().splitlines()[-1]))
    return runs, time.perf_counter() - started


async def scenario_socket_replicas(
    db: Database, queue: BrokerQueue, url: str, total: int, replicas: int
) -> dict[str, Any]:
    """Four integrations (one per account) worked by ``replicas`` separate processes, each running
    4 / replicas of them at a time (so one replica does not claim everything)."""
    concurrency = max(1, 4 // replicas)
    settings = Settings()
    bus = Bus(settings.amqp_url.get_secret_value(), service="soar-bench")
    await bus.connect()
    ingestor = make_ingestor(settings, db, bus)
    await reset(db)
    await queue.reset()
    await add_integrations(ingestor, url, per_account=True, fetch_notes=False)
    await only_due(db, "incidents")
    await bus.close()
    runs, seconds = await asyncio.to_thread(run_workers, replicas, concurrency)
    got = await records(db, "incidents")
    stored = await queue.count()
    assert got == total == stored, (got, total, stored)
    return {
        "scenario": f"socket, {replicas} replica process(es), 4 integrations (one account each)",
        "incidents": got,
        "seconds": seconds,
        "per_second": got / seconds,
        "runs_per_replica": [r["runs"] for r in runs],
        "concurrency_each": concurrency,
    }


async def scenario_notes(
    settings: Settings, db: Database, bus: Bus, queue: BrokerQueue, url: str | None, n: int
) -> dict[str, Any]:
    if url is None:
        sim = xsoar.create_app(seed=7, incidents=n)
        ingestor = make_ingestor(settings, db, bus, transport=httpx.ASGITransport(app=sim))
        total = len(sim.state.sim.records)
        label = "in-process ASGI"
    else:
        ingestor = make_ingestor(settings, db, bus)
        total = await sim_total(url)
        label = "socket"
    await reset(db)
    await queue.reset()
    await add_integrations(ingestor, url or "http://xsoar.sim", per_account=False, fetch_notes=True)
    await only_due(db, "notes")
    started = time.perf_counter()
    await run_until_idle(ingestor)
    seconds = time.perf_counter() - started
    notes = await records(db, "notes")
    return {
        "scenario": f"notes, {label}, 1 replica (war rooms of {total} incidents)",
        "war_rooms": total,
        "notes": notes,
        "seconds": seconds,
        "per_second": total / seconds,
    }


async def worker() -> None:
    settings = Settings()
    db = Database.from_settings(settings)
    bus = Bus(settings.amqp_url.get_secret_value(), service="soar-bench-worker")
    await bus.connect()
    ingestor = make_ingestor(settings, db, bus)
    await db.ping()
    from soc_shared.runtime import tune_gc

    tune_gc()  # as the service's entry point does
    print("READY", flush=True)  # noqa: T201 - the parent waits for this line
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    runs = 0
    while n := await ingestor.run_due_once():
        runs += n
    await bus.close()
    await db.dispose()
    print(json.dumps({"runs": runs}), flush=True)  # noqa: T201


def show(result: dict[str, Any]) -> None:
    extra = {k: v for k, v in result.items() if k not in ("scenario", "seconds", "per_second")}
    print(
        f"  {result['scenario']:<72} {result['per_second']:>8,.0f}/s  ({result['seconds']:.2f} s, "  # noqa: T201
        f"{', '.join(f'{k}={v}' for k, v in extra.items())})",
        flush=True,
    )


async def main(args: argparse.Namespace) -> None:
    setup_logging("soar-bench", "WARNING", False)
    provision_database(BENCH_DB, fresh=True)
    provision_vhost(BENCH_VHOST, fresh=True)
    settings = Settings()
    migrate(settings, Path(soc_soar_ingest.__file__).parent / "migrations")
    db = Database.from_settings(settings)
    bus = Bus(settings.amqp_url.get_secret_value(), service="soar-bench")
    await bus.connect()
    queue = BrokerQueue(bus)
    print(
        f"soar-ingest bench: {args.incidents:,} incidents, page size {settings.page_size}, "  # noqa: T201
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    try:
        show(await scenario_in_process(settings, db, bus, queue, args.incidents))
        proc, url = await asyncio.to_thread(start_simulator, args.incidents - xsoar.DEFAULT_INCIDENTS)
        try:
            total = await sim_total(url)
            show(await scenario_socket_one(settings, db, bus, queue, url, total))
            for replicas in (1, 2):
                show(await scenario_socket_replicas(db, queue, url, total, replicas))
        finally:
            proc.terminate()
            proc.wait(timeout=10)
        show(await scenario_notes(settings, db, bus, queue, None, args.war_rooms))
        proc, url = await asyncio.to_thread(start_simulator, args.war_rooms - xsoar.DEFAULT_INCIDENTS)
        try:
            show(await scenario_notes(settings, db, bus, queue, url, args.war_rooms))
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    finally:
        channel = await bus.channel()
        await channel.queue_delete(queue.name)
        await bus.close()
        await db.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--incidents", type=int, default=50_000)
    parser.add_argument("--war-rooms", type=int, default=3_000)
    parser.add_argument("--quick", action="store_true", help="10,000 incidents and 1,000 war rooms")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.quick:
        arguments.incidents, arguments.war_rooms = 10_000, 1_000
    asyncio.run(worker() if arguments.worker else main(arguments))
