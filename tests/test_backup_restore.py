"""`make backup` / `make restore` round trip on the real servers: every row of every service schema,
the row-level-security policies and the broker's queues and bindings come back in an empty database
and vhost."""

from __future__ import annotations

import importlib
import importlib.util
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from soc_shared.db import migrate
from soc_shared.provision import admin_dsn

ROOT = Path(__file__).resolve().parents[1]
SERVICES = {
    "soc_auth": "soc_auth.config",
    "soc_tenant": "soc_tenant.config",
    "soc_siem_ingest": "soc_siem_ingest.config",
    "soc_soar_ingest": "soc_soar_ingest.config",
    "soc_itsm_ingest": "soc_itsm_ingest.config",
    "soc_threatintel": "soc_threatintel.config",
}


def _mgmt() -> httpx.Client:
    return httpx.Client(
        base_url=os.environ.get("SOC_AMQP_MGMT_URL", "http://127.0.0.1:15672"),
        auth=("soc", os.environ.get("SOC_AMQP_PASSWORD", "soc")),
        timeout=30,
        trust_env=False,
    )


def _policies(db: str) -> set[tuple[str, str, str]]:
    with psycopg.connect(admin_dsn(db)) as conn:
        return set(conn.execute("SELECT schemaname, tablename, policyname FROM pg_policies").fetchall())


def _run(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "backup.py"), *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def restored_names() -> tuple[str, str]:
    db, vhost = f"soc_restore_{uuid.uuid4().hex[:8]}", f"soc_restore_{uuid.uuid4().hex[:8]}"
    yield db, vhost
    with psycopg.connect(admin_dsn(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    with _mgmt() as client:
        client.delete(f"/api/vhosts/{vhost}")


def _script() -> Any:
    spec = importlib.util.spec_from_file_location("soc_backup_script", ROOT / "scripts" / "backup.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def source_db() -> str:
    """A database of this test alone, every service's schema migrated into it: the session's own
    database keeps changing under the other tests' consumers."""
    from soc_shared.provision import provision_database

    db = f"soc_backup_src_{uuid.uuid4().hex[:8]}"
    provision_database(db, fresh=True)
    for package, config in SERVICES.items():
        settings = importlib.import_module(config).Settings(db_name=db)
        migrate(settings, Path(importlib.import_module(package).__file__).parent / "migrations")
    yield db
    with psycopg.connect(admin_dsn(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def test_backup_restores_every_row_policy_and_queue(
    source_db: str, tmp_path: Path, restored_names: tuple[str, str]
) -> None:
    source_vhost = os.environ["SOC_AMQP_URL"].rsplit("/", 1)[1]
    marker = f"backup-{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_dsn(source_db), autocommit=True) as conn:
        conn.execute(
            "INSERT INTO siem_ingest.integration (id, subtype, instance_name, status, base_url, credential_kind, changed_at)"
            " VALUES (%s, 'qradar', 'backup test', 'active', 'https://qradar.example', 'token', now())",
            (marker,),
        )
        conn.execute(
            "INSERT INTO siem_ingest.sync_state (integration_id, resource, interval_seconds, cursor)"
            " VALUES (%s, 'offenses', 60, '{\"last_persisted_time\": 1}')",
            (marker,),
        )
    queue = f"backup.{marker}"
    with _mgmt() as client:
        client.put(
            f"/api/queues/{source_vhost}/{queue}",
            json={"durable": True, "arguments": {"x-queue-type": "quorum"}},
        ).raise_for_status()
        client.post(
            f"/api/bindings/{source_vhost}/e/amq.topic/q/{queue}",
            json={"routing_key": "siem.offense.upserted"},
        ).raise_for_status()

    backup_dir = tmp_path / "backup"
    _run("backup", "--dir", str(backup_dir), "--db", source_db, "--vhost", source_vhost)
    assert oct(backup_dir.stat().st_mode & 0o777) == "0o700"
    assert oct((backup_dir / "database.dump").stat().st_mode & 0o777) == "0o600"

    target_db, target_vhost = restored_names
    out = _run("restore", "--dir", str(backup_dir), "--db", target_db, "--vhost", target_vhost)
    assert f"into '{target_db}'" in out

    counts = _script().row_counts
    before, after = counts(source_db), counts(target_db)
    assert after == before and sum(after.values()) >= 8  # both inserts and every schema's alembic_version
    with psycopg.connect(admin_dsn(target_db)) as conn:
        cursor = conn.execute(
            "SELECT cursor FROM siem_ingest.sync_state WHERE integration_id = %s", (marker,)
        )
        assert cursor.fetchone()[0] == {"last_persisted_time": 1}
        owner = conn.execute(
            "SELECT tableowner FROM pg_tables WHERE schemaname = 'tenant' LIMIT 1"
        ).fetchone()
        assert owner is None or owner[0] == "soc_tenant"
    assert _policies(target_db) == _policies(source_db)
    with _mgmt() as client:
        q = client.get(f"/api/queues/{target_vhost}/{queue}").json()
        assert q["arguments"]["x-queue-type"] == "quorum"
        bindings = client.get(f"/api/queues/{target_vhost}/{queue}/bindings").json()
        assert {b["routing_key"] for b in bindings if b["source"] == "amq.topic"} == {"siem.offense.upserted"}
        client.delete(f"/api/queues/{source_vhost}/{queue}")


def test_restore_refuses_a_database_that_already_holds_tables(source_db: str, tmp_path: Path) -> None:
    backup_dir = tmp_path / "b"
    backup_dir.mkdir()
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "backup.py"),
            "restore",
            "--dir",
            str(backup_dir),
            "--db",
            source_db,
            "--vhost",
            "unused",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0 and "refusing to restore" in done.stderr
