"""The read model's growing tables are partitioned by month of the vendor's time for the record,
and companies get a retention setting for them.

- ``qradar_offense`` by ``start_time`` (set by QRadar when the offense opens, never changed),
  ``metric_sample`` and ``eps_sample`` by ``window_start`` (the sample's time): PostgreSQL
  declarative partitioning (``PARTITION BY RANGE``), one partition per calendar month (UTC) named
  ``<table>_pYYYYMM``, and a ``<table>_default`` partition so that no insert ever fails for want
  of a partition. A unique key of a partitioned table must contain the partition key: the
  offense's primary key becomes (integration_id, offense_id, start_time) — the read-model
  consumer's upsert conflicts on it — and ``id`` (the API's offense number, still drawn from the
  same sequence) keeps a plain index instead of a unique constraint.
- Existing rows are copied into the partitioned tables (in this transaction: every row is kept,
  ``id`` values included). Monthly partitions are created for the months holding data (at most
  five years back; older rows go to the default partition) up to three months ahead; the tenant
  service's maintenance loop creates later months before they start.
- Row-level security is declared on the partitioned parents (ENABLE + FORCE, the same
  ``readmodel_isolation`` and ``owner_trusted`` policies as before): every query goes through the
  parent. The partitions carry no policy of their own, so the API role is denied any privilege on
  them (the default privileges of the schema would grant it).
- ``record_retention``: a company's own retention in days for these records (else the
  deployment's ``SOC_TENANT_RECORD_RETENTION_DAYS``), applied by the maintenance loop.

Revision ID: 0020_partition_read_model
Revises: 0019_filter_lookups
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0020_partition_read_model"
down_revision = "0019_filter_lookups"
branch_labels = None
depends_on = None

# Frozen here (a migration never imports the application).
APP_ROLE = "soc_tenant_app"
OWNER_TRUSTED = "coalesce(current_setting('app.trusted', true), '') <> 'off'"
ADMIN = "current_setting('app.is_admin', true) = 'on'"
QRADAR = """(integration_id, domain_id) IN (
    SELECT m.integration_id::text, m.domain_id FROM qradar_mapping m
    WHERE m.active AND m.company_id::text = current_setting('app.company_id', true))"""
MONTHS_AHEAD = 3
MONTHS_BACK_MAX = 60

OFFENSE_COLUMNS = """
    id bigint NOT NULL,
    integration_id text NOT NULL,
    offense_id bigint NOT NULL,
    domain_id bigint NOT NULL,
    description text NOT NULL,
    status text NOT NULL,
    severity smallint NOT NULL,
    magnitude smallint NOT NULL,
    credibility smallint NOT NULL,
    relevance smallint NOT NULL,
    event_count bigint NOT NULL DEFAULT 0,
    flow_count bigint NOT NULL DEFAULT 0,
    assigned_to text,
    categories jsonb NOT NULL DEFAULT '[]',
    rules jsonb NOT NULL DEFAULT '[]',
    offense_source text,
    offense_type integer,
    source_address_ids jsonb NOT NULL DEFAULT '[]',
    local_destination_address_ids jsonb NOT NULL DEFAULT '[]',
    destination_networks jsonb NOT NULL DEFAULT '[]',
    log_sources jsonb NOT NULL DEFAULT '[]',
    start_time timestamptz NOT NULL,
    last_updated_time timestamptz NOT NULL,
    close_time timestamptz,
    closing_reason_id bigint,
    closing_reason text,
    closing_user text,
    follow_up boolean NOT NULL DEFAULT false,
    protected boolean NOT NULL DEFAULT false,
    version bigint NOT NULL,
    event_id text,
    updated_at timestamptz NOT NULL DEFAULT now(),
    last_persisted_time timestamptz,
    notes jsonb,
    source_addresses jsonb NOT NULL DEFAULT '[]',
    local_destination_addresses jsonb NOT NULL DEFAULT '[]'"""

EPS_COLUMNS = """
    integration_id text NOT NULL,
    domain_id bigint NOT NULL,
    granularity text NOT NULL,
    window_start timestamptz NOT NULL,
    window_end timestamptz NOT NULL,
    collector text NOT NULL DEFAULT '',
    average_eps double precision NOT NULL,
    peak_eps double precision NOT NULL,
    version bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()"""

METRIC_COLUMNS = """
    integration_id text NOT NULL,
    domain_id bigint NOT NULL,
    family text NOT NULL,
    granularity text NOT NULL,
    window_start timestamptz NOT NULL,
    window_end timestamptz NOT NULL,
    rows jsonb NOT NULL DEFAULT '[]',
    version bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()"""

# table: (columns, partition key, primary key, indexes (name, definition), old unique constraints,
#         old indexes, old primary key)
TABLES = {
    "qradar_offense": (
        OFFENSE_COLUMNS,
        "start_time",
        "integration_id, offense_id, start_time",
        [
            ("ix_offense_id", "(id)"),
            ("ix_offense_offense_id", "(offense_id)"),
            ("ix_offense_scope_time", "(integration_id, domain_id, start_time DESC, id DESC)"),
            (
                "ix_offense_scope_status",
                "(integration_id, domain_id, status, start_time DESC) INCLUDE (severity)",
            ),
        ],
        ["qradar_offense_id_key"],
        ["ix_offense_scope_time", "ix_offense_scope_status", "ix_offense_offense_id"],
        "integration_id, offense_id",
    ),
    "eps_sample": (
        EPS_COLUMNS,
        "window_start",
        "integration_id, domain_id, granularity, window_start, collector",
        [],
        [],
        [],
        "integration_id, domain_id, granularity, window_start, collector",
    ),
    "metric_sample": (
        METRIC_COLUMNS,
        "window_start",
        "integration_id, domain_id, family, granularity, window_start",
        [],
        [],
        [],
        "integration_id, domain_id, family, granularity, window_start",
    ),
}


def _month(at: datetime, add: int = 0) -> datetime:
    n = at.year * 12 + at.month - 1 + add
    return datetime(n // 12, n % 12 + 1, 1, tzinfo=UTC)


def _rls(table: str) -> None:
    op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY owner_trusted ON {table} TO CURRENT_USER "
        f"USING ({OWNER_TRUSTED}) WITH CHECK ({OWNER_TRUSTED})"
    )
    op.execute(f"CREATE POLICY readmodel_isolation ON {table} FOR SELECT USING ({ADMIN} OR {QRADAR})")


def _partition(table: str) -> None:
    columns, key, pkey, indexes, old_uniques, old_indexes, old_pkey = TABLES[table]
    old = f"{table}_unpartitioned"
    op.execute(f"ALTER TABLE {table} RENAME TO {old}")
    for name in old_indexes:
        op.execute(f"DROP INDEX {name}")
    for name in [*old_uniques, f"{table}_pkey"]:
        op.execute(f"ALTER TABLE {old} DROP CONSTRAINT {name}")
    if table == "qradar_offense":
        op.execute("ALTER SEQUENCE qradar_offense_id_seq OWNED BY NONE")
        columns = columns.replace(
            "id bigint NOT NULL", "id bigint NOT NULL DEFAULT nextval('qradar_offense_id_seq'::regclass)", 1
        )
    op.execute(
        f"CREATE TABLE {table} ({columns},\n    CONSTRAINT {table}_pkey PRIMARY KEY ({pkey})\n) "
        f"PARTITION BY RANGE ({key})"
    )
    for name, definition in indexes:
        op.execute(f"CREATE INDEX {name} ON {table} {definition}")
    # Monthly partitions for the months holding data (at most five years back) to three ahead.
    now = datetime.now(UTC)
    oldest = op.get_bind().exec_driver_sql(f"SELECT min({key}) FROM {old}").scalar()
    first = _month(now, -1)
    if oldest is not None:
        first = max(min(_month(oldest), first), _month(now, -MONTHS_BACK_MAX))
    month = first
    while month <= _month(now, MONTHS_AHEAD):
        upper = _month(month, 1)
        part = f"{table}_p{month:%Y%m}"
        op.execute(
            f"CREATE TABLE {part} PARTITION OF {table} FOR VALUES FROM ('{month.isoformat()}') TO ('{upper.isoformat()}')"
        )
        op.execute(f"REVOKE ALL ON {part} FROM {APP_ROLE}")
        month = upper
    op.execute(f"CREATE TABLE {table}_default PARTITION OF {table} DEFAULT")
    op.execute(f"REVOKE ALL ON {table}_default FROM {APP_ROLE}")
    names = ", ".join(line.split()[0] for line in columns.strip().splitlines())
    op.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM {old}")
    op.execute(f"DROP TABLE {old}")
    if table == "qradar_offense":
        op.execute("ALTER SEQUENCE qradar_offense_id_seq OWNED BY qradar_offense.id")
    _rls(table)


def _unpartition(table: str) -> None:
    columns, _key, _pkey, indexes, _old_uniques, _old_indexes, old_pkey = TABLES[table]
    old = f"{table}_partitioned"
    op.execute(f"ALTER TABLE {table} RENAME TO {old}")
    for name, _ in indexes:
        op.execute(f"DROP INDEX {name}")
    op.execute(f"ALTER TABLE {old} DROP CONSTRAINT {table}_pkey")
    if table == "qradar_offense":
        op.execute("ALTER SEQUENCE qradar_offense_id_seq OWNED BY NONE")
        columns = columns.replace(
            "id bigint NOT NULL",
            "id bigint NOT NULL DEFAULT nextval('qradar_offense_id_seq'::regclass) UNIQUE",
            1,
        )
    op.execute(f"CREATE TABLE {table} ({columns},\n    PRIMARY KEY ({old_pkey}))")
    names = ", ".join(line.split()[0] for line in columns.strip().splitlines() if line.strip())
    op.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM {old}")
    op.execute(f"DROP TABLE {old}")
    if table == "qradar_offense":
        op.execute("ALTER SEQUENCE qradar_offense_id_seq OWNED BY qradar_offense.id")
        op.execute(
            "CREATE INDEX ix_offense_scope_time ON qradar_offense (integration_id, domain_id, start_time DESC, id DESC)"
        )
        op.execute(
            "CREATE INDEX ix_offense_scope_status ON qradar_offense (integration_id, domain_id, status, "
            "start_time DESC) INCLUDE (severity)"
        )
        op.execute("CREATE INDEX ix_offense_offense_id ON qradar_offense (offense_id)")
    _rls(table)


def upgrade() -> None:
    # The consumers write these tables under transaction-level advisory locks; the copy below
    # holds the tables' locks until the migration commits.
    for table in TABLES:
        _partition(table)

    op.create_table(
        "record_retention",
        sa.Column("company_id", sa.Uuid, primary_key=True),
        sa.Column("days", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("days >= 1 AND days <= 36500", name="ck_record_retention_days"),
    )
    op.execute("ALTER TABLE record_retention ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE record_retention FORCE ROW LEVEL SECURITY")
    op.execute(
        "CREATE POLICY owner_trusted ON record_retention TO CURRENT_USER "
        f"USING ({OWNER_TRUSTED}) WITH CHECK ({OWNER_TRUSTED})"
    )
    op.execute(f"""CREATE POLICY company_isolation ON record_retention
        USING ({ADMIN} OR company_id::text = current_setting('app.company_id', true))
        WITH CHECK ({ADMIN} OR company_id::text = current_setting('app.company_id', true))""")


def downgrade() -> None:
    op.drop_table("record_retention")
    for table in reversed(list(TABLES)):
        _unpartition(table)
