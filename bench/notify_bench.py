"""Notification benchmark: how many notices the delivery sustains, and how late an SLA breach's e-mail is.

    uv run python bench/notify_bench.py                      # 2,000 offenses, 40 SLA deadlines
    uv run python bench/notify_bench.py --offenses 10000 --incidents 100 --sla-watch 15

What it does (a script that prints figures, not a test):

1. a fresh database and vhost (``SOC_BENCH_DB``, default ``soc_bench_notify``), migrated; the tenant
   service's app in this process with its notification consumer, SLA watch and delivery loop running
   (the read model's consumers off);
2. throughput: one company with a rule "new offense" sending to a signed webhook (a real HTTP
   receiver on loopback, in its own thread) and to e-mail (a real SMTP server, aiosmtpd, in its own
   thread); N offense events published on the bus; it reports events → notices per second (the
   consumer), deliveries per second by channel and notices fully delivered per second, end to end;
3. latency: a rule "SLA breached" sending e-mail; M incidents whose TTA deadlines fall one to two
   minutes ahead, a second apart; for each, the delay from the deadline to the message's arrival at
   the SMTP server (p50, p95, max). It is bounded by the SLA watch's period (``--sla-watch``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

BENCH_DB = os.environ.get("SOC_BENCH_DB", "soc_bench_notify")
BENCH_VHOST = os.environ.get("SOC_BENCH_VHOST", BENCH_DB)


def set_env() -> None:
    os.environ["SOC_DB_NAME"] = BENCH_DB
    hostport = os.environ.get("SOC_AMQP_HOSTPORT", "127.0.0.1:5672")
    os.environ["SOC_AMQP_URL"] = f"amqp://soc:soc@{hostport}/{BENCH_VHOST}"
    os.environ.setdefault("SOC_LOG_LEVEL", "WARNING")


def log(msg: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {msg}", flush=True)  # noqa: T201


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Receivers:
    """The SMTP server and the webhook receiver in a process of their own (they must not share this
    process's interpreter lock with the service measured); each arrival comes back as a line."""

    def __init__(self) -> None:
        from soc_shared.testing import free_port

        self.smtp_port, self.http_port = free_port(), free_port()
        self.arrivals: list[tuple[float, str]] = []
        self.hooks = 0
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "receivers", str(self.smtp_port), str(self.http_port)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().strip() == "ready"
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            kind, at, rest = ([*line.rstrip("\n").split(" ", 2), "", ""])[:3]
            if kind == "mail":
                self.arrivals.append((float(at), rest))
            elif kind == "hook":
                self.hooks += 1

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def serve_receivers(smtp_port: int, http_port: int) -> None:
    import uvicorn
    from aiosmtpd.controller import Controller

    lock = threading.Lock()

    def emit(line: str) -> None:
        with lock:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    class Mailbox:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
            subject = ""
            for text_line in envelope.content.decode(errors="replace").splitlines():
                if text_line.lower().startswith("subject:"):
                    subject = text_line.split(":", 1)[1].strip()
                    break
            emit(f"mail {time.time()} {subject}")
            return "250 OK"

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        more = True
        while more:
            message = await receive()
            more = message.get("more_body", False)
        emit(f"hook {time.time()} ")
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}
        )
        await send({"type": "http.response.body", "body": b"ok"})

    smtp = Controller(Mailbox(), hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=http_port, log_level="warning"))
    threading.Thread(target=lambda: (time.sleep(1.0), emit("ready")), daemon=True).start()
    server.run()


