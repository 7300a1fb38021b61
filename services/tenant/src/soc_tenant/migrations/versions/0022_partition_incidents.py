"""XSOAR incidents partitioned by month of ``created`` (set by XSOAR when the incident is made,
never changed), like the offenses in 0020: ``soar_incident_pYYYYMM`` and ``soar_incident_default``.

The primary key becomes (integration_id, account, incident_id, created) — the read-model
consumer's upsert conflicts on it — and ``id`` (the API's incident number, still drawn from its
sequence) keeps a plain index instead of a unique constraint. Every index of the table is made on
the partitioned table (the filter indexes of 0019 included). Existing rows are copied (every row
kept, ids included); row-level security is declared on the partitioned table (ENABLE + FORCE, the
same policies); partitions carry no grant.

Revision ID: 0022_partition_incidents
Revises: 0021_vendor_action_expiry
"""

from datetime import UTC, datetime

from alembic import op

revision = "0022_partition_incidents"
down_revision = "0021_vendor_action_expiry"
branch_labels = None
depends_on = None

# Frozen here (a migration never imports the application).
APP_ROLE = "soc_tenant_app"
OWNER_TRUSTED = "coalesce(current_setting('app.trusted', true), '') <> 'off'"
ADMIN = "current_setting('app.is_admin', true) = 'on'"
SOAR = """(integration_id, account) IN (
    SELECT m.integration_id::text, m.account FROM soar_mapping m
    WHERE m.active AND m.company_id::text = current_setting('app.company_id', true))"""
MONTHS_AHEAD = 3
MONTHS_BACK_MAX = 60

COLUMNS = """
    id bigint NOT NULL DEFAULT nextval('soar_incident_id_seq'::regclass),
    integration_id text NOT NULL,
    incident_id text NOT NULL,
    account text NOT NULL DEFAULT '',
    name text NOT NULL,
    type text,
    status text NOT NULL,
    severity text NOT NULL,
    owner text,
    playbook_id text,
    investigation_id text,
    created timestamptz NOT NULL,
    modified timestamptz NOT NULL,
    occurred timestamptz,
    closed timestamptz,
    close_reason text,
    close_notes text,
    closing_user_id text,
    phase text,
    priority text NOT NULL,
    tta_at timestamptz,
    ttn_at timestamptz,
    ttdn_at timestamptz,
    initial_notification_at timestamptz,
    rules jsonb NOT NULL DEFAULT '[]',
    offense_ids jsonb NOT NULL DEFAULT '[]',
    log_source_types jsonb NOT NULL DEFAULT '[]',
    source_ips jsonb NOT NULL DEFAULT '[]',
    mitre_tactics jsonb NOT NULL DEFAULT '[]',
    mitre_techniques jsonb NOT NULL DEFAULT '[]',
    qradar_category text,
    qradar_subcategory text,
    low_level_categories jsonb NOT NULL DEFAULT '[]',
    configuration_item text,
    itsm_sync_status text,
    sla integer,
    custom_fields jsonb NOT NULL DEFAULT '{}',
    version bigint NOT NULL,
    event_id text,
    updated_at timestamptz NOT NULL DEFAULT now(),
    vendor_priority text"""

INDEXES = {
    "ix_incident_id": "(id)",
    "ix_incident_incident_id": "(incident_id)",
    "ix_incident_offense_ids": "USING gin (offense_ids jsonb_path_ops)",
    "ix_incident_scope_ci": "(integration_id, account, configuration_item, created DESC, id DESC)",
    "ix_incident_scope_created": "(integration_id, account, created DESC, id DESC) "
    "INCLUDE (priority, severity, status, tta_at, ttn_at, ttdn_at, closed)",
    "ix_incident_scope_occurred": "(integration_id, account, occurred DESC, id DESC)",
    "ix_incident_scope_owner": "(integration_id, account, owner, created DESC, id DESC) INCLUDE (status, priority)",
    "ix_incident_scope_phase": "(integration_id, account, phase, created DESC, id DESC)",
    "ix_incident_scope_playbook": "(integration_id, account, playbook_id, created DESC, id DESC)",
    "ix_incident_scope_status": "(integration_id, account, status, created DESC)",
    "ix_incident_scope_sync": "(integration_id, account, itsm_sync_status, created DESC, id DESC)",
}
NAMES = ", ".join(line.split()[0] for line in COLUMNS.strip().splitlines())


