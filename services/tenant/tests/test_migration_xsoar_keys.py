"""Migration 0005 on a database that already holds incidents and notes: the rows keep their data
under the new (integration, account, id) keys, and two accounts may then hold the same ids."""

from __future__ import annotations

import psycopg
import pytest
from soc_shared.db import migrate
from soc_shared.provision import admin_dsn, provision_database
from soc_shared.testing import TEST_DB
from soc_tenant.readmodel.testing import MIGRATIONS

BEFORE = "0004_read_model_filters"


def dsn(settings) -> str:
    return settings.database_url().replace("postgresql+psycopg://", "postgresql://")


@pytest.fixture(scope="module")
def old_database(settings):
    name = f"{TEST_DB}_mig0005"
    provision_database(name, fresh=True)
    s = settings.model_copy(update={"db_name": name})
    migrate(s, MIGRATIONS, BEFORE)
    with psycopg.connect(dsn(s), autocommit=True) as conn:
        conn.execute(
            "INSERT INTO soar_incident (integration_id, incident_id, account, name, status, severity, created, "
            "modified, priority, version) VALUES "
            "('x1', '7', 'acme', 'acme seven', 'active', 'high', now(), now(), 'P2', 3), "
            "('x1', '8', '', 'single tenant eight', 'active', 'low', now(), now(), 'P4', 1)"
        )
        conn.execute(
            "INSERT INTO soar_note (integration_id, note_id, incident_id, account, created, content, version) "
            "VALUES ('x1', '1@7', '7', 'acme', now(), 'first look', 1)"
        )
        conn.execute("INSERT INTO company (id, name) VALUES (gen_random_uuid(), 'Before 0005')")
    yield s
    with psycopg.connect(admin_dsn(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_existing_rows_are_rekeyed_and_accounts_may_share_ids(old_database):
    migrate(old_database, MIGRATIONS, "head")
    with psycopg.connect(dsn(old_database), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT account, incident_id, name, version, vendor_priority FROM soar_incident ORDER BY 1, 2"
        ).fetchall()
        assert rows == [("", "8", "single tenant eight", 1, "P4"), ("acme", "7", "acme seven", 3, "P2")]
        keys = conn.execute(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
            "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = 'soar_incident'::regclass AND i.indisprimary"
        ).fetchall()
        # (and created: the table is partitioned by it since 0022)
        assert {k for (k,) in keys} == {"integration_id", "account", "incident_id", "created"}
        # Another account's incident 7 and its note 1@7 now fit beside acme's.
        conn.execute(
            "INSERT INTO soar_incident (integration_id, incident_id, account, name, status, severity, created, "
            "modified, priority, version) VALUES ('x1', '7', 'globex', 'globex seven', 'active', 'high', now(), "
            "now(), 'P2', 1)"
        )
        conn.execute(
            "INSERT INTO soar_note (integration_id, note_id, incident_id, account, created, content, version) "
            "VALUES ('x1', '1@7', '7', 'globex', now(), 'other tenant', 1)"
        )
        assert conn.execute("SELECT count(*) FROM soar_note WHERE note_id = '1@7'").fetchone() == (2,)
        with pytest.raises(psycopg.errors.UniqueViolation):  # the same incident (created is part of the key)
            conn.execute(
                "INSERT INTO soar_incident (integration_id, incident_id, account, name, status, severity, "
                "created, modified, priority, version) SELECT 'x1', '7', 'acme', 'dup', 'active', 'high', "
                "created, now(), 'P2', 1 FROM soar_incident WHERE account = 'acme' AND incident_id = '7'"
            )
        # Companies created before the setting measure SLA from occurred, the original's rule.
        assert conn.execute("SELECT sla_clock_start FROM company WHERE name = 'Before 0005'").fetchone() == (
            "occurred",
        )
