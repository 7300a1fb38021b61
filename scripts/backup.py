"""Backup and restore of the suite's state: the PostgreSQL database (every service's schema, its
grants and row-level-security policies, in pg_dump's custom format) and the RabbitMQ vhost's
definitions (exchanges, quorum queues, bindings, policies). Messages in flight are not part of a
backup: the ingestors' cursors advance only after a confirmed publish, so a restored suite re-reads
from the vendors whatever was in flight.

    python scripts/backup.py backup [--dir .local/backups/<UTC time>]
    python scripts/backup.py restore --dir <backup dir> [--db <empty or new database>] [--vhost <vhost>]

Connection settings are the suite's (SOC_DB_HOST, SOC_DB_PORT, SOC_DB_NAME, SOC_PG_ADMIN_USER,
SOC_PG_ADMIN_PASSWORD, SOC_AMQP_MGMT_URL, SOC_AMQP_ADMIN_USER, SOC_AMQP_PASSWORD).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import psycopg
from psycopg import sql
from soc_shared.provision import SERVICE_SCHEMAS, admin_dsn, provision_database

ROOT = Path(__file__).resolve().parents[1]
PG_BIN = Path(os.environ.get("SOC_PG_BIN", "/usr/lib/postgresql/15/bin"))


def _pg_tool(name: str) -> str:
    local = PG_BIN / name
    return str(local) if local.exists() else (shutil.which(name) or name)


def _pg_env() -> dict[str, str]:
    return {
        **os.environ,
        "PGHOST": os.environ.get("SOC_DB_HOST", "127.0.0.1"),
        "PGPORT": os.environ.get("SOC_DB_PORT", "55432"),
        "PGUSER": os.environ.get("SOC_PG_ADMIN_USER", "soc_admin"),
        "PGPASSWORD": os.environ.get("SOC_PG_ADMIN_PASSWORD", "soc_admin"),
    }


def _mgmt() -> httpx.Client:
    return httpx.Client(
        base_url=os.environ.get("SOC_AMQP_MGMT_URL", "http://127.0.0.1:15672"),
        auth=(os.environ.get("SOC_AMQP_ADMIN_USER", "soc"), os.environ.get("SOC_AMQP_PASSWORD", "soc")),
        timeout=30,
        trust_env=False,
    )


def row_counts(db: str, conn: psycopg.Connection | None = None) -> dict[str, int]:
    """Rows per table of every service schema: what a restore is checked against."""
    if conn is None:
        with psycopg.connect(admin_dsn(db), autocommit=True) as own:
            return row_counts(db, own)
    counts: dict[str, int] = {}
    tables = conn.execute(
        "SELECT schemaname, tablename FROM pg_tables WHERE schemaname = ANY(%s) ORDER BY 1, 2",
        (list(SERVICE_SCHEMAS),),
    ).fetchall()
    for schema, table in tables:
        query = sql.SQL("SELECT count(*) FROM {}.{}").format(sql.Identifier(schema), sql.Identifier(table))
        counts[f"{schema}.{table}"] = conn.execute(query).fetchone()[0]
    return counts


def backup(target: Path, db: str, vhost: str) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    os.chmod(target, 0o700)  # the dump holds sealed credentials and password hashes
    dump = target / "database.dump"
    # The suite keeps writing while it is backed up: the dump and the row counts of the manifest
    # read one snapshot (exported by this transaction, which stays open until pg_dump is done).
    with psycopg.connect(admin_dsn(db)) as conn:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        snapshot = conn.execute("SELECT pg_export_snapshot()").fetchone()[0]
        subprocess.run(
            [
                _pg_tool("pg_dump"),
                "--format=custom",
                "--no-password",
                f"--snapshot={snapshot}",
                f"--file={dump}",
                f"--dbname={db}",
            ],
            env=_pg_env(),
            check=True,
        )
        rows = row_counts(db, conn)
        conn.rollback()
    os.chmod(dump, 0o600)
    with _mgmt() as client:
        r = client.get(f"/api/definitions/{vhost}")
        r.raise_for_status()
        (target / "broker-definitions.json").write_text(json.dumps(r.json(), indent=1, sort_keys=True))
    manifest = {"taken_at": dt.datetime.now(dt.UTC).isoformat(), "database": db, "vhost": vhost, "rows": rows}
    (target / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))
    return target


def restore(source: Path, db: str, vhost: str) -> dict[str, int]:
    """Into an empty (or new) database and vhost: roles and schemas as provisioning makes them,
    then the dump replaces the schemas' contents, then the broker definitions are loaded."""
    with psycopg.connect(admin_dsn(), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db,)).fetchone()
    if exists:
        with psycopg.connect(admin_dsn(db), autocommit=True) as conn:
            tables = conn.execute(
                "SELECT count(*) FROM pg_tables WHERE schemaname = ANY(%s)", (list(SERVICE_SCHEMAS),)
            ).fetchone()[0]
        if tables:
            sys.exit(
                f"refusing to restore into {db!r}: it already has {tables} tables (restore into an empty database)"
            )
    provision_database(db)
    subprocess.run(
        [
            _pg_tool("pg_restore"),
            "--no-password",
            "--clean",
            "--if-exists",
            "--exit-on-error",
            "--single-transaction",
            f"--dbname={db}",
            str(source / "database.dump"),
        ],
        env=_pg_env(),
        check=True,
    )
    definitions = json.loads((source / "broker-definitions.json").read_text())
    with _mgmt() as client:
        client.put(f"/api/vhosts/{vhost}", json={"description": "SOC Portal"}).raise_for_status()
        client.post(f"/api/definitions/{vhost}", json=definitions).raise_for_status()
    restored = row_counts(db)
    expected = json.loads((source / "manifest.json").read_text())["rows"]
    missing = {t: (n, restored.get(t)) for t, n in expected.items() if restored.get(t) != n}
    if missing:
        sys.exit(f"restore incomplete: table (expected, restored): {missing}")
    return restored


def main() -> None:
    parser = argparse.ArgumentParser(prog="scripts/backup.py")
    parser.add_argument("command", choices=["backup", "restore"])
    parser.add_argument("--dir", type=Path)
    parser.add_argument("--db", default=os.environ.get("SOC_DB_NAME", "soc"))
    parser.add_argument("--vhost", default=os.environ.get("SOC_AMQP_VHOST", "soc"))
    args = parser.parse_args()
    if args.command == "backup":
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        path = backup(args.dir or ROOT / ".local" / "backups" / stamp, args.db, args.vhost)
        print(f"backup written to {path}")
    else:
        if args.dir is None:
            parser.error("restore needs --dir <backup folder>")
        rows = restore(args.dir, args.db, args.vhost)
        print(
            f"restored {sum(rows.values())} rows in {len(rows)} tables into {args.db!r}, vhost {args.vhost!r}"
        )


if __name__ == "__main__":
    main()
