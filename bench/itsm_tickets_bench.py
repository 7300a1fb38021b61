"""Tickets per incident when ServiceDesk Plus loses the answers of creates it carried out.

    cd /work/main && UV_PYTHON_DOWNLOADS=never uv run python bench/itsm_tickets_bench.py [--incidents 200]
        [--lost-share 0.3] [--crash-share 0.1] [--concurrency 8] [--seed 25]

The SDP simulator answers as SDP v3 does (list rows carry the list view's columns only; the
incident-id field and the subject only when ``fields_required`` names them) and runs under uvicorn
on a loopback port. ``--lost-share`` of the creates lose their answer after the request exists, a
third each way: the connection is cut after the headers (``drop_after``), a 500 comes back
(``500_after``), or the answer arrives after the client's read timeout (``slow_after``). The
incidents go through the TicketService exactly as the consumer hands them over (idempotency record
committed first, search, create, record, publish with confirms), ``--concurrency`` at once; then
the reconciler runs as time passes (every backoff made due at once) until no request is pending.

Scenarios, each on a fresh simulator and its own ITSM integration:
  1. ``search without fields`` — the search as it was before (no ``fields_required``, matched on
     the incident-id field of the list row): the duplicate as customers saw it;
  2. ``lost answers`` — the service as it is;
  3. ``lost answers + crashes`` — also ``--crash-share`` of the handlers die between SDP creating
     the request and the record being written (the reconciler finds the request afterwards).

Printed per scenario: incidents, creates sent to SDP, answers lost, handler crashes, requests in
SDP, tickets per incident (how many incidents have 0, 1, 2, ... tickets), reconciler rounds, wall
time. The aim is exactly one ticket per incident, always.

A database ``soc_bench_itsm_tickets`` and a vhost of the same name are (re)created for the run.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH_DB = BENCH_VHOST = "soc_bench_itsm_tickets"
SOAR = "bench-soar"
LOST_KINDS = ("drop_after", "500_after", "slow_after")


def _env() -> None:
    os.environ["SOC_DB_NAME"] = BENCH_DB
    hostport = os.environ.get("SOC_AMQP_HOSTPORT", "127.0.0.1:5672")
    os.environ["SOC_AMQP_URL"] = f"amqp://soc:soc@{hostport}/{BENCH_VHOST}"
    os.environ.setdefault("SOC_LOG_LEVEL", "ERROR")


class Crash(BaseException):
    """The handler's process dies (nothing on the way catches a BaseException)."""


def _services() -> tuple[type, type]:
    from soc_itsm_ingest import normalize
    from soc_itsm_ingest.tickets import TicketService

    class OldSearch(TicketService):
        """The search before the fix: no fields_required, matched on the list row alone."""

        @staticmethod
        async def _find_existing(
            client: Any, options: Any, incident_id: str, reference: str, account_id: str
        ) -> dict[str, Any] | None:
            field_name = options.incident_id_field
            answer = await client.list_page(
                "requests",
                "requests",
                {
                    "row_count": 10,
                    "start_index": 1,
                    "sort_field": "created_time",
                    "sort_order": "asc",
                    "search_criteria": [{"field": field_name, "condition": "is", "value": incident_id}],
                },
                account_id=account_id,
            )
            exact = [
                m for m in answer.records if str(normalize.field_value(m, field_name) or "") == incident_id
            ]
            return exact[0] if exact else None

    class Crashing(TicketService):
        """Dies after SDP created the request, before the record, for a share of the handlers."""

        crash_share = 0.0
        crashes = 0
        rng = random.Random(7)

        async def _mark_created(self, row: dict[str, Any], ticket_id: str, *, found: bool) -> None:
            if not found and self.rng.random() < self.crash_share:
                type(self).crashes += 1
                raise Crash(ticket_id)
            await super()._mark_created(row, ticket_id, found=found)

    return OldSearch, Crashing


