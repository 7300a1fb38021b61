"""Tenant read-model benchmark: dashboard and list latency at scale, consumer throughput vs COPY.

    uv run python bench/tenant_bench.py                 # full scale (1M offenses, 1M incidents, ...)
    uv run python bench/tenant_bench.py --scale 0.1     # a tenth of it
    uv run python bench/tenant_bench.py --gateway http://127.0.0.1:8000 --token <access token of the big company>

What it does (a script that prints figures, not a test):

1. a fresh database ``soc_bench`` and vhost ``soc_bench``, migrated;
2. generates, straight in PostgreSQL (INSERT .. SELECT generate_series): one big company with 1M
   offenses, 1M incidents, 500k tickets, 10M metric points (hourly event-log samples of a year,
   each holding its rows), a year of hourly and daily EPS, 2,000 log sources, 5,000 threat alerts;
   and 20 smaller companies with 1/50 of that each; rebuilds the rollups, VACUUM ANALYZE;
3. serves the tenant service with uvicorn on loopback (a separate process, one worker) and
   measures ``/tenant/dashboard/`` and filtered list pages as the big company's user (p50/p95/p99,
   sequential requests), through the gateway instead when ``--gateway`` is given;
4. publishes N offense events (default 200k, new offenses) on the bus with the consumer stopped,
   starts it and measures events/s into PostgreSQL (rollups included), then a second run with a
   newer version of each, and compares with a plain COPY of the same rows into a table of the same
   shape and indexes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

BENCH_DB = os.environ.get("SOC_BENCH_DB", "soc_bench")  # its own name per concurrent run
BENCH_VHOST = os.environ.get("SOC_BENCH_VHOST", BENCH_DB)
QRADAR, SOAR, ITSM = "bench-qradar", "bench-xsoar", "bench-sdp"


def set_env() -> None:
    os.environ["SOC_DB_NAME"] = BENCH_DB
    hostport = os.environ.get("SOC_AMQP_HOSTPORT", "127.0.0.1:5672")
    os.environ["SOC_AMQP_URL"] = f"amqp://soc:soc@{hostport}/{BENCH_VHOST}"
    os.environ.setdefault("SOC_LOG_LEVEL", "WARNING")


def log(msg: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {msg}", flush=True)  # noqa: T201


# ------------------------------------------------------------------------------------- generate
OFFENSES = """
INSERT INTO qradar_offense (integration_id, offense_id, domain_id, description, status, severity, magnitude,
    credibility, relevance, event_count, flow_count, assigned_to, categories, rules, offense_source, offense_type,
    source_address_ids, local_destination_address_ids, destination_networks, log_sources, start_time,
    last_updated_time, close_time, closing_reason, version, event_id)
SELECT %(qi)s, g, %(dom)s,
    (ARRAY['Brute force against','Port scan from','Malware beacon to','Exfiltration to','Policy violation by'])[1 + g %% 5]
        || ' 10.' || (g %% 250) || '.' || (g %% 199) || '.' || (g %% 97),
    CASE WHEN r < 0.80 THEN 'CLOSED' WHEN r < 0.95 THEN 'OPEN' ELSE 'HIDDEN' END,
    1 + (g * 7) %% 10, 1 + (g * 3) %% 10, 1 + g %% 10, 1 + (g * 11) %% 10,
    (g %% 5000) + 1, g %% 50, CASE WHEN g %% 3 = 0 THEN 'analyst' || (g %% 12) END,
    CASE WHEN g %% 4 = 0 THEN '["Suspicious Activity","Recon"]'::jsonb
         ELSE jsonb_build_array((ARRAY['Suspicious Activity','Malware','Access','Exploit','DoS'])[1 + g %% 5]) END,
    jsonb_build_array(jsonb_build_object('id', 100 + g %% 40, 'type', 'CRE_RULE')),
    '10.' || (g %% 250) || '.' || (g %% 199) || '.' || (g %% 97), g %% 10,
    jsonb_build_array(g %% 1000, g %% 777), jsonb_build_array(g %% 500), '["Net-10-172-192"]'::jsonb,
    jsonb_build_array(jsonb_build_object('id', 1 + g %% %(log_sources)s, 'name', 'ls-' || (1 + g %% %(log_sources)s))),
    st, st + interval '10 minutes', CASE WHEN r < 0.80 THEN st + interval '5 hours' END,
    CASE WHEN r < 0.80 THEN 'False-Positive' END, 1, NULL
FROM (SELECT g, random() AS r, now() - random() * interval '365 days' AS st
      FROM generate_series(%(lo)s::bigint, %(hi)s::bigint) g) s
"""

INCIDENTS = """
INSERT INTO soar_incident (integration_id, incident_id, account, name, type, status, severity, owner, created, modified,
    occurred, closed, close_reason, phase, priority, tta_at, ttn_at, ttdn_at, rules, offense_ids, mitre_tactics,
    mitre_techniques, qradar_category, playbook_id, configuration_item, sla, itsm_sync_status, version,
    vendor_priority)
