"""itsm-ingest throughput: ServiceDesk Plus tickets from the simulator to broker-confirmed events.

    cd /work/main && UV_PYTHON_DOWNLOADS=never uv run python bench/itsm_ingest_bench.py [--requests 100000]
        [--page-size 100] [--skip-stages] [--skip-asgi] [--incidents 400]

Honest setup, everything on loopback: the SDP simulator under uvicorn in its own process
(``python -m soc_simulators sdp``, seeded through ``POST /_sim/seed``), each ingestor replica in its
own process (the shared Ingestor with the ``tickets`` resource, exactly as deployed: keyset paging
on last_updated_time with ``fields_required``, the next page fetched while this one is published,
normalisation, CloudEvents, ``Bus.publish`` with publisher confirms, cursor saved per page in
PostgreSQL), and a durable quorum queue bound to ``itsm.ticket.upserted`` like the tenant's consumer
queue, so every confirm waits for the message to be stored in a queue. SDP pages hold at most 100
requests, so a sync is many small round trips.

Scenarios (tickets/s = tickets published and confirmed / wall time from the integration becoming
due to the last run finishing, from the database's clock):
  1. one replica, one integration (N tickets) — the figure the issue asks for;
  2. two replicas, two integrations (2N; each replica takes one);
  3. one replica, one integration, the simulator in the same process over ``httpx.ASGITransport``
     (no sockets; the simulator's CPU shares the ingestor's event loop).
The bench queue's message count is checked against the expected count after each scenario.

Each scenario also reports CPU time per ticket of the replica process(es) and of the simulator:
unlike wall-clock figures it hardly depends on what else the machine runs.

Before the scenarios, the stages alone, to show where the time goes (paging the simulator,
normalisation + envelope, Bus.publish of 100-event pages; this full read also warms the simulator,
which builds a bulk-seeded request's document on first read); after them, ticket creation: incidents through the
TicketService (idempotency record committed, SDP search, create, record, publish) against a second,
small simulator process, ``--ticket-concurrency`` at once, then the same incidents again
(duplicates: from the replica's memory, then from the record after a "restart").

A database ``soc_bench_itsm`` and a vhost ``soc_bench_itsm`` (or ``SOC_BENCH_DB``: its own name per
concurrent run) are (re)created for the run, so nothing reaches the suite's own ``soc`` vhost.
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

ROOT = Path(__file__).resolve().parents[1]
BENCH_DB = BENCH_VHOST = os.environ.get("SOC_BENCH_DB", "soc_bench_itsm")  # its own name per concurrent run
QUEUE = "bench.itsm.tickets"
TOKEN = "sdp-demo-key"


def _env() -> None:
    os.environ["SOC_DB_NAME"] = BENCH_DB
    hostport = os.environ.get("SOC_AMQP_HOSTPORT", "127.0.0.1:5672")
    os.environ["SOC_AMQP_URL"] = f"amqp://soc:soc@{hostport}/{BENCH_VHOST}"
    os.environ.setdefault("SOC_LOG_LEVEL", "WARNING")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _credentials(_: str) -> dict[str, Any]:
    return {"credential_kind": "API_KEY", "secrets": {"api_key": TOKEN}, "ca_pem": None}


def _ingestor(concurrency: int, resources: tuple[str, ...] = ("tickets",), **client_options: Any) -> Any:
    from soc_itsm_ingest.config import Settings
    from soc_itsm_ingest.resources import RESOURCES, client_for
    from soc_shared.bus import Bus
    from soc_shared.db import Database
    from soc_shared.sync import Ingestor

    settings = Settings(scheduler_enabled=False)
    return Ingestor(
        name="itsm-ingest",
        vendor="sdp",
        subtype="MANAGEENGINE_SDP",
        db=Database.from_settings(settings),
        bus=Bus(settings.amqp_url.get_secret_value(), service="itsm-ingest-bench"),
        resources=[r for r in RESOURCES if r.name in resources],
        client_factory=lambda integration, creds: client_for(integration, creds, settings, **client_options),
        credentials=_credentials,
        concurrency=concurrency,
        lease_seconds=600,
    )


def _change(integration_id: str, base_url: str) -> Any:
    from soc_shared.events import IntegrationChanged

    return IntegrationChanged(
        integration_id=integration_id,
        integration_type="ITSM",
        subtype="MANAGEENGINE_SDP",
        instance_name="bench",
        status="active",
        base_url=base_url,
        credential_kind="API_KEY",
        changed_at=datetime.now(UTC),
    )


async def _run_until_done(ingestor: Any, integration_ids: list[str]) -> int:
    """Run due work until every integration's tickets run succeeded once."""
    import sqlalchemy as sa
    from soc_shared.sync import sync_state_table as s

    runs = 0
    while True:
        done = await ingestor.run_due_once()
        runs += done
        if done:
            continue
        async with ingestor.db.session() as session:
            rows = (
                await session.execute(
                    sa.select(s.c.last_success_at, s.c.lease_owner, s.c.last_error).where(
                        s.c.integration_id.in_(integration_ids), s.c.resource == "tickets"
                    )
                )
            ).all()
        failed = [r.last_error for r in rows if r.last_error]
        if failed:
            raise SystemExit(f"sync failed: {failed[0]}")
        if len(rows) == len(integration_ids) and all(
            r.last_success_at and r.lease_owner is None for r in rows
        ):
            return runs
        await asyncio.sleep(0.02)