async def scenario(
    name: str, service_cls: type, args: argparse.Namespace, bus: Any, db: Any, crash_share: float = 0.0
) -> dict[str, Any]:
    import httpx
    import sqlalchemy as sa
    from soc_itsm_ingest.config import Settings
    from soc_itsm_ingest.mapping import StaticTicketRouting
    from soc_itsm_ingest.resources import RESOURCES, client_for
    from soc_itsm_ingest.tickets import ticket_request_table as t
    from soc_shared.events import IncidentSeverity, IncidentStatus, IntegrationChanged, SoarIncident
    from soc_shared.sync import Ingestor
    from soc_shared.testing import ServerThread
    from soc_shared.vendor_http import RetryPolicy
    from soc_simulators import sdp as sdp_sim
    from soc_simulators.faults import Fault

    app = sdp_sim.create_app(seed=args.seed, requests=50, xsoar_incidents=60)
    state, board = app.state.sim, app.state.faults
    acme = sdp_sim.ACCOUNTS[0]
    settings = Settings(scheduler_enabled=False)

    async def credentials(_: str) -> dict[str, Any]:
        return {"credential_kind": "API_KEY", "secrets": {"api_key": sdp_sim.AUTH_TOKEN}, "ca_pem": None}

    with ServerThread(app) as server:
        # The simulator's dropped connections are logged by uvicorn as errors: they are the point here.
        logging.getLogger("uvicorn.error").setLevel(logging.CRITICAL)
        url = f"http://127.0.0.1:{server.port}"
        options = {
            "retry": RetryPolicy(attempts=3, base_delay=0.05, max_delay=0.2, max_retry_after=2),
            "timeout": httpx.Timeout(args.client_timeout, connect=2.0),
        }
        ingestor = Ingestor(
            name="itsm-ingest",
            vendor="sdp",
            subtype="MANAGEENGINE_SDP",
            db=db,
            bus=bus,
            resources=[r for r in RESOURCES if r.name == "tickets"],
            client_factory=lambda i, c: client_for(i, c, settings, **options),
            credentials=credentials,
        )
        integration = f"bench-sdp-{uuid.uuid4().hex[:8]}"
        async with db.session() as session:
            await ingestor.apply_integration(
                session,
                IntegrationChanged(
                    integration_id=integration,
                    integration_type="ITSM",
                    subtype="MANAGEENGINE_SDP",
                    instance_name="bench",
                    status="active",
                    base_url=url,
                    credential_kind="API_KEY",
                    changed_at=datetime.now(UTC),
                ),
            )
        routing = StaticTicketRouting.from_json(
            [
                {
                    "soar_integration_id": SOAR,
                    "account": acme.soar_account,
                    "company_id": "bench-company",
                    "itsm_integration_id": integration,
                    "account_id": acme.id,
                }
            ]
        )
        service = service_cls(
            ingestor=ingestor, routing=routing, concurrency=args.concurrency, lease_seconds=60
        )
        if crash_share:
            service_cls.crash_share = crash_share
            service_cls.crashes = 0
        now = datetime.now(UTC)
        incidents = [
            SoarIncident(
                incident_id=f"b{n}-{uuid.uuid4().hex[:6]}",
                account=acme.soar_account,
                name=f"Bench incident {n}",
                status=IncidentStatus.ACTIVE,
                severity=IncidentSeverity.HIGH,
                created=now,
                modified=now,
                priority="P1",
                version=1,
            )
            for n in range(args.incidents)
        ]
        before = len(state.records)
        board.seed(args.seed)
        left = 1.0
        for kind in LOST_KINDS:
            p = args.lost_share / len(LOST_KINDS)
            board.arm(
                Fault(
                    kind=kind,
                    path="/api/v3/requests",
                    method="POST",
                    count=1_000_000,
                    probability=min(1.0, p / left),
                    hang_seconds=args.client_timeout * 2,
                )
            )
            left -= p
        started = time.perf_counter()

        async def one(incident: SoarIncident) -> None:
            try:
                await service.handle_incident(incident, SOAR)
            except Crash:
                pass

        await asyncio.gather(*(one(i) for i in incidents))
        rounds = 0
        for rounds in range(1, args.max_rounds + 1):  # noqa: B007 - reported
            async with db.session() as session:  # as time passes: every lease and backoff runs out
                await session.execute(
                    sa.update(t)
                    .where(t.c.integration_id == integration, t.c.state == "pending")
                    .values(lease_until=sa.func.now() - sa.text("interval '1 second'"))
                )
            try:
                while await service.reconcile_once(limit=args.concurrency * 4):
                    pass
            except Crash:
                pass
            async with db.session() as session:
                pending = (
                    await session.execute(
                        sa.select(sa.func.count()).where(
                            t.c.integration_id == integration, t.c.state == "pending"
                        )
                    )
                ).scalar_one()
            if not pending:
                break
        elapsed = time.perf_counter() - started
        board.clear()
        await asyncio.sleep(args.client_timeout * 2)  # late answers leave before the server stops
        per_incident = Counter()
        wanted = {i.incident_id for i in incidents}
        by_incident: Counter[str] = Counter()
        for rec in list(state.records.values())[before:]:
            soar_id = rec.doc["udf_fields"].get(sdp_sim.UDF_SOAR_ID)
            if soar_id in wanted:
                by_incident[soar_id] += 1
        for incident_id in wanted:
            per_incident[by_incident[incident_id]] += 1
        async with db.session() as session:
            rows = (
                await session.execute(
                    sa.select(t.c.state, sa.func.count(), sa.func.sum(t.c.creates))
                    .where(t.c.integration_id == integration)
                    .group_by(t.c.state)
                )
            ).all()
        creates = sum(int(r[2] or 0) for r in rows)
        return {
            "scenario": name,
            "incidents": len(incidents),
            "creates_sent": creates if creates else "n/a",
            "answers_lost": sum(board.fired[k] for k in LOST_KINDS),
            "handler_crashes": getattr(service_cls, "crashes", 0) if crash_share else 0,
            "requests_in_sdp": sum(by_incident.values()),
            "tickets_per_incident": dict(sorted(per_incident.items())),
            "records": {r[0]: r[1] for r in rows},
            "reconciler_rounds": rounds,
            "seconds": round(elapsed, 2),
        }