SELECT %(si)s, %(prefix)s || g, %(acc)s, 'Incident ' || g,
    (ARRAY['Malware','Phishing','Brute Force','Data Loss','Recon','Policy'])[1 + g %% 6],
    CASE WHEN created < now() - interval '2 days' AND r < 0.92 THEN 'closed' WHEN r < 0.97 THEN 'active' ELSE 'pending' END,
    (ARRAY['low','medium','high','critical','informational'])[1 + (g * 3) %% 5],
    CASE WHEN g %% 50 <> 0 THEN 'analyst' || (g %% 15) END,
    created, created + interval '1 hour', created - (g %% 30) * interval '1 minute',
    CASE WHEN created < now() - interval '2 days' AND r < 0.92 THEN created + (r * 3000) * interval '1 minute' END,
    CASE WHEN created < now() - interval '2 days' AND r < 0.92
         THEN CASE WHEN g %% 7 = 0 THEN 'False Positive' ELSE 'Resolved' END END,
    (ARRAY['Detection','Triage','Containment','Eradication'])[1 + g %% 4], (ARRAY['P1','P2','P3','P4'])[1 + (g * 13) %% 4],
    CASE WHEN r2 < 0.90 THEN created + (r2 * 50) * interval '1 minute' END,
    CASE WHEN r2 < 0.85 THEN created + (r2 * 100) * interval '1 minute' END,
    CASE WHEN r2 < 0.80 THEN created + (r2 * 1500) * interval '1 minute' END,
    jsonb_build_array('UC-' || (g %% 30)), jsonb_build_array(g),
    jsonb_build_array('TA000' || (1 + g %% 9)), jsonb_build_array('T' || (1000 + g %% 60)),
    'Suspicious Activity', 'pb-' || (g %% 20), 'host-' || (g %% 500) || '.corp', g %% 4,
    (ARRAY['Ready','Ready','Ready','Done','Error'])[1 + g %% 5], 1,
    CASE WHEN g %% 20 <> 0 THEN (ARRAY['P1','P2','P3','P4'])[1 + (g * 13) %% 4] END
FROM (SELECT g, random() AS r, random() AS r2, now() - random() * interval '365 days' AS created
      FROM generate_series(%(lo)s::bigint, %(hi)s::bigint) g) s
"""

TICKETS = """
INSERT INTO itsm_ticket (integration_id, ticket_id, account_id, account_name, subject, short_description, status,
    priority, is_overdue, created_time, last_updated_time, created_by_name, soar_incident_id, version)
SELECT %(ii)s, %(prefix)s || g, %(acc)s, %(acc)s, 'Ticket for incident ' || g, 'SOC escalation',
    CASE WHEN r < 0.85 THEN 'Closed' WHEN r < 0.95 THEN 'Open' ELSE 'In Progress' END,
    (ARRAY['Low','Medium','High','Urgent'])[1 + g %% 4], r > 0.9,
    created, created + interval '2 hours', 'soc-bot', %(inc_prefix)s || g, 1
FROM (SELECT g, random() AS r, now() - random() * interval '365 days' AS created
      FROM generate_series(%(lo)s::bigint, %(hi)s::bigint) g) s
"""

FAMILIES = [
    "event_counts",
    "daily_events",
    "correlated",
    "weekly_correlated",
    "suspicious",
    "dos",
    "top_dos",
    "top_alerts",
    "daily_closure_reasons",
    "total_traffic",
    "destination_addresses",
    "top_destination_connections",
    "successful_logons",
    "remote_users",
    "weekly_avg_eps",
    "monthly_avg_eps",
    "last_month_avg_eps",
    "total_events",
    "daily_event_counts",
]

METRICS = """
INSERT INTO metric_sample (integration_id, domain_id, family, granularity, window_start, window_end, rows, version)
SELECT %(qi)s, %(dom)s, f, 'hour', w, w + interval '1 hour',
    (SELECT jsonb_agg(jsonb_build_object('name', 'item-' || k, 'count', (h * k) %% 997)) FROM generate_series(1, %(points)s) k),
    1
FROM unnest(%(families)s::text[]) f,
     generate_series(0, %(hours)s - 1) h,
     LATERAL (SELECT date_trunc('hour', now()) - h * interval '1 hour' AS w) x
"""

EPS = """
INSERT INTO eps_sample (integration_id, domain_id, granularity, window_start, window_end, collector, average_eps,
    peak_eps, version)
SELECT %(qi)s, %(dom)s, gran, w, w + step, '', base * (0.7 + random() * 0.6), base * (1.2 + random()), 1
FROM (VALUES ('hour', interval '1 hour', 8760), ('day', interval '1 day', 365)) v(gran, step, n),
     LATERAL generate_series(0, n - 1) i,
     LATERAL (SELECT date_trunc(gran, now()) - i * step AS w) x,
     (SELECT %(base)s::float AS base) b