# --- a replica (its own process: `itsm_ingest_bench.py --replica id...`) ------------------------------------
async def replica(integration_ids: list[str]) -> None:
    from loguru import logger

    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    ingestor = _ingestor(1)
    await ingestor.bus.connect()
    from soc_shared.runtime import tune_gc

    tune_gc()  # as the service's entry point does
    print("ready", flush=True)
    cpu_before = time.process_time()
    runs = await _run_until_done(ingestor, integration_ids)
    print(json.dumps({"runs": runs, "cpu_s": time.process_time() - cpu_before}), flush=True)
    await ingestor.bus.close()
    await ingestor.db.dispose()


# --- the coordinator ---------------------------------------------------------------------------------------
def start_simulator(port: int) -> subprocess.Popen[bytes]:
    import httpx

    proc = subprocess.Popen(
        [sys.executable, "-m", "soc_simulators", "sdp", "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/_sim/state", timeout=2).status_code == 200:
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
        await queue.bind("soc.events", routing_key="itsm.ticket.upserted")
        count = await queued_event_count(bus, queue.name)  # events, not (batch) messages
        if purge:
            await queue.purge()
        if delete:
            await queue.delete(if_unused=False, if_empty=False)
        return count
    finally:
        await channel.close()


async def _measure(coordinator: Any, ids: list[str], started_at: datetime, expected: int) -> dict[str, Any]:
    import sqlalchemy as sa
    from soc_shared.sync import sync_state_table as s

    async with coordinator.db.session() as session:
        rows = (
            await session.execute(
                sa.select(s.c.last_success_at, s.c.total_records).where(
                    s.c.integration_id.in_(ids), s.c.resource == "tickets"
                )
            )
        ).all()
    elapsed = (max(r.last_success_at for r in rows) - started_at).total_seconds()
    records = sum(r.total_records for r in rows)
    await asyncio.sleep(0.5)
    queued = await bench_queue(coordinator.bus)
    result = {
        "tickets": records,
        "seconds": round(elapsed, 2),
        "tickets_per_s": round(records / elapsed),
        "queued": queued,
    }
    if records != expected or queued != records:
        result["WARNING"] = f"expected {expected} tickets published and queued"
    return result


def _process_cpu(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def scenario(
    name: str, sim_url: str, replicas: int, tickets: int, page_size: int, sim_pid: int | None = None
) -> dict[str, Any]:
    import sqlalchemy as sa

    sim_cpu_before = _process_cpu(sim_pid) if sim_pid is not None else 0.0

    coordinator = _ingestor(1)
    await coordinator.bus.connect()
    await bench_queue(coordinator.bus, purge=True)
    ids = [f"bench-{uuid.uuid4().hex[:8]}" for _ in range(replicas)]
    env = dict(os.environ, SOC_ITSM_INGEST_PAGE_SIZE=str(page_size))
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--replica", *ids, cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE
        )
        for _ in range(replicas)
    ]
    for proc in procs:
        assert proc.stdout is not None
        if (await proc.stdout.readline()).strip() != b"ready":
            raise RuntimeError("replica did not start")
    async with coordinator.db.session() as session:
        started_at = (await session.execute(sa.select(sa.func.now()))).scalar_one()
        for integration_id in ids:
            await coordinator.apply_integration(session, _change(integration_id, sim_url))
    outputs = [(await proc.communicate())[0] for proc in procs]
    if any(proc.returncode for proc in procs):
        raise RuntimeError(f"a replica failed: {outputs}")
    replica_cpu = sum(json.loads(out.strip().splitlines()[-1])["cpu_s"] for out in outputs)
    result = {
        "scenario": name,
        "replicas": replicas,
        "integrations": len(ids),
        **await _measure(coordinator, ids, started_at, tickets * len(ids)),
    }
    # CPU per ticket does not depend on what else the machine runs: the honest capacity figure on
    # a shared box (tickets/s of one replica on a core of its own ≈ 1e6 / replica_cpu_us_per_ticket).
    result["replica_cpu_us_per_ticket"] = round(replica_cpu / max(1, result["tickets"]) * 1e6, 1)
    if sim_pid is not None:
        result["simulator_cpu_us_per_ticket"] = round(
            (_process_cpu(sim_pid) - sim_cpu_before) / max(1, result["tickets"]) * 1e6, 1
        )
    await coordinator.bus.close()
    await coordinator.db.dispose()
    return result