async def main_async(args: argparse.Namespace) -> None:
    import soc_itsm_ingest
    from soc_itsm_ingest.config import Settings
    from soc_itsm_ingest.tickets import TicketService
    from soc_shared.bus import Bus
    from soc_shared.db import Database, migrate
    from soc_shared.provision import provision_database, provision_vhost

    provision_database(BENCH_DB, fresh=True)
    provision_vhost(BENCH_VHOST, fresh=True)
    settings = Settings()
    migrate(settings, Path(soc_itsm_ingest.__file__).parent / "migrations")
    db = Database.from_settings(settings)
    bus = Bus(settings.amqp_url.get_secret_value(), service="itsm-tickets-bench")
    await bus.connect()
    OldSearch, Crashing = _services()
    try:
        print(
            f"{args.incidents} P1 incidents, {args.lost_share:.0%} of creates lose their answer "
            f"(drop_after / 500_after / slow_after, client read timeout {args.client_timeout}s)"
        )
        for name, cls, crash in (
            ("search without fields (before)", OldSearch, 0.0),
            ("lost answers", TicketService, 0.0),
            ("lost answers + crashes", Crashing, args.crash_share),
        ):
            result = await scenario(name, cls, args, bus, db, crash_share=crash)
            print(
                f"{result['scenario']:<32} incidents {result['incidents']:>4}  creates sent "
                f"{result['creates_sent']!s:>4}  answers lost {result['answers_lost']:>3}  crashes "
                f"{result['handler_crashes']:>3}  requests in SDP {result['requests_in_sdp']:>4}  "
                f"tickets per incident {result['tickets_per_incident']}  records {result['records']}  "
                f"reconciler rounds {result['reconciler_rounds']}  {result['seconds']} s"
            )
    finally:
        await bus.close()
        await db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--incidents", type=int, default=200)
    parser.add_argument("--lost-share", type=float, default=0.3)
    parser.add_argument("--crash-share", type=float, default=0.1)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--client-timeout", type=float, default=0.5)
    parser.add_argument("--max-rounds", type=int, default=20)
    parser.add_argument("--seed", type=int, default=25)
    args = parser.parse_args()
    _env()
    from loguru import logger

    logger.remove()
    logger.add(sys.stderr, level="ERROR")
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
