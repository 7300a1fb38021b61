"""The default threat-intel feed: the threat-intelligence integrations whose broadcast alerts (those
addressed to no company) every company with ``is_default_threat_intel`` sees, besides its own.

``ti_default_feed`` names them (admins set it through ``/admin/threat-intel/default-feeds/``); the
row-level-security predicate of the threat-intel tables admits them for a flagged company, so the
rule holds in the database as well as in the read model's own filters.

Revision ID: 0007_default_threat_intel_feed
Revises: 0006_offense_notes
"""

from alembic import op

revision = "0007_default_threat_intel_feed"
down_revision = "0006_offense_notes"
branch_labels = None
depends_on = None

COMPANY = "current_setting('app.company_id', true)"
ADMIN = "current_setting('app.is_admin', true) = 'on'"
OWN = f"""(company_id = {COMPANY} OR (company_id IS NULL AND integration_id IN (
    SELECT i.id::text FROM integration i WHERE i.deleted_at IS NULL AND i.company_id::text = {COMPANY})))"""
# (the feed's integration belongs to another company: the app role cannot see it, so the feed
# table alone names it)
FEED = f"""(company_id IS NULL AND integration_id IN (
    SELECT f.integration_id FROM ti_default_feed f
    WHERE EXISTS (SELECT 1 FROM company c WHERE c.id::text = {COMPANY} AND c.is_default_threat_intel)))"""
TI_TABLES = ("ti_alert", "ti_tag", "ti_group", "ti_category", "ti_custom_field")


def upgrade() -> None:
    op.execute("""
CREATE TABLE ti_default_feed (
    integration_id text PRIMARY KEY,
    set_by text,
    set_at timestamptz NOT NULL DEFAULT now()
)""")
    op.execute("ALTER TABLE ti_default_feed ENABLE ROW LEVEL SECURITY")
    # every company's reads consult it; only admins change it
    op.execute("CREATE POLICY read_all ON ti_default_feed FOR SELECT USING (true)")
    op.execute(f"CREATE POLICY admin_write ON ti_default_feed FOR ALL USING ({ADMIN}) WITH CHECK ({ADMIN})")
    for table in TI_TABLES:
        op.execute(f"DROP POLICY IF EXISTS readmodel_isolation ON {table}")
        op.execute(
            f"CREATE POLICY readmodel_isolation ON {table} FOR SELECT USING ({ADMIN} OR {OWN} OR {FEED})"
        )


def downgrade() -> None:
    for table in TI_TABLES:
        op.execute(f"DROP POLICY IF EXISTS readmodel_isolation ON {table}")
        op.execute(f"CREATE POLICY readmodel_isolation ON {table} FOR SELECT USING ({ADMIN} OR {OWN})")
    op.execute("DROP TABLE IF EXISTS ti_default_feed")