async def asgi_scenario(requests: int, page_size: int) -> dict[str, Any]:
    """The simulator in this process, over httpx.ASGITransport: no sockets, one event loop."""
    import httpx
    import sqlalchemy as sa
    from soc_simulators import sdp as sdp_sim

    sim = sdp_sim.create_app(seed=7)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=sim), base_url="http://sdp.sim"
    ) as control:
        total = (
            await control.post(
                "/_sim/seed", json={"requests": max(0, requests - len(sim.state.sim.records))}, timeout=600
            )
        ).json()["total"]
    os.environ["SOC_ITSM_INGEST_PAGE_SIZE"] = str(page_size)
    ingestor = _ingestor(1, transport=httpx.ASGITransport(app=sim))
    await ingestor.bus.connect()
    await bench_queue(ingestor.bus, purge=True)
    integration_id = f"bench-asgi-{uuid.uuid4().hex[:8]}"
    cpu_before = time.process_time()
    async with ingestor.db.session() as session:
        started_at = (await session.execute(sa.select(sa.func.now()))).scalar_one()
        await ingestor.apply_integration(session, _change(integration_id, "http://sdp.sim"))
    await _run_until_done(ingestor, [integration_id])
    result = {
        "scenario": "1 replica, 1 integration, in-process ASGI simulator",
        "replicas": 1,
        "integrations": 1,
        **await _measure(ingestor, [integration_id], started_at, total),
    }
    result["process_cpu_us_per_ticket"] = round(
        (time.process_time() - cpu_before) / max(1, result["tickets"]) * 1e6, 1
    )  # ingestor and simulator together
    await ingestor.bus.close()
    await ingestor.db.dispose()
    return result


