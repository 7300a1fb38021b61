"""Threat-intel backfill and rematch benchmark: records per second through the backfill (stored
offenses and alerts extracted and matched in batches, ``threatintel/backfill.py``) and through a
rematch pass (a company's entitlement grows: its stored records matched again).

    uv run python bench/ti_backfill_bench.py                    # 100k offenses, 400 alerts
    uv run python bench/ti_backfill_bench.py --offenses 500000

What it does (a script that prints figures, not a test):

1. a fresh database (``SOC_BENCH_DB``, default ``soc_bench_ti_backfill``), migrated;
2. one company (``is_default_threat_intel`` off) mapped to a QRadar domain, its own Cyware
   integration, and a default feed owned by another company; straight in PostgreSQL
   (generate_series): N offenses as siem-ingest stores them — a public source address, source and
   local destination addresses (one public, two private), description, categories, rules and a log
   source naming addresses — seen within the look-back window; half the alerts broadcast by the
   company's own integration, half by the default feed, each naming 20 of the offenses' addresses
   (defanged) and 20 unknown ones. Nothing extracted yet: the state after an upgrade;
3. the backfill to the end (the service's code path, batches of 500, no bus): records per second,
   and the matches it finds (the own integration's alerts);
4. the company's flag switched on (as the admin API writes it), then one rematch pass: the stored
   offenses matched again per second, and the new matches (the default feed's alerts); a second
   pass (nothing new) for the cost of a pass that finds nothing.

The machine's load average is printed beside each figure (``os.getloadavg``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

BENCH_DB = os.environ.get("SOC_BENCH_DB", "soc_bench_ti_backfill")
QRADAR = "bench-qradar"


def log(msg: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {msg}", flush=True)  # noqa: T201


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.1f} {five:.1f} {fifteen:.1f}"


def ip_of(g: int) -> str:
    return f"45.{(g >> 16) & 255}.{(g >> 8) & 255}.{g & 255}"


OFFENSES = """
INSERT INTO qradar_offense (integration_id, offense_id, domain_id, description, status, severity, magnitude,
    credibility, relevance, event_count, categories, rules, offense_source, offense_type, source_address_ids,
    local_destination_address_ids, source_addresses, local_destination_addresses, log_sources, start_time,
    last_updated_time, version)
SELECT %(q)s, g, 1,
       'Suspicious outbound traffic from ' || ip || ' to 10.20.' || (g %% 200) || '.' || (g %% 250 + 1),
       CASE WHEN g %% 3 = 0 THEN 'CLOSED' ELSE 'OPEN' END, 5, 5, 5, 5, 10 + g %% 500,
       '["Suspicious Activity", "Network Sweep"]'::jsonb,
       '[{"id": 100405, "type": "CRE_RULE", "name": "Outbound to known bad hosts"}]'::jsonb,
       ip, 0, jsonb_build_array(g, g + 1), jsonb_build_array(g %% 2000 + 1),
       jsonb_build_array(ip, '10.20.' || (g %% 40) || '.' || (g %% 248 + 2)),
       jsonb_build_array('10.20.' || (100 + g %% 8) || '.' || (g %% 250 + 1)),
       jsonb_build_array(jsonb_build_object('id', 112, 'name', 'Firewall @ 10.20.0.1')),
       seen - interval '1 hour', seen, g
FROM (SELECT g, '45.' || ((g >> 16) & 255) || '.' || ((g >> 8) & 255) || '.' || (g & 255) AS ip,
             now() - random() * interval '20 days' AS seen
      FROM generate_series(1, %(n)s) g) s
