"""QRadar offense notes as their own record: every note of an offense as last read, replaced whole
by a later read (``siem.offense_notes.read``), so reading notes no longer rides on every offense
version. Visible to a company exactly as its offenses are (integration and QRadar domain).

Revision ID: 0013_offense_notes_resource
Revises: 0012_audit_record
"""

from alembic import op

revision = "0013_offense_notes_resource"
down_revision = "0012_audit_record"
branch_labels = None
depends_on = None

# Frozen here (a migration never imports the application): how the owner role stays trusted.
OWNER_TRUSTED = "coalesce(current_setting('app.trusted', true), '') <> 'off'"

COMPANY = "current_setting('app.company_id', true)"
ADMIN = "current_setting('app.is_admin', true) = 'on'"
QRADAR = f"""(integration_id, domain_id) IN (
    SELECT m.integration_id::text, m.domain_id FROM qradar_mapping m WHERE m.active AND m.company_id::text = {COMPANY})"""


def upgrade() -> None:
    op.execute("""
CREATE TABLE qradar_offense_notes (
    integration_id text NOT NULL,
    offense_id bigint NOT NULL,
    domain_id bigint NOT NULL,
    notes jsonb NOT NULL DEFAULT '[]'::jsonb,
    version bigint NOT NULL,
    event_id text,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (integration_id, offense_id)
)""")
    op.execute("ALTER TABLE qradar_offense_notes ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE qradar_offense_notes FORCE ROW LEVEL SECURITY")
    op.execute(
        "CREATE POLICY owner_trusted ON qradar_offense_notes TO CURRENT_USER "
        f"USING ({OWNER_TRUSTED}) WITH CHECK ({OWNER_TRUSTED})"
    )
    op.execute(
        f"CREATE POLICY readmodel_isolation ON qradar_offense_notes FOR SELECT USING ({ADMIN} OR {QRADAR})"
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS qradar_offense_notes")
