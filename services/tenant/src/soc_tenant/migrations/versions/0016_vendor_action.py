"""Vendor actions asked through the portal (escalate an offense to XSOAR, update an incident, run a
playbook, note or status on an SDP request): one row per command, unique per asker and
idempotency key, with the outcome the owning ingestor reported. Row-level security keys on the
company whose record the action concerns.

Revision ID: 0016_vendor_action
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0016_vendor_action"
down_revision = "0015_notifications"
branch_labels = None
depends_on = None

# Frozen here (a migration never imports the application): the row-level-security DDL this
# revision applies, forced; the owner role passes through ``owner_trusted`` unless its session
# scoped itself to a company, the app role sees the rows of its company (admins all).
OWNER_TRUSTED = "coalesce(current_setting('app.trusted', true), '') <> 'off'"
RLS = [
    "ALTER TABLE vendor_action ENABLE ROW LEVEL SECURITY",
    "ALTER TABLE vendor_action FORCE ROW LEVEL SECURITY",
    f"CREATE POLICY owner_trusted ON vendor_action TO CURRENT_USER USING ({OWNER_TRUSTED}) "
    f"WITH CHECK ({OWNER_TRUSTED})",
    """CREATE POLICY company_isolation ON vendor_action
        USING (current_setting('app.is_admin', true) = 'on'
               OR company_id::text = current_setting('app.company_id', true))
        WITH CHECK (current_setting('app.is_admin', true) = 'on'
               OR company_id::text = current_setting('app.company_id', true))""",
]


def upgrade() -> None:
    op.create_table(
        "vendor_action",
        sa.Column("id", sa.Uuid, nullable=False, comment="the command id"),
        sa.Column("company_id", sa.Uuid, comment="the company whose record the action concerns"),
        sa.Column("requested_by", sa.Text, nullable=False),
        sa.Column("requested_by_name", sa.Text),
        sa.Column("idempotency_key", sa.Text, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("integration_id", sa.Text, nullable=False),
        sa.Column("vendor_tenant", sa.Text, nullable=False),
        sa.Column("target_type", sa.Text, nullable=False),
        sa.Column("target_id", sa.Text, nullable=False, comment="our id of the offense, incident or ticket"),
        sa.Column("params", JSONB, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("result", JSONB),
        sa.Column("error", JSONB),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("id", name="vendor_action_pkey"),
        sa.UniqueConstraint("requested_by", "idempotency_key", name="uq_vendor_action_key"),
        sa.CheckConstraint("status IN ('accepted', 'succeeded', 'failed')", name="ck_vendor_action_status"),
    )
    op.create_index("ix_vendor_action_company", "vendor_action", ["company_id", sa.text("requested_at DESC")])
    op.create_index("ix_vendor_action_target", "vendor_action", ["target_type", "target_id"])
    for stmt in RLS:
        op.execute(stmt)
    op.execute("""DO $$ BEGIN
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'soc_tenant_app') THEN
            REVOKE ALL ON vendor_action FROM soc_tenant_app;
            GRANT INSERT, SELECT, UPDATE ON vendor_action TO soc_tenant_app;
        END IF;
    END $$""")


def downgrade() -> None:
    op.drop_table("vendor_action")