async def stages(sim_url: str, page_size: int) -> dict[str, Any]:
    """Each stage alone, in this process."""
    from soc_itsm_ingest import normalize
    from soc_itsm_ingest.client import SdpClient, TicketPosition
    from soc_itsm_ingest.config import Settings
    from soc_itsm_ingest.resources import SyncOptions, ticket_event
    from soc_shared.bus import Bus

    client = SdpClient(sim_url, integration_id="bench", token=TOKEN, page_size=page_size)
    raws: list[dict[str, Any]] = []
    started = time.perf_counter()
    async for page, _ in client.ticket_pages(TicketPosition(0), fields_required=SyncOptions().list_fields()):
        raws.extend(page)
    fetch_s = time.perf_counter() - started
    await client.aclose()

    sample = raws[: min(len(raws), 20_000)]
    started = time.perf_counter()
    tickets = [normalize.ticket(raw) for raw in sample]
    normalise_us = (time.perf_counter() - started) / len(sample) * 1e6
    started = time.perf_counter()
    events = [ticket_event("/itsm-ingest/sdp/bench", "bench", t) for t in tickets]
    envelope_us = (time.perf_counter() - started) / len(sample) * 1e6

    bus = Bus(Settings().amqp_url.get_secret_value(), service="itsm-ingest-bench")
    await bus.connect()
    await bench_queue(bus, purge=True)
    started = time.perf_counter()
    for i in range(0, len(events), page_size):
        await bus.publish(events[i : i + page_size])
    publish_s = time.perf_counter() - started
    await bench_queue(bus, purge=True)
    await bus.close()
    return {
        "fetch_tickets_per_s": round(len(raws) / fetch_s),
        "fetched": len(raws),
        "normalise_us_per_ticket": round(normalise_us, 1),
        "envelope_us_per_ticket": round(envelope_us, 1),
        f"bus_publish_events_per_s_in_pages_of_{page_size}": round(len(events) / publish_s),
    }


async def ticket_creation(sim_url: str, incidents: int, concurrency: int) -> dict[str, Any]:
    """Incidents → tickets through the TicketService, one replica, against the socket simulator."""
    import httpx
    from soc_itsm_ingest.mapping import StaticTicketRouting
    from soc_itsm_ingest.tickets import Outcome, TicketService
    from soc_shared.events import IncidentSeverity, IncidentStatus, SoarIncident
    from soc_simulators.sdp import ACCOUNTS

    ingestor = _ingestor(1, resources=())
    await ingestor.bus.connect()
    integration_id = f"bench-tickets-{uuid.uuid4().hex[:8]}"
    async with ingestor.db.session() as session:
        await ingestor.apply_integration(session, _change(integration_id, sim_url))
    routing = StaticTicketRouting.from_json(
        [
            {
                "account": a.soar_account,
                "company_id": f"c-{a.soar_account}",
                "itsm_integration_id": integration_id,
                "account_id": a.id,
            }
            for a in ACCOUNTS
        ]
    )
    service = TicketService(ingestor=ingestor, routing=routing, concurrency=concurrency)
    now = datetime.now(UTC)
    batch = [
        SoarIncident(
            incident_id=f"bench-{uuid.uuid4().hex[:12]}",
            account=ACCOUNTS[i % len(ACCOUNTS)].soar_account,
            name="Bench incident",
            status=IncidentStatus.ACTIVE,
            severity=IncidentSeverity.HIGH,
            created=now,
            modified=now,
            priority="P1",
            version=1,
        )
        for i in range(incidents)
    ]
    started = time.perf_counter()
    outcomes = await asyncio.gather(*(service.handle_incident(i, "bench-soar") for i in batch))
    created_s = time.perf_counter() - started
    started = time.perf_counter()
    again = await asyncio.gather(*(service.handle_incident(i, "bench-soar") for i in batch))
    duplicate_s = time.perf_counter() - started
    # A restarted replica knows nothing in memory: the idempotency record answers.
    restarted = TicketService(ingestor=ingestor, routing=routing, concurrency=concurrency)
    started = time.perf_counter()
    from_record = await asyncio.gather(*(restarted.handle_incident(i, "bench-soar") for i in batch))
    record_s = time.perf_counter() - started
    async with httpx.AsyncClient() as control:
        state = (await control.get(f"{sim_url}/_sim/state")).json()
    await ingestor.bus.close()
    await ingestor.db.dispose()
    return {
        "incidents": incidents,
        "concurrency": concurrency,
        "created": outcomes.count(Outcome.CREATED),
        "tickets_created_per_s": round(incidents / created_s),
        "duplicates_answered": again.count(Outcome.ALREADY) + from_record.count(Outcome.ALREADY),
        "duplicate_deliveries_per_s_same_replica": round(incidents / duplicate_s),
        "duplicate_deliveries_per_s_after_restart": round(incidents / record_s),
        "sim_requests_total": state.get("requests"),
    }