"""

LOG_SOURCES = """
INSERT INTO qradar_log_source (integration_id, log_source_id, name, domain_id, type_id, type_name, event_collector_id,
    sending_ip, enabled, status, group_ids, average_eps, creation_time, last_event_time, version)
SELECT %(qi)s, %(base)s + g, 'ls-' || g, %(dom)s, 1 + g %% 20, 'Type ' || (1 + g %% 20), 1 + g %% 4,
    '10.1.' || (g %% 250) || '.' || (g %% 200), g %% 25 <> 0,
    (ARRAY['SUCCESS','SUCCESS','SUCCESS','ERROR','WARN','NA'])[1 + g %% 6], ARRAY[1 + g %% 5]::bigint[],
    (g %% 97) * 1.5, now() - interval '300 days', now() - (g %% 60) * interval '1 minute', 1
FROM generate_series(1, %(n)s) g
"""

ALERTS = """
INSERT INTO ti_alert (integration_id, short_id, company_id, title, status, tlp, published_time, content, tags, groups,
    recipient_groups, version)
SELECT %(ti)s, 'alert-' || g, NULL, 'Advisory ' || g, 'PUBLISHED', (ARRAY['WHITE','GREEN','AMBER','RED'])[1 + g %% 4],
    now() - random() * interval '365 days', 'Content of advisory ' || g, '[{"id":"t1","name":"ransomware"}]',
    '[{"id":"g1"}]', '[]', 1