"""


async def run(args: argparse.Namespace) -> None:
    import psycopg
    from soc_shared.db import Database
    from soc_shared.provision import provision_database, role_password
    from soc_tenant.config import Settings
    from soc_tenant.readmodel.testing import migrate_schema
    from soc_tenant.threatintel import backfill as tibackfill

    os.environ["SOC_DB_NAME"] = BENCH_DB
    settings = Settings()
    dsn = (
        f"host={settings.db_host} port={settings.db_port} dbname={BENCH_DB} user={settings.db_user} "
        f"password={settings.db_password.get_secret_value() or role_password(settings.db_user)} "
        "options=-csearch_path=tenant"
    )
    log(f"fresh database {BENCH_DB}: {args.offenses:,} offenses, {args.alerts} alerts")
    provision_database(BENCH_DB, fresh=True)
    migrate_schema(settings)
    company, other = str(uuid.uuid4()), str(uuid.uuid4())
    own, feed = str(uuid.uuid4()), str(uuid.uuid4())
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO company (id, name, is_default_threat_intel) VALUES (%s, 'BigCorp', false), "
            "(%s, 'FeedCo', false)",
            (company, other),
        )
        conn.execute(
            "INSERT INTO qradar_mapping (id, company_id, integration_id, domain_id, contracted_volume_type, "
            "contracted_volume) VALUES (%s, %s, %s, 1, 'EPS', 1000)",
            (str(uuid.uuid4()), company, QRADAR),
        )
        for integration, owner in ((own, company), (feed, other)):
            conn.execute(
                "INSERT INTO integration (id, integration_type, subtype, instance_name, base_url, "
                "credential_kind, credentials_sealed, company_id, status) VALUES (%s, 'THREAT_INTELLIGENCE', "
                "'CYWARE', %s, 'https://cyware.example', 'SECRET_KEY_ACCESS_KEY', 'sealed', %s, 'active')",
                (integration, f"bench-{integration[:8]}", owner),
            )
        conn.execute("INSERT INTO ti_default_feed (integration_id, set_by) VALUES (%s, 'bench')", (feed,))
        started = time.perf_counter()
        conn.execute(OFFENSES, {"q": QRADAR, "n": args.offenses})
        with conn.cursor() as cur:
            rows = []
            for a in range(args.alerts):
                named = [ip_of(1 + (a * 7919 + k * 104729) % args.offenses) for k in range(20)]
                unknown = [f"46.{a % 256}.{k}.{a // 256 + 1}" for k in range(20)]
                content = "<p>Seen beaconing: " + ", ".join(i.replace(".", "[.]") for i in named + unknown)
                rows.append(
                    (
                        own if a % 2 == 0 else feed,
                        f"bench-{a}",
                        f"Campaign {a}",
                        "AMBER",
                        datetime.now(UTC) - timedelta(days=a % 30),
                        content + "</p>",
                    )
                )
            cur.executemany(
                "INSERT INTO ti_alert (integration_id, short_id, title, tlp, published_time, content, version) "
                "VALUES (%s, %s, %s, %s, %s, %s, 1)",
                rows,
            )
        conn.execute("VACUUM ANALYZE qradar_offense")
        conn.execute("VACUUM ANALYZE ti_alert")
        log(f"generated in {time.perf_counter() - started:.0f}s")

    db = Database.from_settings(settings)
    try:
        log(f"backfill: {load()}")
        started = time.perf_counter()
        totals = await tibackfill.backfill(db, batch=args.batch)
        elapsed = time.perf_counter() - started
        log(
            f"backfill: {totals['walked']:,} records walked ({totals['extracted']:,} extracted) in {elapsed:.1f}s "
            f"= {totals['walked'] / elapsed:,.0f} records/s, {totals['matches']:,} matches; {load()}"
        )
        with psycopg.connect(dsn, autocommit=True) as conn:
            observables = conn.execute("SELECT count(*) FROM ti_observable").fetchone()[0]
            conn.execute("VACUUM ANALYZE ti_observable")
            conn.execute(
                "UPDATE company SET is_default_threat_intel = true, updated_at = now() WHERE id = %s",
                (company,),
            )
        log(f"{observables:,} observables stored; the company's default-feed flag switched on")
        since = datetime.now(UTC) - timedelta(seconds=5)
        for label in ("rematch after the flag", "second rematch pass"):
            log(f"{label}: {load()}")
            started = time.perf_counter()
            found = await tibackfill.rematch_mappings(db, since, batch=args.batch)
            elapsed = time.perf_counter() - started
            log(
                f"{label}: {args.offenses:,} stored offenses matched again in {elapsed:.1f}s "
                f"= {args.offenses / elapsed:,.0f} records/s, {found:,} new matches; {load()}"
            )
    finally:
        await db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--offenses", type=int, default=100_000)
    parser.add_argument("--alerts", type=int, default=400)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
