"""Audit store benchmark: the retention purge over a large store, and how fast the store files
other services' records (the consumer's own code path, without the broker).

    uv run python bench/audit_bench.py                      # 1M records over 800 days
    uv run python bench/audit_bench.py --records 200000

What it does (a script that prints figures, not a test):

1. a fresh database (``SOC_BENCH_DB``, default ``soc_bench_audit``), migrated;
2. N records spread evenly over 800 days, a tenth of them for 50 companies of which 10 keep their
   own 30-day retention (generate_series, then VACUUM ANALYZE);
3. ``audit_record_purge`` with a retention nothing exceeds (36,500 days: the scan alone), then with
   400 days (what it deletes), and prints both times;
4. ``--filed`` ``audit.recorded`` events filed in batches of 500 by ``file_records`` (twice: the
   second pass files nothing — each event once), and prints records per second.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

BENCH_DB = os.environ.get("SOC_BENCH_DB", "soc_bench_audit")

GENERATE = """
INSERT INTO audit_record (at, company_id, actor_id, actor_username, actor_kind, action, target_type,
                          target_id, after)
SELECT now() - make_interval(secs => (g::float8 / %(n)s) * 800 * 86400),
       CASE WHEN g %% 10 = 0 THEN (%(companies)s::uuid[])[1 + (g / 10) %% 50] END,
       'bench', 'bench', 'admin', 'company.updated', 'company', g::text, '{"industry": "Energy"}'::jsonb
FROM generate_series(1, %(n)s) g
"""


def log(msg: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {msg}", flush=True)  # noqa: T201


async def run(args: argparse.Namespace) -> None:
    import psycopg
    from soc_shared.db import Database
    from soc_shared.events import AuditRecorded, make_event
    from soc_shared.provision import provision_database, role_password
    from soc_tenant.audit.views import file_records, purge
    from soc_tenant.config import Settings
    from soc_tenant.readmodel.testing import migrate_schema

    os.environ["SOC_DB_NAME"] = BENCH_DB
    settings = Settings()
    dsn = (
        f"host={settings.db_host} port={settings.db_port} dbname={BENCH_DB} user={settings.db_user} "
        f"password={settings.db_password.get_secret_value() or role_password(settings.db_user)} "
        "options=-csearch_path=tenant"
    )
    log(f"fresh database {BENCH_DB}: {args.records:,} audit records over 800 days")
    provision_database(BENCH_DB, fresh=True)
    migrate_schema(settings)
    companies = [str(uuid.uuid4()) for _ in range(50)]
    with psycopg.connect(dsn, autocommit=True) as conn:
        started = time.perf_counter()
        conn.execute(GENERATE, {"n": args.records, "companies": companies})
        for company in companies[:10]:
            conn.execute("INSERT INTO audit_retention (company_id, days) VALUES (%s, 30)", (company,))
        conn.execute("VACUUM ANALYZE audit_record")
        log(f"generated and analysed in {time.perf_counter() - started:.0f}s")

    db = Database.from_settings(settings)
    try:
        for days in (36_500, 400):
            started = time.perf_counter()
            purged = await purge(db, days)
            log(
                f"purge with a {days}-day retention over {args.records:,} records: {purged:,} deleted "
                f"in {time.perf_counter() - started:.2f}s"
            )

        def delivery(n: int) -> SimpleNamespace:
            payload = AuditRecorded(
                at=datetime.now(UTC),
                actor_id=str(uuid.uuid4()),
                actor_username="bench",
                actor_kind="admin",
                action="user.updated",
                target_type="user",
                target_id=str(n),
                before={"full_name": "A"},
                after={"full_name": "B", "password": "never-stored"},
            )
            envelope = make_event("audit.recorded", payload, source="/auth", subject=f"user/{n}")
            return SimpleNamespace(envelope=envelope, payload=payload, routing_key="audit.recorded")

        batch = [delivery(n) for n in range(args.filed)]
        for label in ("new", "re-delivered"):
            started = time.perf_counter()
            filed = 0
            for i in range(0, len(batch), 500):
                filed += await file_records(db, batch[i : i + 500])  # type: ignore[arg-type]
            elapsed = time.perf_counter() - started
            log(
                f"filed {filed:,} of {len(batch):,} {label} events in {elapsed:.2f}s ({len(batch) / elapsed:,.0f}/s)"
            )
    finally:
        await db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--filed", type=int, default=20_000)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
