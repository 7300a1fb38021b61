"""threatintel throughput: Cyware alerts *with their details* from the simulator to broker-confirmed
events on the bus.

    cd /work/main && UV_PYTHON_DOWNLOADS=never uv run python bench/threatintel_bench.py [--alerts 20000]
        [--page-size 500] [--http-concurrency 8] [--skip-stages] [--skip-asgi]

Every alert costs two vendor requests' worth of work: its share of a ``list_alert`` page and one
``get_alert_detail`` request (CSAP has no bulk detail call), each signed with a fresh HMAC-SHA1.

Honest setup, everything on loopback: the Cyware simulator under uvicorn in its own process
(``python -m soc_simulators cyware``, seeded through ``POST /_sim/seed``), each ingestor replica in
its own process (the shared Ingestor with the ``alerts`` resource, exactly as deployed: keyset
paging, details fetched concurrently up to ``http_concurrency``, the next page fetched while this one
is published, normalisation, CloudEvents, ``Bus.publish`` with publisher confirms, cursor saved per
page in PostgreSQL), and a durable quorum queue bound to ``ti.alert.upserted`` like the tenant's
consumer queue, so every confirm waits for the message to be stored in a queue.

Scenarios (alerts/s = alerts published and confirmed / wall time from the integrations becoming due
to the last run finishing, from the database's clock):
  1. socket: one replica, one integration (N alerts of tenant acme);
  2. socket: one replica, two integrations (acme + globex, 2N; concurrency 1: one run at a time);
  3. socket: two replicas, two integrations (2N; each replica takes one);
  4. in-process: one replica, one integration, the simulator app in the same process and event loop
     through httpx.ASGITransport (no sockets; simulator and ingestor share one core).
The bench queue's message count is checked against the expected count after each scenario.

Then the stages alone, in this process, to show where the time goes: list paging, detail fetching
(HTTP + JSON), normalisation + envelope, and Bus.publish of page-sized batches.

A database ``soc_bench_ti`` and a vhost ``soc_bench_ti`` are (re)created for the run, so nothing
reaches the suite's own ``soc`` vhost.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import socket
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH_DB = BENCH_VHOST = "soc_bench_ti"
QUEUE = "bench.ti.alerts"
TENANTS = {"acme-access": "acme-secret", "globex-access": "globex-secret"}
DEFAULT_ALERTS_PER_TENANT = 120  # what the simulator publishes per tenant before seeding


def _env() -> None:
    os.environ["SOC_DB_NAME"] = BENCH_DB
    hostport = os.environ.get("SOC_AMQP_HOSTPORT", "127.0.0.1:5672")
    os.environ["SOC_AMQP_URL"] = f"amqp://soc:soc@{hostport}/{BENCH_VHOST}"
    os.environ.setdefault("SOC_LOG_LEVEL", "WARNING")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _credentials(integration_id: str) -> dict[str, Any]:
    # the integration id carries the tenant (bench-<access id>-<random>)
    access_id = next(a for a in TENANTS if f"-{a}-" in integration_id)
    return {
        "credential_kind": "SECRET_KEY_ACCESS_KEY",
        "ca_pem": None,
        "secrets": {"access_key": access_id, "secret_key": TENANTS[access_id]},
    }


def _ingestor(concurrency: int, **client_options: Any) -> Any:
    from soc_shared.bus import Bus
    from soc_shared.db import Database
    from soc_shared.sync import Ingestor
    from soc_threatintel.config import Settings
    from soc_threatintel.resources import RESOURCES, client_for

    settings = Settings(scheduler_enabled=False)

    async def credentials(integration_id: str) -> dict[str, Any]:
        return _credentials(integration_id)

    return Ingestor(
        name="threatintel",
        vendor="cyware",
        subtype="CYWARE",
        db=Database.from_settings(settings),
        bus=Bus(settings.amqp_url.get_secret_value(), service="threatintel-bench"),
        resources=[r for r in RESOURCES if r.name == "alerts"],
        client_factory=lambda integration, creds: client_for(integration, creds, settings, **client_options),
        credentials=credentials,
        concurrency=concurrency,
        lease_seconds=600,
    )


async def _run_until_done(ingestor: Any, integration_ids: list[str]) -> int:
    import sqlalchemy as sa
    from soc_shared.sync import sync_state_table as s

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
                        s.c.resource == "alerts",
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
            return runs
        await asyncio.sleep(0.02)


# --- a replica (its own process: `threatintel_bench.py --replica --concurrency N id...`) -------------------
async def replica(integration_ids: list[str], concurrency: int) -> None:
    from loguru import logger

    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    ingestor = _ingestor(concurrency)
    await ingestor.bus.connect()
    from soc_shared.runtime import tune_gc

    tune_gc()  # as the service's entry point does
    print("ready", flush=True)
    cpu_before = _own_cpu()
    runs = await _run_until_done(ingestor, integration_ids)
    print(json.dumps({"runs": runs, "cpu_s": _own_cpu() - cpu_before}), flush=True)
    await ingestor.bus.close()
    await ingestor.db.dispose()


# --- the coordinator ---------------------------------------------------------------------------------------
def start_simulator(port: int) -> subprocess.Popen[bytes]:
    import httpx

    proc = subprocess.Popen(
        [sys.executable, "-m", "soc_simulators", "cyware", "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
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
    """The bench's quorum queue on ti.alert.upserted: its message count; ``purge`` empties it by
    deleting and re-declaring it (a clean slate for the next scenario's count)."""
    from soc_shared.bus import queue_arguments, queued_event_count

    channel = await bus.channel()
    try:
        queue = await channel.declare_queue(QUEUE, durable=True, arguments=queue_arguments(QUEUE, 5))
        count = await queued_event_count(bus, queue.name)  # events, not (batch) messages
        if purge or delete:
            await queue.delete(if_unused=False, if_empty=False)
        if not delete:
            queue = await channel.declare_queue(QUEUE, durable=True, arguments=queue_arguments(QUEUE, 5))
            await queue.bind("soc.events", routing_key="ti.alert.upserted")
        return count
    finally:
        await channel.close()


def _change(integration_id: str, sim_url: str) -> Any:
    from soc_shared.events import IntegrationChanged

    return IntegrationChanged(
        integration_id=integration_id,
        integration_type="THREAT_INTELLIGENCE",
        subtype="CYWARE",
        instance_name="bench",
        status="active",
        base_url=sim_url,
        credential_kind="SECRET_KEY_ACCESS_KEY",
        company_id=f"company-{integration_id}",
        changed_at=datetime.now(UTC),
    )


async def _measure(
    coordinator: Any,
    ids: list[str],
    started_at: datetime,
    name: str,
    replicas: int,
    expected: int,
    cpu: dict[str, float],
) -> dict[str, Any]:
    import sqlalchemy as sa
    from soc_shared.sync import sync_state_table as s

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
    result: dict[str, Any] = {
        "scenario": name,
        "replicas": replicas,
        "integrations": len(ids),
        "alerts": records,
        "seconds": round(elapsed, 2),
        "alerts_per_s": round(records / elapsed),
        "queued": queued,
    }
    # CPU per alert: what the figure would be on a machine of one's own, whatever else runs here
    result.update(
        {
            f"{who}_cpu_ms_per_alert": round(seconds / max(records, 1) * 1000, 2)
            for who, seconds in cpu.items()
        }
    )
    if records != expected or queued != records:
        result["WARNING"] = f"expected {expected} alerts published and queued"
    return result


async def scenario(
    name: str,
    sim_url: str,
    sim_pid: int,
    tenants: list[str],
    replicas: int,
    per_tenant: int,
    options: argparse.Namespace,
) -> dict[str, Any]:
    import sqlalchemy as sa

    coordinator = _ingestor(1)
    await coordinator.bus.connect()
    await bench_queue(coordinator.bus, purge=True)
    ids = [f"bench-{access_id}-{uuid.uuid4().hex[:8]}" for access_id in tenants]
    env = dict(
        os.environ,
        SOC_THREATINTEL_PAGE_SIZE=str(options.page_size),
        SOC_THREATINTEL_HTTP_CONCURRENCY=str(options.http_concurrency),
    )
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
        if (await proc.stdout.readline()).decode().strip() != "ready":
            raise RuntimeError("replica did not start")

    sim_cpu_before = _process_cpu(sim_pid)
    async with coordinator.db.session() as session:
        started_at = (await session.execute(sa.select(sa.func.now()))).scalar_one()
        for integration_id in ids:
            await coordinator.apply_integration(session, _change(integration_id, sim_url))
    outputs = [(await proc.communicate())[0].decode() for proc in procs]
    if any(proc.returncode for proc in procs):
        raise RuntimeError(f"a replica failed: {outputs}")
    cpu = {
        "ingestor": sum(json.loads(out.strip().splitlines()[-1])["cpu_s"] for out in outputs),
        "simulator": _process_cpu(sim_pid) - sim_cpu_before,
    }
    result = await _measure(coordinator, ids, started_at, name, replicas, len(ids) * per_tenant, cpu)
    await coordinator.bus.close()
    await coordinator.db.dispose()
    return result


async def asgi_scenario(per_tenant_seed: int, options: argparse.Namespace) -> dict[str, Any]:
    """The simulator app in this process, reached through httpx.ASGITransport (no sockets)."""
    import httpx
    import sqlalchemy as sa
    from soc_simulators import cyware as cyware_sim

    app = cyware_sim.create_app(tenants={"acme-access": "acme-secret"})
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://cyware.sim"
    ) as control:
        await control.post("/_sim/seed", json={"alerts": per_tenant_seed}, timeout=600)
    total = len(app.state.sim.tenants["acme-access"].alerts)
    os.environ["SOC_THREATINTEL_PAGE_SIZE"] = str(options.page_size)
    os.environ["SOC_THREATINTEL_HTTP_CONCURRENCY"] = str(options.http_concurrency)
    ingestor = _ingestor(1, transport=httpx.ASGITransport(app=app))
    await ingestor.bus.connect()
    await bench_queue(ingestor.bus, purge=True)
    ids = [f"bench-acme-access-{uuid.uuid4().hex[:8]}"]
    async with ingestor.db.session() as session:
        started_at = (await session.execute(sa.select(sa.func.now()))).scalar_one()
        await ingestor.apply_integration(session, _change(ids[0], "http://cyware.sim"))
    cpu_before = _own_cpu()
    await _run_until_done(ingestor, ids)
    result = await _measure(
        ingestor,
        ids,
        started_at,
        "in-process (ASGI): 1 replica, 1 integration",
        1,
        total,
        {"ingestor_and_simulator": _own_cpu() - cpu_before},
    )
    await ingestor.bus.close()
    await ingestor.db.dispose()
    return result


