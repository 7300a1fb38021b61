"""Each service's tables are declared once, and the declaration matches what its migrations build.

- drift: every service with migrations is migrated to ``head`` on a fresh PostgreSQL database, then
  Alembic's autogenerate comparison (``alembic.autogenerate.compare_metadata``, with types and
  server defaults) runs against the service's one metadata. Any difference — a table, column,
  type, nullability, default, comment, index, unique or foreign key on one side only — fails.
  The partitions of a partitioned table (created by month at run time) are left out; the
  partitioned table itself is compared.
  Autogenerate cannot see, so this test does not check, and the migrations alone define:
  row-level-security policies and ``FORCE``, grants to the API role, triggers and functions (the
  audit trail's), and the text of CHECK constraints (Alembic does not compare them; the models
  declare them for the reader).
- frozen migrations: a migration spells out its tables, policies and functions; it imports
  nothing from the services or the shared library, so editing the application never changes
  what an old migration creates.
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from soc_shared.db import migrate
from soc_shared.provision import admin_dsn, provision_database
from soc_shared.sync import ingestor_metadata
from soc_shared.testing import TEST_DB

ROOT = Path(__file__).resolve().parents[1]
MIGRATIONS = {p.parent.name: p for p in sorted(ROOT.glob("services/*/src/*/migrations"))}
DRIFT_DB = f"{TEST_DB}_drift"


def _module_metadata(module: str) -> sa.MetaData:
    return importlib.import_module(module).metadata


def _itsm_metadata() -> sa.MetaData:
    importlib.import_module("soc_itsm_ingest.oauth")
    importlib.import_module("soc_itsm_ingest.tickets")
    return ingestor_metadata(_module_metadata("soc_itsm_ingest.tables"))


# Each service's one metadata, as its migrations/env.py names it.
METADATA: dict[str, Callable[[], sa.MetaData]] = {
    "soc_auth": lambda: _module_metadata("soc_auth.models"),
    "soc_tenant": lambda: _module_metadata("soc_tenant.tables"),
    "soc_siem_ingest": ingestor_metadata,
    "soc_soar_ingest": lambda: ingestor_metadata(_module_metadata("soc_soar_ingest.state")),
    "soc_itsm_ingest": _itsm_metadata,
    "soc_threatintel": ingestor_metadata,
}


def test_every_service_with_migrations_is_compared() -> None:
    assert set(METADATA) == set(MIGRATIONS)


@pytest.fixture(scope="module")
def drift_database() -> Iterator[str]:
    provision_database(DRIFT_DB, fresh=True)
    yield DRIFT_DB
    with psycopg.connect(admin_dsn(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DRIFT_DB}" WITH (FORCE)')


def _diff(package: str, database: str, metadata: sa.MetaData) -> list[object]:
    settings = (
        importlib.import_module(f"{package}.config").Settings().model_copy(update={"db_name": database})
    )
    migrate(settings, MIGRATIONS[package])
    engine = sa.create_engine(
        settings.database_url(), connect_args={"options": f"-c search_path={settings.db_schema}"}
    )
    try:
        with engine.connect() as conn:
            # The partitions of a partitioned table are created at run time (by month): the model
            # declares the partitioned table, whose columns, keys and indexes the partitions inherit.
            partitions = set(
                conn.exec_driver_sql(
                    "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE c.relispartition AND n.nspname = current_schema()"
                ).scalars()
            )
            context = MigrationContext.configure(
                conn,
                opts={
                    "compare_type": True,
                    "compare_server_default": True,
                    "include_name": lambda name, kind, _parent: not (kind == "table" and name in partitions),
                },
            )
            return list(compare_metadata(context, metadata))
    finally:
        engine.dispose()


@pytest.mark.parametrize("package", sorted(METADATA))
def test_models_match_the_migrated_schema(package: str, drift_database: str) -> None:
    diff = _diff(package, drift_database, METADATA[package]())
    assert diff == [], (
        f"{package}: the declared tables and the migrated database differ — declare the change in the "
        "model, or add a migration for it (never edit an applied one):\n" + "\n".join(map(repr, diff))
    )


def test_the_comparison_sees_drift(drift_database: str) -> None:
    """A column the migrations never created, a changed nullability and a missing index are found."""
    metadata = sa.MetaData()
    for table in _module_metadata("soc_tenant.tables").tables.values():
        table.to_metadata(metadata)
    company = metadata.tables["company"]
    company.append_column(sa.Column("not_migrated", sa.Text))
    company.c.phone_number.nullable = False
    offense = metadata.tables["qradar_offense"]
    offense.indexes.remove(next(ix for ix in offense.indexes if ix.name == "ix_offense_offense_id"))
    diff = repr(_diff("soc_tenant", drift_database, metadata))
    assert "not_migrated" in diff
    assert "phone_number" in diff
    assert "ix_offense_offense_id" in diff


def _imported_modules(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
        elif isinstance(node, ast.ImportFrom):
            yield "." * node.level + (node.module or "")


@pytest.mark.parametrize("package", sorted(MIGRATIONS))
def test_migrations_import_nothing_from_the_application(package: str) -> None:
    versions = sorted((MIGRATIONS[package] / "versions").glob("*.py"))
    assert versions
    offending = {
        f"{path.name}: {module}"
        for path in versions
        for module in _imported_modules(path)
        if module.startswith(("soc_", ".")) or module.split(".")[0] == "importlib"
    }
    assert not offending, (
        "migrations are frozen: spell the tables, policies and functions out in the migration "
        f"instead of importing them: {sorted(offending)}"
    )
