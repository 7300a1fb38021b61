"""Lookup tables that let the list filters on list and substring fields use indexes under row-level
security.

PostgreSQL applies a condition of the API role's query before the row-level-security policy (and
so as an index condition) only when its functions are leakproof: text ``=``, ``<``, ``>`` are,
``ILIKE``, ``lower()``, jsonb and array containment are not, so those filters read every row of the
company's window. The read-model consumer now also writes, in the same statement as the record:

- ``soar_incident_term``: one row per element of an incident's MITRE tactics, techniques and rules
  (lower-cased), with the incident's ``created`` and ``id`` — a MITRE or use-case filter is an
  ``=`` on this table's key, joined to the incident by ``id``;
- ``soar_incident_value`` / ``itsm_ticket_value``: the distinct configuration items, owners,
  phases and ITSM sync statuses of a SOAR account, the distinct requester and account names of an
  ITSM account — a substring or case-insensitive filter is matched against these few values, and
  the incidents/tickets are then found with ``=`` through scope-led indexes (new ones for the
  configuration item, the sync status, the requester and the account name).

Each table is visible to a company exactly as its incidents or tickets are.

Revision ID: 0019_filter_lookups
Revises: 0018_offense_addresses
"""

from alembic import op

revision = "0019_filter_lookups"
down_revision = "0018_offense_addresses"
branch_labels = None
depends_on = None

# Frozen here (a migration never imports the application).
OWNER_TRUSTED = "coalesce(current_setting('app.trusted', true), '') <> 'off'"
COMPANY = "current_setting('app.company_id', true)"
ADMIN = "current_setting('app.is_admin', true) = 'on'"
SOAR = f"""(integration_id, account) IN (
    SELECT m.integration_id::text, m.account FROM soar_mapping m WHERE m.active AND m.company_id::text = {COMPANY})"""
ITSM = f"""(integration_id, account_id) IN (
    SELECT m.integration_id::text, m.account_id::text FROM itsm_mapping m WHERE m.active AND m.company_id::text = {COMPANY})"""

TABLES = {
    "soar_incident_term": (
        """CREATE TABLE soar_incident_term (
    integration_id text NOT NULL,
    account text NOT NULL,
    field text NOT NULL,
    value text NOT NULL,
    created timestamptz NOT NULL,
    id bigint NOT NULL,
    PRIMARY KEY (integration_id, account, field, value, created, id)
)""",
        SOAR,
    ),
    "soar_incident_value": (
        """CREATE TABLE soar_incident_value (
    integration_id text NOT NULL,
    account text NOT NULL,
    field text NOT NULL,
    value text NOT NULL,
    PRIMARY KEY (integration_id, account, field, value)
)""",
        SOAR,
    ),
    "itsm_ticket_value": (
        """CREATE TABLE itsm_ticket_value (
    integration_id text NOT NULL,
    account_id text NOT NULL,
    field text NOT NULL,
    value text NOT NULL,
    PRIMARY KEY (integration_id, account_id, field, value)
)""",
        ITSM,
    ),
}

INDEXES = [
    "CREATE INDEX ix_incident_term_id ON soar_incident_term (id)",
    "CREATE INDEX ix_incident_scope_ci ON soar_incident "
    "(integration_id, account, configuration_item, created DESC, id DESC)",
    "CREATE INDEX ix_incident_scope_sync ON soar_incident "
    "(integration_id, account, itsm_sync_status, created DESC, id DESC)",
    "CREATE INDEX ix_ticket_scope_created_by ON itsm_ticket "
    "(integration_id, account_id, created_by_name, created_time DESC, id DESC)",
    "CREATE INDEX ix_ticket_scope_account_name ON itsm_ticket "
    "(integration_id, account_id, account_name, created_time DESC, id DESC)",
]

BACKFILL = [
    """INSERT INTO soar_incident_term (integration_id, account, field, value, created, id)
    SELECT DISTINCT i.integration_id, i.account, f.field, lower(f.value), i.created, i.id
    FROM soar_incident i CROSS JOIN LATERAL (
        SELECT 'mitre_tactic', jsonb_array_elements_text(i.mitre_tactics)
        UNION ALL SELECT 'mitre_technique', jsonb_array_elements_text(i.mitre_techniques)
        UNION ALL SELECT 'use_case', jsonb_array_elements_text(i.rules)
    ) AS f(field, value)
    WHERE i.id IS NOT NULL""",
    """INSERT INTO soar_incident_value (integration_id, account, field, value)
    SELECT DISTINCT integration_id, account, f.field, f.value
    FROM soar_incident CROSS JOIN LATERAL (VALUES ('configuration_item', configuration_item), ('owner', owner),
        ('phase', phase), ('itsm_sync_status', itsm_sync_status)) AS f(field, value)
    WHERE f.value IS NOT NULL""",
    """INSERT INTO itsm_ticket_value (integration_id, account_id, field, value)
    SELECT DISTINCT integration_id, account_id, f.field, f.value
    FROM itsm_ticket CROSS JOIN LATERAL (VALUES ('created_by', created_by_name), ('account_name', account_name))
         AS f(field, value)
    WHERE f.value IS NOT NULL""",
]


def upgrade() -> None:
    for table, (ddl, predicate) in TABLES.items():
        op.execute(ddl)
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY owner_trusted ON {table} TO CURRENT_USER "
            f"USING ({OWNER_TRUSTED}) WITH CHECK ({OWNER_TRUSTED})"
        )
        op.execute(f"CREATE POLICY readmodel_isolation ON {table} FOR SELECT USING ({ADMIN} OR {predicate})")
    for ddl in INDEXES:
        op.execute(ddl)
    for stmt in BACKFILL:
        op.execute(stmt)


def downgrade() -> None:
    for name in (
        "ix_ticket_scope_account_name",
        "ix_ticket_scope_created_by",
        "ix_incident_scope_sync",
        "ix_incident_scope_ci",
    ):
        op.execute(f"DROP INDEX IF EXISTS {name}")
    for table in reversed(list(TABLES)):
        op.execute(f"DROP TABLE IF EXISTS {table}")