async def stages(sim_url: str, options: argparse.Namespace) -> dict[str, Any]:
    """Each stage alone, in this process."""
    from soc_shared.bus import Bus
    from soc_shared.events import make_event
    from soc_threatintel import normalize
    from soc_threatintel.client import CywareClient
    from soc_threatintel.config import Settings

    client = CywareClient(
        sim_url,
        integration_id="bench",
        access_id="acme-access",
        secret_key="acme-secret",
        page_size=options.page_size,
        max_concurrency=options.http_concurrency,
    )
    summaries: list[dict[str, Any]] = []
    started = time.perf_counter()
    page = 1
    while True:
        alerts, _, more = await client.list_alerts(page=page)
        summaries += alerts
        if not more:
            break
        page += 1
    list_s = time.perf_counter() - started
    sample = summaries[: min(len(summaries), 5000)]
    started = time.perf_counter()
    details = await client.alert_details([s["short_id"] for s in sample])
    detail_s = time.perf_counter() - started
    await client.aclose()

    started = time.perf_counter()
    for summary, detail in zip(sample, details, strict=True):
        normalize.alert(detail, summary, company_id="c1")  # type: ignore[arg-type]
    normalise_us = (time.perf_counter() - started) / len(sample) * 1e6
    started = time.perf_counter()
    events = []
    for summary, detail in zip(sample, details, strict=True):
        alert = normalize.alert(detail, summary, company_id="c1")  # type: ignore[arg-type]
        events.append(
            make_event(
                "ti.alert.upserted",
                alert,
                source="/threatintel/cyware/bench",
                subject=alert.short_id,
                vendor_version=normalize.alert_vendor_version(alert),
                integration_id="bench",
            )
        )
    envelope_us = (time.perf_counter() - started) / len(sample) * 1e6

    bus = Bus(Settings().amqp_url.get_secret_value(), service="threatintel-bench")
    await bus.connect()
    await bench_queue(bus, purge=True)
    batches = [events[i : i + options.page_size] for i in range(0, len(events), options.page_size)]
    started = time.perf_counter()
    for batch in batches:
        await bus.publish(batch)
    publish_s = time.perf_counter() - started
    await bench_queue(bus, purge=True)
    await bus.close()
    return {
        "list_alerts_per_s": round(len(summaries) / list_s),
        "listed": len(summaries),
        "detail_requests_per_s": round(len(sample) / detail_s),
        "details": len(sample),
        "normalise_us_per_alert": round(normalise_us, 1),
        "normalise_and_envelope_us_per_alert": round(envelope_us, 1),
        "bus_publish_events_per_s": round(len(events) / publish_s),
        "published": len(events),
    }


