"""Threat-intel matching benchmark: a new alert with 1,000 indicators matched against a tenant with
1M offenses (their observables indexed in ``ti_observable``).

    uv run python bench/ti_match_bench.py                   # 1M offenses, 1,000 indicators, 5 alerts
    uv run python bench/ti_match_bench.py --offenses 100000

What it does (a script that prints figures, not a test):

1. a fresh database (``SOC_BENCH_DB``, default ``soc_bench_ti``), migrated;
2. one company mapped to a QRadar domain, its Cyware integration; straight in PostgreSQL
   (generate_series): N offenses' observables — one public IPv4 address each, a domain for every
   fourth — seen within the look-back window, then VACUUM ANALYZE;
3. for each of ``--alerts`` new alerts: 1,000 indicators (``--matching`` of them named by stored
   offenses, the rest unknown), run through the consumer's own code path
   (``timatch.write_and_match``) in one transaction, and prints the time per alert (observables
   merged + matches found + stored) and the matches stored.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

BENCH_DB = os.environ.get("SOC_BENCH_DB", "soc_bench_ti")
QRADAR = "bench-qradar"


def log(msg: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {msg}", flush=True)  # noqa: T201


def ip_of(g: int) -> str:
    return f"45.{(g >> 16) & 255}.{(g >> 8) & 255}.{g & 255}"


GENERATE = """
INSERT INTO ti_observable (record_type, integration_id, scope, record_key, kind, value, private, version, seen_at)
SELECT 'offense', %(q)s, '1', g::text, 'ipv4',
       '45.' || ((g >> 16) & 255) || '.' || ((g >> 8) & 255) || '.' || (g & 255), false, 1,
       now() - random() * interval '20 days'
FROM generate_series(1, %(n)s) g
UNION ALL
SELECT 'offense', %(q)s, '1', g::text, 'domain', 'host' || g || '.bench-evil.com', false, 1,
       now() - random() * interval '20 days'
FROM generate_series(4, %(n)s, 4) g
"""


async def run(args: argparse.Namespace) -> None:
    import psycopg
    from soc_shared.provision import provision_database, role_password
    from soc_tenant.config import Settings
    from soc_tenant.readmodel.testing import migrate_schema
    from soc_tenant.threatintel import matching as timatch
    from soc_tenant.threatintel.observables import Observable

    os.environ["SOC_DB_NAME"] = BENCH_DB
    settings = Settings()
    dsn = (
        f"host={settings.db_host} port={settings.db_port} dbname={BENCH_DB} user={settings.db_user} "
        f"password={settings.db_password.get_secret_value() or role_password(settings.db_user)} "
        "options=-csearch_path=tenant"
    )
    log(f"fresh database {BENCH_DB}: {args.offenses:,} offenses' observables")
    provision_database(BENCH_DB, fresh=True)
    migrate_schema(settings)
    company, integration = str(uuid.uuid4()), str(uuid.uuid4())
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO company (id, name) VALUES (%s, 'BigCorp')", (company,))
        conn.execute(
            "INSERT INTO qradar_mapping (id, company_id, integration_id, domain_id, contracted_volume_type, "
            "contracted_volume) VALUES (%s, %s, %s, 1, 'EPS', 1000)",
            (str(uuid.uuid4()), company, QRADAR),
        )
        conn.execute(
            "INSERT INTO integration (id, integration_type, subtype, instance_name, base_url, credential_kind, "
            "credentials_sealed, company_id, status) VALUES (%s, 'THREAT_INTELLIGENCE', 'CYWARE', 'bench', "
            "'https://cyware.example', 'SECRET_KEY_ACCESS_KEY', 'sealed', %s, 'active')",
            (integration, company),
        )
        started = time.perf_counter()
        conn.execute(GENERATE, {"q": QRADAR, "n": args.offenses})
        conn.execute("VACUUM ANALYZE ti_observable")
        rows = conn.execute("SELECT count(*) FROM ti_observable").fetchone()[0]
        log(f"{rows:,} observables generated and analysed in {time.perf_counter() - started:.0f}s")

    timings: list[float] = []
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        for n in range(args.alerts):
            step = max(1, args.offenses // max(1, args.matching))
            hits = [ip_of(1 + (n * 7919 + k * step) % args.offenses) for k in range(args.matching)]
            misses = [f"46.{n}.{k // 256}.{k % 256}" for k in range(args.indicators - args.matching)]
            found = [Observable("ipv4", v) for v in hits + misses]
            record = ("alert", integration, "", f"bench-{n}", 1, datetime.now(UTC), found)
            started = time.perf_counter()
            async with conn.transaction():
                matches = await timatch.write_and_match(conn, [record], record_days=30, alert_days=365)
            elapsed = time.perf_counter() - started
            timings.append(elapsed)
            log(f"alert {n}: {len(found)} indicators, {len(matches)} matches stored, {elapsed * 1000:.0f} ms")
    log(
        f"match a new alert of {args.indicators} indicators against {args.offenses:,} offenses: "
        f"median {statistics.median(timings) * 1000:.0f} ms, max {max(timings) * 1000:.0f} ms "
        f"(observables merged, matched both ways, matches stored; one transaction)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--offenses", type=int, default=1_000_000)
    parser.add_argument("--indicators", type=int, default=1_000)
    parser.add_argument("--matching", type=int, default=50, help="indicators named by stored offenses")
    parser.add_argument("--alerts", type=int, default=5)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
