"""siem-ingest throughput: QRadar offenses from the simulator to broker-confirmed events on the bus.

    cd /work/main && UV_PYTHON_DOWNLOADS=never uv run python bench/siem_ingest_bench.py [--offenses 50000]
        [--page-size 1000] [--skip-stages]

Honest setup, everything on loopback: the QRadar simulator under uvicorn in its own process
(``python -m soc_simulators qradar``, seeded through ``POST /_sim/seed``), each ingestor replica in
its own process (the shared Ingestor with the ``offenses`` resource, exactly as deployed: keyset
paging with ``fields``, normalisation, CloudEvents, ``Bus.publish`` with publisher confirms, cursor
saved per page in PostgreSQL), and a durable quorum queue bound to ``siem.offense.upserted`` like
the tenant's consumer queue, so every confirm waits for the message to be stored in a queue.

Scenarios (offenses/s = offenses published and confirmed / wall time from the integrations
becoming due to the last run finishing, from the database's clock):
  1. one replica, one integration (N offenses);
  2. one replica, two integrations (2N; concurrency 1: one run at a time);
  3. two replicas, two integrations (2N; concurrency 1 each: each replica takes one).
The bench queue's message count is checked against the expected count after each scenario. Each
scenario also reports the CPU time per offense of the replicas, the simulator and the broker (from
/proc): on a shared two-core machine wall-clock rates depend on whatever else runs, CPU cost does not.

Then the stages alone, in this process, to show where the time goes: paging the simulator
(HTTP + JSON), normalisation + envelope, and Bus.publish of 1,000-event batches, as CPU
microseconds per offense (process time: meaningful even on a busy machine) and as rates.

A database ``soc_bench_siem`` and a vhost ``soc_bench_siem`` are (re)created for the run, so nothing
reaches the suite's own ``soc`` vhost.
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
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from soc_shared.testing import broker_pid, cpu_seconds

ROOT = Path(__file__).resolve().parents[1]
BENCH_DB = BENCH_VHOST = "soc_bench_siem"
QUEUE = "bench.siem.offenses"
TOKEN = "qradar-demo-token"


def _env() -> None:
    os.environ["SOC_DB_NAME"] = BENCH_DB
    hostport = os.environ.get("SOC_AMQP_HOSTPORT", "127.0.0.1:5672")
    os.environ["SOC_AMQP_URL"] = f"amqp://soc:soc@{hostport}/{BENCH_VHOST}"
    os.environ.setdefault("SOC_LOG_LEVEL", "WARNING")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ingestor(concurrency: int) -> Any:
    from soc_shared.bus import Bus
    from soc_shared.db import Database
    from soc_shared.sync import Ingestor
    from soc_siem_ingest.config import Settings
    from soc_siem_ingest.resources import RESOURCES, client_for

    settings = Settings(scheduler_enabled=False)

    async def credentials(_: str) -> dict[str, Any]:
        return {"credential_kind": "API_KEY", "secrets": {"api_key": TOKEN}, "ca_pem": None}

    return Ingestor(
        name="siem-ingest",
        vendor="qradar",
        subtype="IBM_QRADAR",
        db=Database.from_settings(settings),
        bus=Bus(settings.amqp_url.get_secret_value(), service="siem-ingest-bench"),
        resources=[r for r in RESOURCES if r.name == "offenses"],
        client_factory=lambda integration, creds: client_for(integration, creds, settings),
        credentials=credentials,
        concurrency=concurrency,
        lease_seconds=600,
    )


# --- a replica (its own process: `siem_ingest_bench.py --replica --concurrency N id...`) ----------------------
async def replica(integration_ids: list[str], concurrency: int) -> None:
    import sqlalchemy as sa
    from loguru import logger
    from soc_shared.sync import sync_state_table as s

    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    ingestor = _ingestor(concurrency)
    await ingestor.bus.connect()
    from soc_shared.runtime import tune_gc

    tune_gc()  # as the service's entry point does
    print("ready", flush=True)
    cpu_started = time.process_time()
    runs = 0
    while True:
        done = await ingestor.run_due_once()
        runs += done
        if done:
            continue
        async with ingestor.db.session() as session:
            finished = (
                await session.execute(
                    sa.select(sa.func.count()).where(
                        s.c.integration_id.in_(integration_ids),
                        s.c.resource == "offenses",
                        s.c.last_success_at.is_not(None),
                        s.c.lease_owner.is_(None),
                    )
                )
            ).scalar_one()
            failed = (
                (
                    await session.execute(
                        sa.select(s.c.last_error).where(
                            s.c.integration_id.in_(integration_ids), s.c.last_error.is_not(None)
                        )
                    )
                )
                .scalars()
                .all()
            )
        if failed:
            raise SystemExit(f"sync failed: {failed[0]}")
        if finished == len(integration_ids):
            break
        await asyncio.sleep(0.02)
    print(json.dumps({"runs": runs, "cpu_s": time.process_time() - cpu_started}), flush=True)
    await ingestor.bus.close()
    await ingestor.db.dispose()


# --- the coordinator ---------------------------------------------------------------------------------------
def start_simulator(port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "soc_simulators", "qradar", "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    import httpx

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/_sim/state", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("simulator did not start")


async def bench_queue(bus: Any, *, purge: bool = False, delete: bool = False) -> int:
    from soc_shared.bus import queue_arguments, queued_event_count

    channel = await bus.channel()
    try:
        queue = await channel.declare_queue(QUEUE, durable=True, arguments=queue_arguments(QUEUE, 5))
        await queue.bind("soc.events", routing_key="siem.offense.upserted")
        count = await queued_event_count(bus, queue.name)  # events, not (batch) messages
        if purge:
            await queue.purge()
        if delete:
            await queue.delete(if_unused=False, if_empty=False)
        return count
    finally:
        await channel.close()


async def scenario(
    name: str, sim_url: str, sim_pid: int, integrations: int, replicas: int, offenses: int, page_size: int
) -> dict[str, Any]:
    import sqlalchemy as sa
    from soc_shared.events import IntegrationChanged
    from soc_shared.sync import sync_state_table as s

    coordinator = _ingestor(1)
    await coordinator.bus.connect()
    await bench_queue(coordinator.bus, purge=True)
    ids = [f"bench-{uuid.uuid4().hex[:8]}" for _ in range(integrations)]
    env = dict(os.environ, SOC_SIEM_INGEST_PAGE_SIZE=str(page_size))
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--replica",
            "--concurrency",
            "1",
            *ids,
            cwd=ROOT,
            env=env,
            stdout=asyncio.subprocess.PIPE,
        )
        for _ in range(replicas)
    ]
    for proc in procs:
        assert proc.stdout is not None
        if (await proc.stdout.readline()).strip() != b"ready":
            raise RuntimeError("replica did not start")
    broker = broker_pid()
    cpu_before = {"simulator": cpu_seconds(sim_pid), "broker": cpu_seconds(broker) if broker else 0.0}
    load_before = os.getloadavg()[0]
    async with coordinator.db.session() as session:
        started_at = (await session.execute(sa.select(sa.func.now()))).scalar_one()
        for integration_id in ids:
            await coordinator.apply_integration(
                session,
                IntegrationChanged(
                    integration_id=integration_id,
                    integration_type="SIEM",
                    subtype="IBM_QRADAR",
                    instance_name="bench",
                    status="active",
                    base_url=sim_url,
                    credential_kind="API_KEY",
                    changed_at=datetime.now(UTC),
                ),
            )
    outputs = [(await proc.communicate())[0] for proc in procs]
    if any(proc.returncode for proc in procs):
        raise RuntimeError(f"a replica failed: {outputs}")
    replica_cpu = sum(json.loads(out.decode().strip().splitlines()[-1])["cpu_s"] for out in outputs)
    simulator_cpu = cpu_seconds(sim_pid) - cpu_before["simulator"]
    broker_cpu = (cpu_seconds(broker) - cpu_before["broker"]) if broker else 0.0
    async with coordinator.db.session() as session:
        rows = (
            await session.execute(
                sa.select(s.c.integration_id, s.c.last_success_at, s.c.total_records).where(
                    s.c.integration_id.in_(ids)
                )
            )
        ).all()
    finished_at = max(r.last_success_at for r in rows)
    records = sum(r.total_records for r in rows)
    elapsed = (finished_at - started_at).total_seconds()
    await asyncio.sleep(0.5)
    queued = await bench_queue(coordinator.bus)
    await coordinator.bus.close()
    await coordinator.db.dispose()
    result = {
        "scenario": name,
        "replicas": replicas,
        "integrations": integrations,
        "offenses": records,
        "seconds": round(elapsed, 2),
        "offenses_per_s": round(records / elapsed),
        "queued": queued,
        # CPU per offense whatever else the machine is doing: the replicas' own (one replica's
        # ceiling on a free core is 1e6 / that), the simulator's and the broker's.
        "replica_cpu_us_per_offense": round(replica_cpu * 1e6 / max(1, records), 1),
        "replica_ceiling_per_core": round(records / replica_cpu) if replica_cpu else None,
        "simulator_cpu_us_per_offense": round(simulator_cpu * 1e6 / max(1, records), 1),
        "broker_cpu_us_per_offense": round(broker_cpu * 1e6 / max(1, records), 1),
        "load_average": [round(load_before, 1), round(os.getloadavg()[0], 1)],
    }
    if records != integrations * offenses or queued != records:
        result["WARNING"] = f"expected {integrations * offenses} offenses published and queued"
    return result


async def stages(sim_url: str, offenses: int, page_size: int) -> dict[str, Any]:
    """Each stage alone, in this process."""
    from soc_shared.bus import Bus
    from soc_shared.events import make_event
    from soc_siem_ingest import normalize
    from soc_siem_ingest.client import OffensePosition, QRadarClient
    from soc_siem_ingest.config import Settings

    client = QRadarClient(sim_url, integration_id="bench", token=TOKEN, page_size=page_size)
    pages: list[list[dict[str, Any]]] = []
    started, cpu = time.perf_counter(), time.process_time()
    async for page in client.offense_pages(OffensePosition(-1, -1)):
        pages.append(page)
    fetch_s, fetch_cpu = time.perf_counter() - started, time.process_time() - cpu
    await client.aclose()
    raws = [r for p in pages for r in p]

    sample = raws[: min(len(raws), 20_000)]
    started = time.process_time()
    for raw in sample:
        normalize.offense(raw, closing_reasons={})
    normalise_us = (time.process_time() - started) / len(sample) * 1e6
    started = time.process_time()
    events = []
    for raw in sample:
        o = normalize.offense(raw, closing_reasons={})
        events.append(
            make_event(
                "siem.offense.upserted",
                o,
                source="/siem-ingest/qradar/bench",
                subject=str(o.offense_id),
                vendor_version=o.version,
                integration_id="bench",
                vendor_tenant=o.domain_id,
            )
        )
    envelope_us = (time.process_time() - started) / len(sample) * 1e6

    bus = Bus(Settings().amqp_url.get_secret_value(), service="siem-ingest-bench")
    await bus.connect()
    await bench_queue(bus, purge=True)
    batches = [events[i : i + 1000] for i in range(0, len(events), 1000)]
    started, cpu = time.perf_counter(), time.process_time()
    for batch in batches:
        await bus.publish(batch)
    publish_s, publish_cpu = time.perf_counter() - started, time.process_time() - cpu
    await bench_queue(bus, purge=True)
    await bus.close()
    return {
        "fetch_offenses_per_s": round(len(raws) / fetch_s),
        "fetch_cpu_us_per_offense": round(fetch_cpu / len(raws) * 1e6, 1),
        "fetched": len(raws),
        "normalise_us_per_offense": round(normalise_us, 1),
        "normalise_and_envelope_us_per_offense": round(envelope_us, 1),
        "bus_publish_events_per_s": round(len(events) / publish_s),
        "bus_publish_cpu_us_per_event": round(publish_cpu / len(events) * 1e6, 1),
        "published": len(events),
    }


async def main_async(args: argparse.Namespace) -> None:
    import soc_siem_ingest
    from soc_shared.db import migrate
    from soc_shared.provision import provision_database, provision_vhost
    from soc_siem_ingest.config import Settings

    provision_database(BENCH_DB, fresh=True)
    provision_vhost(BENCH_VHOST, fresh=True)
    migrate(Settings(), Path(soc_siem_ingest.__file__).parent / "migrations")
    port = _free_port()
    sim = start_simulator(port)
    sim_url = f"http://127.0.0.1:{port}"
    try:
        import httpx

        async with httpx.AsyncClient(timeout=600) as control:
            seeded = (
                await control.post(f"{sim_url}/_sim/seed", json={"offenses": args.offenses - 300})
            ).json()
        total = seeded["total"]
        print(
            f"simulator: {total} offenses, page size {args.page_size}, {os.cpu_count()} CPU cores", flush=True
        )
        results = [
            await scenario("1 replica, 1 integration", sim_url, sim.pid, 1, 1, total, args.page_size),
            await scenario("1 replica, 2 integrations", sim_url, sim.pid, 2, 1, total, args.page_size),
            await scenario("2 replicas, 2 integrations", sim_url, sim.pid, 2, 2, total, args.page_size),
        ]
        for r in results:
            print(json.dumps(r), flush=True)
        if not args.skip_stages:
            print(json.dumps({"stages": await stages(sim_url, total, args.page_size)}), flush=True)
        from soc_shared.bus import Bus

        bus = Bus(Settings().amqp_url.get_secret_value(), service="siem-ingest-bench")
        await bus.connect()
        await bench_queue(bus, delete=True)
        await bus.close()
    finally:
        sim.terminate()
        sim.wait(timeout=15)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--offenses", type=int, default=50_000)
    parser.add_argument("--page-size", type=int, default=1000)
    parser.add_argument("--skip-stages", action="store_true")
    parser.add_argument("--replica", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--concurrency", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("ids", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    _env()
    if args.replica:
        asyncio.run(replica(args.ids, args.concurrency))
    else:
        asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