def _month(at: datetime, add: int = 0) -> datetime:
    n = at.year * 12 + at.month - 1 + add
    return datetime(n // 12, n % 12 + 1, 1, tzinfo=UTC)


def _rls() -> None:
    op.execute("ALTER TABLE soar_incident ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE soar_incident FORCE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY owner_trusted ON soar_incident TO CURRENT_USER "
        f"USING ({OWNER_TRUSTED}) WITH CHECK ({OWNER_TRUSTED})"
    )
    op.execute(f"CREATE POLICY readmodel_isolation ON soar_incident FOR SELECT USING ({ADMIN} OR {SOAR})")


def upgrade() -> None:
    old = "soar_incident_unpartitioned"
    op.execute(f"ALTER TABLE soar_incident RENAME TO {old}")
    for name in INDEXES:
        op.execute(f"DROP INDEX IF EXISTS {name}")
    op.execute(f"ALTER TABLE {old} DROP CONSTRAINT soar_incident_id_key, DROP CONSTRAINT soar_incident_pkey")
    op.execute("ALTER SEQUENCE soar_incident_id_seq OWNED BY NONE")
    op.execute(
        f"CREATE TABLE soar_incident ({COLUMNS},\n"
        "    CONSTRAINT soar_incident_pkey PRIMARY KEY (integration_id, account, incident_id, created)\n"
        ") PARTITION BY RANGE (created)"
    )
    for name, definition in INDEXES.items():
        op.execute(f"CREATE INDEX {name} ON soar_incident {definition}")
    now = datetime.now(UTC)
    oldest = op.get_bind().exec_driver_sql(f"SELECT min(created) FROM {old}").scalar()
    first = _month(now, -1)
    if oldest is not None:
        first = max(min(_month(oldest), first), _month(now, -MONTHS_BACK_MAX))
    month = first
    while month <= _month(now, MONTHS_AHEAD):
        upper = _month(month, 1)
        part = f"soar_incident_p{month:%Y%m}"
        op.execute(
            f"CREATE TABLE {part} PARTITION OF soar_incident "
            f"FOR VALUES FROM ('{month.isoformat()}') TO ('{upper.isoformat()}')"
        )
        op.execute(f"REVOKE ALL ON {part} FROM {APP_ROLE}")
        month = upper
    op.execute("CREATE TABLE soar_incident_default PARTITION OF soar_incident DEFAULT")
    op.execute(f"REVOKE ALL ON soar_incident_default FROM {APP_ROLE}")
    op.execute(f"INSERT INTO soar_incident ({NAMES}) SELECT {NAMES} FROM {old}")
    op.execute(f"DROP TABLE {old}")
    op.execute("ALTER SEQUENCE soar_incident_id_seq OWNED BY soar_incident.id")
    _rls()


def downgrade() -> None:
    old = "soar_incident_partitioned"
    op.execute(f"ALTER TABLE soar_incident RENAME TO {old}")
    for name in INDEXES:
        op.execute(f"DROP INDEX {name}")
    op.execute(f"ALTER TABLE {old} DROP CONSTRAINT soar_incident_pkey")
    op.execute("ALTER SEQUENCE soar_incident_id_seq OWNED BY NONE")
    op.execute(
        f"CREATE TABLE soar_incident ({COLUMNS},\n    PRIMARY KEY (integration_id, account, incident_id),\n"
        "    CONSTRAINT soar_incident_id_key UNIQUE (id))"
    )
    op.execute(f"INSERT INTO soar_incident ({NAMES}) SELECT {NAMES} FROM {old}")
    op.execute(f"DROP TABLE {old}")
    op.execute("ALTER SEQUENCE soar_incident_id_seq OWNED BY soar_incident.id")
    for name, definition in INDEXES.items():
        if name != "ix_incident_id":
            op.execute(f"CREATE INDEX {name} ON soar_incident {definition}")
    _rls()