FROM generate_series(1, %(n)s) g
"""


def generate(
    conn: Any, scale: float, small_companies: int, big_offenses: int | None = None
) -> dict[str, Any]:
    """Companies, mappings and the bulk rows. Returns what the measurements need."""
    companies = []
    with conn.cursor() as cur:
        for n in range(small_companies + 1):
            big = n == 0
            company_id = str(uuid.uuid4())
            name = "BigCorp" if big else f"Small {n:02d}"
            dom = 1 if big else 100 + n
            acc = "bigcorp" if big else f"small-{n:02d}"
            cur.execute("INSERT INTO company (id, name) VALUES (%s, %s)", (company_id, name))
            cur.execute(
                "INSERT INTO qradar_mapping (id, company_id, integration_id, domain_id, contracted_volume_type, "
                "contracted_volume) VALUES (%s, %s, %s, %s, 'EPS', %s)",
                (str(uuid.uuid4()), company_id, QRADAR, dom, 5000 if big else 500),
            )
            cur.execute(
                "INSERT INTO soar_mapping (id, company_id, integration_id, account) VALUES (%s, %s, %s, %s)",
                (str(uuid.uuid4()), company_id, SOAR, acc),
            )
            cur.execute(
                "INSERT INTO itsm_mapping (id, company_id, integration_id, account_id) VALUES (%s, %s, %s, %s)",
                (str(uuid.uuid4()), company_id, ITSM, acc),
            )
            ti = str(uuid.uuid4())
            cur.execute(
                "INSERT INTO integration (id, integration_type, subtype, instance_name, base_url, credential_kind, "
                "credentials_sealed, company_id, status) VALUES (%s, 'THREAT_INTELLIGENCE', 'CYWARE', %s, "
                "'https://cyware.example', 'SECRET_KEY_ACCESS_KEY', 'sealed', %s, 'active')",
                (ti, f"cyware-{n}", company_id),
            )
            cur.execute(
                "INSERT INTO qradar_domain (integration_id, domain_id, name) VALUES (%s, %s, %s)",
                (QRADAR, dom, f"{name} domain"),
            )
            cur.execute(
                "INSERT INTO soar_account (integration_id, account_id, name, version) VALUES (%s, %s, %s, 1)",
                (SOAR, str(n), acc),
            )
            cur.execute(
                "INSERT INTO itsm_account (integration_id, account_id, name, version) VALUES (%s, %s, %s, 1)",
                (ITSM, acc, name),
            )
            companies.append(
                {"id": company_id, "name": name, "domain": dom, "account": acc, "ti": ti, "big": big}
            )
        conn.commit()

    share = 1.0 if small_companies == 0 else 1 / 50
    volumes = {
        "offenses": int(1_000_000 * scale),
        "incidents": int(1_000_000 * scale),
        "tickets": int(500_000 * scale),
        "metric_points": int(10_000_000 * scale),
        "log_sources": max(50, int(2000 * scale)),
        "alerts": max(50, int(5000 * scale)),
    }
    points_per_sample = 60
    hours = max(24, int(volumes["metric_points"] / (len(FAMILIES) * points_per_sample)))
    offense_base = incident_base = 0
    for c in companies:
        f = 1.0 if c["big"] else share
        n_off, n_inc, n_tk = (
            big_offenses if c["big"] and big_offenses is not None else int(volumes["offenses"] * f),
            int(volumes["incidents"] * f),
            int(volumes["tickets"] * f),
        )
        started = time.perf_counter()
        with conn.cursor() as cur:
            step = 250_000
            for lo in range(1, n_off + 1, step):
                cur.execute(
                    OFFENSES,
                    {
                        "qi": QRADAR,
                        "dom": c["domain"],
                        "lo": offense_base + lo,
                        "hi": offense_base + min(n_off, lo + step - 1),
                        "log_sources": max(1, int(volumes["log_sources"] * f)),
                    },
                )
                conn.commit()
            offense_base += n_off
            for lo in range(1, n_inc + 1, step):
                cur.execute(
                    INCIDENTS,
                    {
                        "si": SOAR,
                        "acc": c["account"],
                        "prefix": f"{c['account']}-",
                        "lo": lo,
                        "hi": min(n_inc, lo + step - 1),
                    },
                )
                conn.commit()
            incident_base += n_inc
            for lo in range(1, n_tk + 1, step):
                cur.execute(
                    TICKETS,
                    {
                        "ii": ITSM,
                        "acc": c["account"],
                        "prefix": f"{c['account']}-t",
                        "lo": lo,
                        "hi": min(n_tk, lo + step - 1),
                        "inc_prefix": f"{c['account']}-",
                    },
                )
                conn.commit()
            cur.execute(
                METRICS,
                {
                    "qi": QRADAR,
                    "dom": c["domain"],
                    "points": points_per_sample,
                    "hours": hours if c["big"] else max(24, int(hours * f)),
                    "families": FAMILIES,
                },
            )
            cur.execute(EPS, {"qi": QRADAR, "dom": c["domain"], "base": 3000.0 if c["big"] else 300.0})
            cur.execute(
                LOG_SOURCES,
                {
                    "qi": QRADAR,
                    "dom": c["domain"],
                    "n": max(10, int(volumes["log_sources"] * f)),
                    "base": c["domain"] * 1_000_000,
                },
            )
            cur.execute(ALERTS, {"ti": c["ti"], "n": max(10, int(volumes["alerts"] * f))})
            conn.commit()
        if c["big"]:
            log(
                f"  {c['name']}: {n_off:,} offenses, {n_inc:,} incidents, {n_tk:,} tickets, "
                f"{hours * len(FAMILIES):,} metric samples x {points_per_sample} points in {time.perf_counter() - started:.0f}s"
            )
    log(f"  {small_companies} smaller companies generated")
    return {"companies": companies, "volumes": volumes, "metric_samples_per_family": hours}


def grow_offenses(conn: Any, n: int) -> None:
    """Add ``n`` offenses to the big company (ids after the highest), in steps of 250,000."""
    with conn.cursor() as cur:
        first = cur.execute("SELECT coalesce(max(offense_id), 0) + 1 FROM qradar_offense").fetchone()[0]
        step = 250_000
        for lo in range(first, first + n, step):
            started = time.perf_counter()
            cur.execute(
                OFFENSES,
                {
                    "qi": QRADAR,
                    "dom": 1,
                    "lo": lo,
                    "hi": min(first + n - 1, lo + step - 1),
                    "log_sources": 2000,
                },
            )
            conn.commit()
            log(
                f"  +{min(first + n, lo + step) - first:,} offenses ({time.perf_counter() - started:.0f}s, load {load()})"
            )


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def finish_load(conn: Any) -> None:
    from soc_tenant.readmodel.ingest import REBUILD_ROLLUPS

    with conn.cursor() as cur:
        cur.execute(
            "SELECT setval(pg_get_serial_sequence('qradar_offense', 'id'), max(id)) FROM qradar_offense"
        )
        for stmt in REBUILD_ROLLUPS:
            cur.execute(stmt)
        conn.commit()
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("VACUUM (ANALYZE)")
    conn.autocommit = False


# ----------------------------------------------------------------------------------------- serve
def serve(port: int, jwks_file: str) -> None:
    """The tenant service as deployed: one uvicorn worker on loopback (runs in a child process)."""
    set_env()
    os.environ["SOC_TENANT_CONSUMERS_ENABLED"] = "false"
    import uvicorn
    from soc_shared.security import TokenVerifier
    from soc_tenant.config import Settings
    from soc_tenant.main import create_app

    jwks = json.loads(Path(jwks_file).read_text())
    settings = Settings()
    verifier = TokenVerifier.from_keys(jwks, settings.jwt_issuer, settings.jwt_audience)
    from soc_shared.runtime import tune_gc

    app = create_app(settings, verifier=verifier)
    tune_gc()  # as the service's entry point does
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        log_config=None,
        loop="uvloop",
    )


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


async def measure(
    base_url: str, headers: dict[str, str], paths: list[tuple[str, str]], n: int
) -> list[dict[str, Any]]:
    import httpx

    out = []
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=60) as client:
        for label, path in paths:
            for _ in range(10):  # warm-up: connection, plan caches, buffers
                r = await client.get(path)
                r.raise_for_status()
            samples = []
            for _ in range(n):
                started = time.perf_counter()
                r = await client.get(path)
                samples.append((time.perf_counter() - started) * 1000)
                r.raise_for_status()
            log(f"  {label}: p50 {statistics.median(samples):.1f} ms, p95 {percentile(samples, 95):.1f} ms")
            out.append(
                {
                    "label": label,
                    "path": path,
                    "n": n,
                    "p50": statistics.median(samples),
                    "p95": percentile(samples, 95),
                    "p99": percentile(samples, 99),
                    "max": max(samples),
                    "bytes": len(r.content),
                }
            )
    return out


def _days_ago(n: int) -> str:
    return (datetime.now(UTC) - timedelta(days=n)).date().isoformat()


PATHS = [
    ("dashboard", "/tenant/dashboard/"),
    (
        "offenses: OPEN, severity>=7, newest first",
        "/tenant/offenses/?status=OPEN&severity_min=7&sort=-start_time&limit=50",
    ),
    ("offenses: first page, unfiltered", "/tenant/offenses/?limit=50"),
    ("incidents: active P1", "/tenant/soar-incidents/?status=active&priority=P1&limit=50"),
    ("tickets: open, overdue", "/tenant/itsm-tickets/?open=true&is_overdue=true&limit=50"),
    ("sla overview (30 days)", "/tenant/sla/overview/"),
    # the original product's filters and presets
    ("dashboard: month window, change figures", "/tenant/dashboard/?filter_type=3"),
    ("dashboard: week, one owner, P1", "/tenant/dashboard/?filter_type=2&owner=analyst3&priority=P1"),
    (
        "dashboard: cards only, custom range",
        f"/tenant/dashboard/?filters=total_incidents,open,closed&filter_type=9&start_date={_days_ago(90)}&end_date={_days_ago(60)}",
    ),
    ("incidents: assignee", "/tenant/soar-incidents/?assignee=ANALYST7&limit=50"),
    (
        "incidents: mitre tactic, last 30 days",
        "/tenant/soar-incidents/?mitre_tactic=TA0003&filter_type=3&limit=50",
    ),
    ("incidents: phase + playbook", "/tenant/soar-incidents/?phase=triage&playbook=pb-3&limit=50"),
    ("incidents: unassigned", "/tenant/soar-incidents/?filter=unassigned&limit=50"),
    (
        "incidents: false-positive preset, week",
        "/tenant/soar-incidents/?filter=false-positive&filter_type=2&limit=50",
    ),
    (
        "incidents: configuration item",
        "/tenant/soar-incidents/?configuration_item=host-42.&filter_type=3&limit=50",
    ),
    (
        "incidents: occurred range",
        f"/tenant/soar-incidents/?occurred_start={_days_ago(14)}&occurred_end={_days_ago(7)}&limit=50",
    ),
    ("recent incidents: use case, week", "/tenant/soar-incidents/recent/?use_case=UC-7&filter_type=2"),
    ("sla breached: TTA only, week", "/tenant/sla/breached/?sla_type=tta&filter_type=2&limit=50"),
    # the true/false-positive rule
    ("incidents: true positives only", "/tenant/soar-incidents/?false_positives=false&limit=50"),
    (
        "incidents: false positives, month",
        "/tenant/soar-incidents/?false_positives=true&filter_type=3&limit=50",
    ),
    ("sla compliance (30 days)", "/tenant/sla/compliance/"),
    (
        "offense categories: incidents, include_fp",
        "/tenant/offense-categories/?include_fp=true&filter_type=3",
    ),
    (
        "assets: sub_status + type name",
        "/tenant/assets/?sub_status=err,warn&log_source_type=type%201&limit=50",
    ),
    (
        "tickets: created_by + account_name, month",
        "/tenant/itsm-tickets/?created_by=bot&account_name=bigcorp&filter_type=3&limit=50",
    ),
    (
        "threat alerts: published range",
        f"/tenant/threat-alerts/?published_start_date={_days_ago(30)}&limit=50",
    ),
    # every other filter of the original's list, SLA, summary, vendor-tenant and asset views
    (
        "incidents: mitre technique, last 30 days",
        "/tenant/soar-incidents/?mitre_technique=T1042&filter_type=3&limit=50",
    ),
    ("incidents: mitre tactic, all time", "/tenant/soar-incidents/?mitre_tactic=TA0005&limit=50"),
    (
        "incidents: configuration item, all time",
        "/tenant/soar-incidents/?configuration_item=host-42.&limit=50",
    ),
    ("incidents: sla field, week", "/tenant/soar-incidents/?sla=2&filter_type=2&limit=50"),
    (
        "incidents: description, week",
        "/tenant/soar-incidents/?description=incident%2012&filter_type=2&limit=50",
    ),
    ("incidents: pending preset", "/tenant/soar-incidents/?filter=pending&limit=50"),
    ("incidents: closed preset, month", "/tenant/soar-incidents/?filter=closed&filter_type=3&limit=50"),
    ("incidents: error preset", "/tenant/soar-incidents/?filter=error&limit=50"),
    ("incidents: false positives, all time", "/tenant/soar-incidents/?false_positives=true&limit=50"),
    ("incidents: phase, all time", "/tenant/soar-incidents/?phase=CONTAINMENT&limit=50"),
    (
        "sla breached: P1 level, mitre tactic, month",
        "/tenant/sla/breached/?sla_level=4&mitre_tactic=TA0003&filter_type=3&limit=50",
    ),
    (
        "sla breached: ttdn achieved, assignee, month",
        "/tenant/sla/breached/?sla_type=ttdn&show_only=achieved&assignee=analyst4&filter_type=3&limit=50",
    ),
    (
        "recent incidents: use case, second page",
        "/tenant/soar-incidents/recent/?use_case=UC-7&limit=10&offset=10",
    ),
    ("summary cards: P2", "/tenant/soar-incidents/summary/?priority=P2"),
    (
        "threat alerts: created and updated ranges",
        f"/tenant/threat-alerts/?created_start_date={_days_ago(30)}&updated_start_date={_days_ago(30)}&limit=50",
    ),
    ("qradar tenants: integration", f"/tenant/qradar-tenants/?integration_id={QRADAR}"),
    ("event collectors: integration", f"/tenant/event-collectors/?integration_id={QRADAR}"),
    ("soar tenants: integration", f"/tenant/soar-tenants/?integration_id={SOAR}"),
    ("itsm tenants: integration", f"/tenant/itsm-tenants/?integration_id={ITSM}"),
    (
        "assets: average eps, last event, created range",
        f"/tenant/assets/?average_eps=1.5&last_event_date={_days_ago(0)}"
        f"&start_date={_days_ago(400)}&end_date={_days_ago(0)}&limit=50",
    ),
    ("tickets: created_by, all time", "/tenant/itsm-tickets/?created_by=soc-b&limit=50"),
]


def selected_paths(args: argparse.Namespace) -> list[tuple[str, str]]:
    if not args.only:
        return PATHS
    return [(label, path) for label, path in PATHS if any(word in label for word in args.only.split(","))]


def http_figures(args: argparse.Namespace, tokens: Any, big: dict[str, Any]) -> list[dict[str, Any]]:
    headers = (
        {"Authorization": f"Bearer {args.token}"}
        if args.token
        else tokens.headers(kind="tenant", company_id=big["id"], ttl=3600)
    )
    if args.gateway:
        return asyncio.run(measure(args.gateway.rstrip("/"), headers, selected_paths(args), args.requests))
    import httpx

    port = args.port
    jwks_file = Path(tempfile.mkdtemp()) / "jwks.json"
    jwks_file.write_text(json.dumps(tokens.jwks))
    child = subprocess.Popen(
        [sys.executable, __file__, "serve", "--port", str(port), "--jwks", str(jwks_file)]
    )
    try:
        for _ in range(300):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        return asyncio.run(measure(f"http://127.0.0.1:{port}", headers, selected_paths(args), args.requests))
    finally:
        child.terminate()
        child.wait(timeout=30)


# -------------------------------------------------------------------------------------- consumer
def _run(coroutine: Any) -> Any:
    """uvloop where installed: the service runs under uvicorn, whose event loop it is."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