async def run(args: argparse.Namespace) -> None:
    import httpx
    import sqlalchemy as sa
    from soc_shared.events import SiemOffense
    from soc_shared.testing import TokenFactory
    from soc_tenant.config import Settings
    from soc_tenant.main import create_app
    from soc_tenant.notify.options import NotifyOptions
    from soc_tenant.readmodel import ingest
    from soc_tenant.readmodel.testing import event, map_qradar, map_soar, set_company_sla

    receivers = Receivers()
    mailbox = receivers
    tokens = TokenFactory()
    app = create_app(Settings(consumers_enabled=False), verifier=tokens.verifier())
    app.state.notify_options = NotifyOptions(
        consumer=True,
        sla_watch_seconds=args.sla_watch,
        deliver_idle_seconds=1.0,
        concurrency=args.concurrency,
    )
    admin = tokens.headers(kind="admin")
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tenant") as api,
        ):
            db = app.state.db

            async def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
                r = await api.post(path, headers=admin, json=body)
                assert r.status_code == 201, r.text
                return r.json()

            company = (await post("/admin/companies/", {"name": f"Bench {uuid.uuid4().hex[:6]}"}))["id"]
            mail = {
                "name": "mail",
                "kind": "email",
                "company_id": company,
                "sender": "soc@mssp.example",
                "recipients": ["oncall@customer.example"],
                "smtp_host": "127.0.0.1",
                "smtp_port": receivers.smtp_port,
                "smtp_security": "none",
                "rate_per_minute": 6000,
            }
            mail_id = (await post("/admin/notifications/channels/", mail))["id"]
            hook_id = (
                await post(
                    "/admin/notifications/channels/",
                    {
                        "name": "hook",
                        "kind": "webhook",
                        "company_id": company,
                        "url": f"http://127.0.0.1:{receivers.http_port}/hook",
                        "secret": "bench-secret-0123456789",
                        "rate_per_minute": 6000,
                    },
                )
            )["id"]
            await post(
                "/admin/notifications/rules/",
                {
                    "name": "offenses",
                    "trigger": "offense_created",
                    "company_id": company,
                    "channel_ids": [hook_id, mail_id],
                },
            )
            qradar = str(uuid.uuid4())
            await map_qradar(db, company, qradar, 3)

            # --- throughput -------------------------------------------------------------------
            now = datetime.now(UTC)
            events = []
            for k in range(1, args.offenses + 1):
                p = SiemOffense(
                    offense_id=k,
                    domain_id=3,
                    description=f"Malware beacon {k}",
                    status="OPEN",
                    severity=7,
                    magnitude=5,
                    credibility=5,
                    relevance=5,
                    start_time=now,
                    last_updated_time=now,
                    version=1,
                )
                events.append(event("siem.offense.upserted", p, qradar, str(k), version=1))
            log(f"publishing {len(events)} offense events")
            started, cpu_started = time.perf_counter(), time.process_time()
            for i in range(0, len(events), 200):
                await app.state.bus.publish(events[i : i + 200])
            published = time.perf_counter()
            expected = 2 * args.offenses

            async def count(sql: str) -> int:
                async with db.session() as s:
                    return int((await s.execute(sa.text(sql))).scalar_one())

            notices_done = deliveries_done = None
            while True:
                n = await count("SELECT count(*) FROM notify_notice")
                sent = await count("SELECT count(*) FROM notify_delivery WHERE status <> 'pending'")
                if notices_done is None and n >= args.offenses:
                    notices_done = time.perf_counter()
                if sent >= expected:
                    deliveries_done = time.perf_counter()
                    break
                if time.perf_counter() - started > args.timeout:
                    log(f"timed out: {n} notices, {sent} deliveries finished")
                    break
                await asyncio.sleep(0.2)
            async with db.engine.connect() as conn:
                by_kind = {
                    r[0]: (r[1], r[2])
                    for r in (
                        await conn.execute(
                            sa.text(
                                "SELECT c.kind, count(*) FILTER (WHERE d.status = 'sent'), count(*) "
                                "FROM notify_delivery d JOIN notify_channel c ON c.id = d.channel_id GROUP BY c.kind"
                            )
                        )
                    ).all()
                }
            spans = await count(
                "SELECT extract(epoch FROM max(sent_at) - min(sent_at)) * 1000 FROM notify_delivery WHERE status = 'sent'"
            )
            total = (deliveries_done or time.perf_counter()) - started
            cpu = time.process_time() - cpu_started
            log(f"published in {published - started:.2f}s")
            if notices_done:
                log(
                    f"consumer: {args.offenses} notices in {notices_done - started:.2f}s = {args.offenses / (notices_done - started):.0f} notices/s"
                )
            log(
                f"deliveries by channel (sent, all): {by_kind}; webhook receiver saw {receivers.hooks}, SMTP {len(mailbox.arrivals)}"
            )
            log(
                f"end to end: {args.offenses} notices, {expected} deliveries in {total:.2f}s = "
                f"{args.offenses / total:.0f} notices/s fully delivered, {expected / total:.0f} deliveries/s "
                f"(first to last send {spans / 1000:.2f}s)"
            )
            log(
                f"CPU of this process (consumer, SLA watch, delivery; receivers excluded): {cpu:.1f}s = "
                f"{cpu * 1000 / args.offenses:.1f} ms per notice with its {expected // args.offenses} deliveries, "
                f"i.e. about {args.offenses / cpu:.0f} notices/s for one free core"
            )

            # --- SLA breach to e-mail -----------------------------------------------------------
            soar, account = str(uuid.uuid4()), "bench"
            await map_soar(db, company, soar, account)
            await set_company_sla(db, company, "P1", 1, 600, 1200)
            await post(
                "/admin/notifications/rules/",
                {
                    "name": "breached",
                    "trigger": "sla_breached",
                    "company_id": company,
                    "channel_ids": [mail_id],
                },
            )
            from soc_shared.events import IncidentSeverity, IncidentStatus, SoarIncident

            base = datetime.now(UTC).replace(microsecond=0)
            deadlines: dict[str, datetime] = {}
            rows = []
            for k in range(args.incidents):
                # TTA is 1 minute: occurred 1 minute before the deadline, deadlines 60 s ahead, 1 s apart.
                deadline = base + timedelta(seconds=60 + k)
                occurred = deadline - timedelta(minutes=1)
                inc = f"B-{k}"
                deadlines[inc] = deadline
                p = SoarIncident(
                    incident_id=inc,
                    account=account,
                    name=f"Bench incident {k}",
                    status=IncidentStatus.ACTIVE,
                    severity=IncidentSeverity.CRITICAL,
                    created=occurred,
                    modified=occurred,
                    occurred=occurred,
                    priority="P1",
                    version=1,
                )
                rows.append(
                    (event("soar.incident.upserted", p, soar, inc, version=1), p, "soar.incident.upserted")
                )
            await ingest.store(db, rows)
            mark = len(mailbox.arrivals)
            last = max(deadlines.values())
            log(
                f"{len(deadlines)} TTA deadlines from {base + timedelta(seconds=60):%H:%M:%S} to {last:%H:%M:%S}; SLA watch every {args.sla_watch:g}s"
            )
            while len(mailbox.arrivals) - mark < len(deadlines):
                if datetime.now(UTC) > last + timedelta(seconds=args.sla_watch * 3 + 60):
                    break
                await asyncio.sleep(0.2)
            delays = []
            for at, subject in mailbox.arrivals[mark:]:
                for inc, deadline in deadlines.items():
                    if f"incident {inc} " in subject:
                        delays.append(at - deadline.timestamp())
            if delays:
                log(
                    f"SLA breach → e-mail arrival over {len(delays)} incidents: p50 {statistics.median(delays):.2f}s, "
                    f"p95 {pct(delays, 0.95):.2f}s, max {max(delays):.2f}s, min {min(delays):.2f}s"
                )
            else:
                log("no breach e-mail arrived")
    finally:
        receivers.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--offenses", type=int, default=2000)
    parser.add_argument("--incidents", type=int, default=40)
    parser.add_argument("--sla-watch", type=float, default=15.0, help="the SLA watch's period (s)")
    parser.add_argument("--concurrency", type=int, default=32, help="sends in flight")
    parser.add_argument("--timeout", type=float, default=600.0)
    if len(sys.argv) == 4 and sys.argv[1] == "receivers":
        serve_receivers(int(sys.argv[2]), int(sys.argv[3]))
        return
    args = parser.parse_args()
    set_env()
    from soc_shared.provision import provision_database, provision_vhost
    from soc_shared.testing import start_local
    from soc_tenant.config import Settings
    from soc_tenant.readmodel.testing import migrate_schema

    start_local()
    log(f"fresh database and vhost {BENCH_DB}")
    provision_database(BENCH_DB, fresh=True)
    provision_vhost(BENCH_VHOST, fresh=True)
    migrate_schema(Settings())
    log(f"load before: {os.popen('uptime').read().strip()}")
    asyncio.run(run(args))
    log(f"load after: {os.popen('uptime').read().strip()}")


if __name__ == "__main__":
    main()