async def main_async(args: argparse.Namespace) -> None:
    import httpx
    import soc_itsm_ingest
    from soc_itsm_ingest.config import Settings
    from soc_shared.bus import Bus
    from soc_shared.db import migrate
    from soc_shared.provision import provision_database, provision_vhost

    provision_database(BENCH_DB, fresh=True)
    provision_vhost(BENCH_VHOST, fresh=True)
    migrate(Settings(), Path(soc_itsm_ingest.__file__).parent / "migrations")
    port = _free_port()
    sim = start_simulator(port)
    sim_url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(timeout=600) as control:
            existing = (await control.get(f"{sim_url}/_sim/state")).json()["requests"]
            seeded = (
                await control.post(
                    f"{sim_url}/_sim/seed", json={"requests": max(0, args.requests - existing)}
                )
            ).json()
        total = seeded["total"]
        print(
            f"simulator: {total} requests, page size {args.page_size}, {os.cpu_count()} CPU cores, "
            f"load average {os.getloadavg()[0]:.1f} (other work on the machine lowers every wall-clock figure)",
            flush=True,
        )
        # The stages first: their full read also warms the simulator up (it builds a bulk-seeded
        # request's document on first read; a real SDP has them all already).
        if not args.skip_stages:
            print(json.dumps({"stages": await stages(sim_url, args.page_size)}), flush=True)
        results = [
            await scenario("1 replica, 1 integration", sim_url, 1, total, args.page_size, sim.pid),
            await scenario("2 replicas, 2 integrations", sim_url, 2, total, args.page_size, sim.pid),
        ]
        for r in results:
            print(json.dumps(r), flush=True)
        if not args.skip_asgi:
            print(json.dumps(await asgi_scenario(args.requests, args.page_size)), flush=True)
        if args.incidents:
            # Its own simulator with the default desk (~400 requests): the bulk-seeded one answers
            # the incident-id search by scanning every request of the account, which would measure
            # the simulator, not the ticket path (a real SDP indexes its fields).
            small_port = _free_port()
            small = start_simulator(small_port)
            try:
                creation = await ticket_creation(
                    f"http://127.0.0.1:{small_port}", args.incidents, args.ticket_concurrency
                )
            finally:
                small.terminate()
                small.wait(timeout=15)
            print(
                json.dumps({"ticket_creation": creation}),
                flush=True,
            )
        print(f"load average at the end: {os.getloadavg()[0]:.1f}", flush=True)
        bus = Bus(Settings().amqp_url.get_secret_value(), service="itsm-ingest-bench")
        await bus.connect()
        await bench_queue(bus, delete=True)
        await bus.close()
    finally:
        sim.terminate()
        sim.wait(timeout=15)


def main() -> None:
    from loguru import logger

    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=100_000, help="tickets in the simulator")
    parser.add_argument("--page-size", type=int, default=100, help="row_count (SDP allows at most 100)")
    parser.add_argument(
        "--incidents", type=int, default=400, help="incidents for the ticket-creation figure; 0 skips"
    )
    parser.add_argument("--ticket-concurrency", type=int, default=8)
    parser.add_argument("--skip-stages", action="store_true")
    parser.add_argument("--skip-asgi", action="store_true")
    parser.add_argument("--replica", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("ids", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    _env()
    if args.replica:
        asyncio.run(replica(args.ids))
    else:
        asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