_EVENTS_ANCHOR = datetime.now(UTC)


def offense_events(n: int, version: int, domain: int, first_id: int) -> list[Any]:
    from soc_shared.events import OffenseStatus, SiemOffense, make_event

    now = _EVENTS_ANCHOR  # the same start_time in every version of an offense (part of its key)
    events = []
    for k in range(n):
        oid = first_id + k
        start = now - timedelta(minutes=oid % 100_000)
        offense = SiemOffense(
            offense_id=oid,
            domain_id=domain,
            description=f"Bench offense {oid}",
            status=OffenseStatus.CLOSED if version > 1 and k % 2 else OffenseStatus.OPEN,
            severity=1 + oid % 10,
            magnitude=1 + oid % 7,
            credibility=3,
            relevance=4,
            event_count=oid % 1000,
            flow_count=oid % 10,
            categories=["Suspicious Activity"] if oid % 3 else ["Recon", "Access"],
            rules=[{"id": 100 + oid % 40}],
            source_address_ids=[oid % 1000],
            destination_networks=["Net-10-172-192"],
            start_time=start,
            last_updated_time=start + timedelta(seconds=version),
            version=version,
        )
        events.append(
            make_event(
                "siem.offense.upserted",
                offense,
                source=f"/siem-ingest/qradar/{QRADAR}",
                subject=str(oid),
                vendor_version=version,
                integration_id=QRADAR,
                vendor_tenant=domain,
            )
        )
    return events