async def main_async(args: argparse.Namespace) -> None:
    import httpx
    import soc_threatintel
    from soc_shared.bus import Bus
    from soc_shared.db import migrate
    from soc_shared.provision import provision_database, provision_vhost
    from soc_threatintel.config import Settings

    provision_database(BENCH_DB, fresh=True)
    provision_vhost(BENCH_VHOST, fresh=True)
    migrate(Settings(), Path(soc_threatintel.__file__).parent / "migrations")
    port = _free_port()
    sim = start_simulator(port)
    sim_url = f"http://127.0.0.1:{port}"
    results = []
    try:
        seed = args.alerts - DEFAULT_ALERTS_PER_TENANT
        async with httpx.AsyncClient(base_url=sim_url, timeout=600) as control:
            for access_id in TENANTS:
                await control.post("/_sim/seed", json={"alerts": seed, "access_id": access_id})
            counts = (await control.get("/_sim/state")).json()["tenants"]
        per_tenant = counts["acme-access"]["alerts"]
        assert counts["globex-access"]["alerts"] == per_tenant
        print(
            f"simulator: {per_tenant} alerts per tenant, page size {args.page_size}, http concurrency "
            f"{args.http_concurrency}, {os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f}",
            flush=True,
        )
        results += [
            await scenario(
                "socket: 1 replica, 1 integration", sim_url, sim.pid, ["acme-access"], 1, per_tenant, args
            ),
            await scenario(
                "socket: 1 replica, 2 integrations", sim_url, sim.pid, list(TENANTS), 1, per_tenant, args
            ),
            await scenario(
                "socket: 2 replicas, 2 integrations", sim_url, sim.pid, list(TENANTS), 2, per_tenant, args
            ),
        ]
        for r in results:
            print(json.dumps(r), flush=True)
        if not args.skip_stages:
            print(json.dumps({"stages (socket)": await stages(sim_url, args)}), flush=True)
    finally:
        sim.terminate()
        sim.wait(timeout=15)
    if not args.skip_asgi:
        print(json.dumps(await asgi_scenario(seed, args)), flush=True)
    bus = Bus(Settings().amqp_url.get_secret_value(), service="threatintel-bench")
    await bus.connect()
    await bench_queue(bus, delete=True)
    await bus.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--alerts", type=int, default=20_000, help="alerts per tenant (acme and globex)")
    parser.add_argument("--page-size", type=int, default=500)
    parser.add_argument("--http-concurrency", type=int, default=8)
    parser.add_argument("--skip-stages", action="store_true")
    parser.add_argument("--skip-asgi", action="store_true")
    parser.add_argument("--replica", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--concurrency", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("ids", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    _env()
    # uvloop where installed: the service runs under uvicorn, whose event loop it is
    try:
        import uvloop

        run: Any = uvloop.run
    except ImportError:  # pragma: no cover
        run = asyncio.run
    if args.replica:
        run(replica(args.ids, args.concurrency))
    else:
        run(main_async(args))


if __name__ == "__main__":
    main()
