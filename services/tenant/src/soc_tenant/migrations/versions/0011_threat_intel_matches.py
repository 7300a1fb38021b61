"""Threat-intel matches: the observables (indicators) of every offense, incident, ticket and alert,
and the matches between a company's records and the alerts it is entitled to.

``ti_observable`` keeps the vendor keys like the rest of the read model (record type, integration,
scope = QRadar domain / XSOAR account / SDP account / the alert's company, record key), so which
company sees a row is decided through the mappings at read time; row-level security resolves it
the same way. Look-ups go by (kind, value) over the non-private observables only.

``ti_match`` holds each (company, record, alert, indicator) once with its first and last sighting.

Revision ID: 0011_threat_intel_matches
Revises: 0010_force_row_level_security
"""

from alembic import op

revision = "0011_threat_intel_matches"
down_revision = "0010_force_row_level_security"
branch_labels = None
depends_on = None

# Frozen here (a migration never imports the application): how the owner role stays trusted.
OWNER_TRUSTED = "coalesce(current_setting('app.trusted', true), '') <> 'off'"

COMPANY = "current_setting('app.company_id', true)"
ADMIN = "current_setting('app.is_admin', true) = 'on'"
OBSERVABLE_VISIBLE = f"""(
    (record_type = 'offense' AND (integration_id, scope) IN (
        SELECT m.integration_id::text, m.domain_id::text FROM qradar_mapping m
        WHERE m.active AND m.company_id::text = {COMPANY}))
    OR (record_type = 'incident' AND (integration_id, scope) IN (
        SELECT m.integration_id::text, m.account FROM soar_mapping m
        WHERE m.active AND m.company_id::text = {COMPANY}))
    OR (record_type = 'ticket' AND (integration_id, scope) IN (
        SELECT m.integration_id::text, m.account_id::text FROM itsm_mapping m
        WHERE m.active AND m.company_id::text = {COMPANY}))
    OR (record_type = 'alert' AND (scope = {COMPANY} OR (scope = '' AND integration_id IN (
        SELECT i.id::text FROM integration i WHERE i.deleted_at IS NULL AND i.company_id::text = {COMPANY}))
        OR (scope = '' AND integration_id IN (
        SELECT f.integration_id FROM ti_default_feed f
        WHERE EXISTS (SELECT 1 FROM company c WHERE c.id::text = {COMPANY} AND c.is_default_threat_intel)))))
)"""


def upgrade() -> None:
    op.execute("""
CREATE TABLE ti_observable (
    record_type text NOT NULL CHECK (record_type IN ('offense', 'incident', 'ticket', 'alert')),
    integration_id text NOT NULL,
    scope text NOT NULL,
    record_key text NOT NULL,
    kind text NOT NULL,
    value text NOT NULL CHECK (length(value) <= 1100),
    private boolean NOT NULL DEFAULT false,
    version bigint NOT NULL,
    seen_at timestamptz NOT NULL,
    first_seen timestamptz NOT NULL DEFAULT now(),
    last_seen timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (record_type, integration_id, scope, record_key, kind, value)
);
CREATE INDEX ix_ti_observable_lookup ON ti_observable (kind, value, record_type, seen_at) WHERE NOT private;

CREATE TABLE ti_match (
    id bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    company_id uuid NOT NULL,
    record_type text NOT NULL CHECK (record_type IN ('offense', 'incident')),
    integration_id text NOT NULL,
    scope text NOT NULL,
    record_key text NOT NULL,
    alert_integration_id text NOT NULL,
    alert_short_id text NOT NULL,
    kind text NOT NULL,
    value text NOT NULL,
    first_seen timestamptz NOT NULL DEFAULT now(),
    last_seen timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (company_id, record_type, integration_id, scope, record_key,
                 alert_integration_id, alert_short_id, kind, value)
);
CREATE INDEX ix_ti_match_alert ON ti_match (alert_integration_id, alert_short_id);
""")
    policies = {
        "ti_observable": OBSERVABLE_VISIBLE,
        "ti_match": f"company_id::text = {COMPANY}",
    }
    for table, predicate in policies.items():
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY owner_trusted ON {table} TO CURRENT_USER "
            f"USING ({OWNER_TRUSTED}) WITH CHECK ({OWNER_TRUSTED})"
        )
        # SELECT only: the API role never writes the read model.
        op.execute(f"CREATE POLICY readmodel_isolation ON {table} FOR SELECT USING ({ADMIN} OR {predicate})")


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS ti_match")
    op.execute("DROP TABLE IF EXISTS ti_observable")