async def consumer_figures(n: int, batch_size: int) -> dict[str, Any]:
    from soc_shared.bus import Bus
    from soc_shared.db import Database
    from soc_shared.runtime import tune_gc
    from soc_tenant.config import Settings
    from soc_tenant.readmodel import ingest

    settings = Settings(consumer_batch_size=batch_size)
    db = Database.from_settings(settings)
    bus = Bus(settings.amqp_url.get_secret_value(), service="tenant-bench")
    await bus.connect()
    app = SimpleNamespace(state=SimpleNamespace(settings=settings, db=db, bus=bus))
    # A domain of its own per run, so that a re-run never meets the offenses of the previous one.
    domain = 5000 + int(time.time()) % 4000
    first_id = domain * 1_000_000
    results: dict[str, Any] = {"events": n, "batch_size": batch_size}

    async def count(version: int) -> int:
        from sqlalchemy import text

        async with db.session() as s:
            return (
                await s.execute(
                    text(
                        "SELECT count(*) FROM qradar_offense WHERE integration_id = :i AND domain_id = :d "
                        "AND version = :v"
                    ),
                    {"i": QRADAR, "d": domain, "v": version},
                )
            ).scalar_one()

    await ingest.start_consumers(app)  # declares the queues and bindings
    await ingest.stop_consumers(app)
    tune_gc()  # the collector as the service's entry point tunes it
    for version, label in ((1, "insert"), (2, "update")):
        log(f"  building and publishing {n:,} offense events (version {version}) with the consumer stopped")
        events = offense_events(n, version, domain, first_id)
        started = time.perf_counter()
        for k in range(0, n, 1000):
            await asyncio.wait_for(bus.publish(events[k : k + 1000]), 120)
        results[f"publish_{label}_per_s"] = n / (time.perf_counter() - started)
        del events  # the consumer runs as in the service: the published events are not held here
        started = time.perf_counter()
        await ingest.start_consumers(app)
        while await count(version) < n:  # noqa: ASYNC110 - polling the database, not an in-process event
            await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - started
        await ingest.stop_consumers(app)
        results[f"consume_{label}_s"] = elapsed
        results[f"consume_{label}_per_s"] = n / elapsed
        log(f"  consumed {n:,} ({label}) in {elapsed:.1f}s = {n / elapsed:,.0f} events/s")
    # A plain COPY of the same rows (version 2) into a table of the same shape and indexes.
    rows = [ingest.offense_row(e, e.payload()) for e in offense_events(n, 2, domain, first_id)]
    target = ingest.OFFENSE
    async with db.engine.begin() as conn:
        raw = await conn.get_raw_connection()
        pg = raw.driver_connection
        async with pg.cursor() as cur:
            await cur.execute("DROP TABLE IF EXISTS bench_offense_copy")
            await cur.execute("CREATE TABLE bench_offense_copy (LIKE qradar_offense INCLUDING ALL)")
    started = time.perf_counter()
    async with db.engine.begin() as conn:
        raw = await conn.get_raw_connection()
        pg = raw.driver_connection
        async with (
            pg.cursor() as cur,
            cur.copy(f"COPY bench_offense_copy ({', '.join(target.columns)}) FROM STDIN") as copy,
        ):
            for row in rows:
                await copy.write_row(row)
    copy_s = time.perf_counter() - started
    results["copy_s"] = copy_s
    results["copy_per_s"] = n / copy_s
    async with db.engine.begin() as conn:
        raw = await conn.get_raw_connection()
        async with raw.driver_connection.cursor() as cur:
            await cur.execute("DROP TABLE bench_offense_copy")
    await bus.close()
    await db.dispose()
    return results


# ------------------------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command")
    serve_cmd = sub.add_parser("serve")
    serve_cmd.add_argument("--port", type=int, required=True)
    serve_cmd.add_argument("--jwks", required=True)
    parser.add_argument(
        "--scale", type=float, default=1.0, help="1.0 = 1M offenses, 1M incidents, 500k tickets, 10M points"
    )
    parser.add_argument("--companies", type=int, default=20, help="smaller companies besides the big one")
    parser.add_argument("--requests", type=int, default=200, help="measured requests per endpoint")
    parser.add_argument(
        "--events", type=int, default=200_000, help="offense events for the consumer measurement"
    )
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--port", type=int, default=18002)
    parser.add_argument("--gateway", help="measure through the gateway at this URL")
    parser.add_argument("--token", help="access token for --gateway (the big company's user)")
    parser.add_argument("--skip-load", action="store_true", help="reuse the data of the previous run")
    parser.add_argument("--skip-consumer", action="store_true")
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument(
        "--only", help="comma-separated words: measure only the endpoints whose label has one"
    )
    parser.add_argument("--load-only", action="store_true", help="generate the data and stop")
    parser.add_argument(
        "--offenses",
        type=int,
        help="the big company's offenses (default: 1M x scale); the others keep theirs",
    )
    parser.add_argument(
        "--grow-offenses",
        type=int,
        default=0,
        help="add this many offenses to the big company of the existing data (with --skip-load)",
    )
    args = parser.parse_args()
    if args.command == "serve":
        serve(args.port, args.jwks)
        return

    set_env()
    import psycopg
    from soc_shared.provision import provision_database, provision_vhost, role_password
    from soc_shared.testing import TokenFactory, start_local
    from soc_tenant.config import Settings
    from soc_tenant.readmodel.testing import migrate_schema

    start_local()
    settings = Settings()
    dsn = (
        f"host={settings.db_host} port={settings.db_port} dbname={BENCH_DB} user={settings.db_user} "
        f"password={settings.db_password.get_secret_value() or role_password(settings.db_user)} options=-csearch_path=tenant"
    )
    began = time.perf_counter()
    if not args.skip_load:
        log(f"fresh database {BENCH_DB} and vhost {BENCH_VHOST}; scale {args.scale}")
        provision_database(BENCH_DB, fresh=True)
        provision_vhost(BENCH_VHOST, fresh=True)
        migrate_schema(settings)
        with psycopg.connect(dsn) as conn:
            started = time.perf_counter()
            generate(conn, args.scale, args.companies, args.offenses)
            log(f"generated in {time.perf_counter() - started:.0f}s; rebuilding rollups, VACUUM ANALYZE")
            started = time.perf_counter()
            finish_load(conn)
            log(f"rollups and statistics in {time.perf_counter() - started:.0f}s")
    if args.grow_offenses:
        with psycopg.connect(dsn) as conn:
            started = time.perf_counter()
            log(f"adding {args.grow_offenses:,} offenses to the big company")
            grow_offenses(conn, args.grow_offenses)
            finish_load(conn)
            log(f"grown, rollups and statistics in {time.perf_counter() - started:.0f}s")
    with psycopg.connect(dsn) as conn:
        big = conn.execute("SELECT id::text FROM company WHERE name = 'BigCorp'").fetchone()
        counts = {
            t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in (
                "qradar_offense",
                "soar_incident",
                "itsm_ticket",
                "metric_sample",
                "eps_sample",
                "qradar_log_source",
                "ti_alert",
                "company",
            )
        }
        points = conn.execute(
            "SELECT coalesce(sum(jsonb_array_length(rows)), 0) FROM metric_sample"
        ).fetchone()[0]
        big_counts = conn.execute(
            "SELECT (SELECT count(*) FROM qradar_offense WHERE domain_id = 1), "
            "(SELECT count(*) FROM soar_incident WHERE account = 'bigcorp'), "
            "(SELECT count(*) FROM itsm_ticket WHERE account_id = 'bigcorp')"
        ).fetchone()
    log(f"rows: {counts}; metric points: {points:,}")
    log(f"big company: {big_counts[0]:,} offenses, {big_counts[1]:,} incidents, {big_counts[2]:,} tickets")
    if args.load_only:
        return

    tokens = TokenFactory(settings.jwt_issuer, settings.jwt_audience)
    if not args.skip_http:
        before = load()
        http = http_figures(args, tokens, {"id": big[0]})
        where = f"through the gateway {args.gateway}" if args.gateway else "uvicorn on loopback, 1 worker"
        print(
            f"\nHTTP latency ({where}), {args.requests} sequential requests each, big company's user "
            f"({big_counts[0]:,} offenses; load average {before} before, {load()} after):"
        )  # noqa: T201
        print(f"  {'endpoint':48} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8} {'bytes':>8}")  # noqa: T201
        for r in http:
            print(
                f"  {r['label']:48} {r['p50']:8.1f} {r['p95']:8.1f} {r['p99']:8.1f} {r['max']:8.1f} {r['bytes']:8d}"
            )  # noqa: T201
    if not args.skip_consumer:
        log("consumer throughput")
        c = _run(consumer_figures(args.events, args.batch_size))
        print(
            f"\nConsumer ({c['events']:,} offense events, batch {c['batch_size']}, bus -> PostgreSQL incl. rollups):"
        )  # noqa: T201
        print(f"  publish (confirms)          {c['publish_insert_per_s']:10,.0f} events/s")  # noqa: T201
        print(
            f"  consume, new offenses       {c['consume_insert_per_s']:10,.0f} events/s ({c['consume_insert_s']:.1f} s)"
        )  # noqa: T201
        print(
            f"  consume, newer versions     {c['consume_update_per_s']:10,.0f} events/s ({c['consume_update_s']:.1f} s)"
        )  # noqa: T201
        print(f"  plain COPY of the same rows {c['copy_per_s']:10,.0f} rows/s ({c['copy_s']:.1f} s)")  # noqa: T201
        print(
            f"  COPY / consumer             {c['copy_per_s'] / c['consume_insert_per_s']:10.2f}x (new), "  # noqa: T201
            f"{c['copy_per_s'] / c['consume_update_per_s']:.2f}x (updates)"
        )
    log(f"done in {time.perf_counter() - began:.0f}s")


if __name__ == "__main__":
    main()
