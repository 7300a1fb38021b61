"""Notifications: channels (sealed secrets), rules, notices (one per rule and condition), deliveries
with their attempts, in-app read marks, and the integration poll watch.

Revision ID: 0015_notifications
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

revision = "0015_notifications"
down_revision = "0015_audit_sources_retention"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)

# Frozen here (a migration never imports the application): the row-level-security DDL this
# revision applies, as 0012 spells it.
OWNER_TRUSTED = "coalesce(current_setting('app.trusted', true), '') <> 'off'"


def rls_policy_sql(table: str, column: str = "company_id") -> list[str]:
    return [
        f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY",
        f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY",
        f"DROP POLICY IF EXISTS owner_trusted ON {table}",
        f"CREATE POLICY owner_trusted ON {table} TO CURRENT_USER USING ({OWNER_TRUSTED}) WITH CHECK ({OWNER_TRUSTED})",
        f"DROP POLICY IF EXISTS company_isolation ON {table}",
        f"""CREATE POLICY company_isolation ON {table}
            USING (current_setting('app.is_admin', true) = 'on'
                   OR {column}::text = current_setting('app.company_id', true))
            WITH CHECK (current_setting('app.is_admin', true) = 'on'
                   OR {column}::text = current_setting('app.company_id', true))""",
    ]


def upgrade() -> None:
    op.create_table(
        "notify_channel",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("company_id", sa.Uuid, sa.ForeignKey("company.id", ondelete="CASCADE")),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("config", JSONB, nullable=False),
        sa.Column("secret_sealed", sa.Text),
        sa.Column("secret_version", sa.Integer, nullable=False, server_default="0"),
        sa.Column("rate_per_minute", sa.Integer, nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("consecutive_failures", sa.Integer, nullable=False, server_default="0"),
        sa.Column("parked_at", TS),
        sa.Column("park_reason", sa.Text),
        sa.Column("created_at", TS, nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", TS, nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("kind IN ('email', 'webhook', 'slack', 'teams', 'in_app')", name="ck_notify_kind"),
    )
    op.create_index("ix_notify_channel_company", "notify_channel", ["company_id"])
    op.create_table(
        "notify_rule",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("company_id", sa.Uuid, sa.ForeignKey("company.id", ondelete="CASCADE")),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("trigger", sa.Text, nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("min_offense_severity", sa.Integer),
        sa.Column("min_incident_severity", sa.Text),
        sa.Column("lead_minutes", sa.Integer),
        sa.Column("polls", sa.Integer),
        sa.Column("channel_ids", ARRAY(sa.Uuid), nullable=False),
        sa.Column("created_at", TS, nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", TS, nullable=False, server_default=sa.func.now()),
    )
    op.create_index("ix_notify_rule_trigger", "notify_rule", ["trigger", "company_id"])
    op.create_table(
        "notify_notice",
        sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
        sa.Column("company_id", sa.Uuid),
        sa.Column("rule_id", sa.Uuid, sa.ForeignKey("notify_rule.id", ondelete="CASCADE"), nullable=False),
        sa.Column("trigger", sa.Text, nullable=False),
        sa.Column("dedup_key", sa.Text, nullable=False),
        sa.Column("severity", sa.Text, nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("facts", JSONB, nullable=False),
        sa.Column("due_at", TS),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("rule_id", "dedup_key", name="uq_notify_notice_dedup"),
    )
    op.create_index("ix_notify_notice_company", "notify_notice", ["company_id", sa.text("id DESC")])
    op.create_table(
        "notify_delivery",
        sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
        sa.Column("company_id", sa.Uuid),
        sa.Column(
            "notice_id", sa.BigInteger, sa.ForeignKey("notify_notice.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column(
            "channel_id", sa.Uuid, sa.ForeignKey("notify_channel.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", TS, nullable=False),
        sa.Column("lease_until", TS),
        sa.Column("last_error", sa.Text),
        sa.Column("sent_at", TS),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("notice_id", "channel_id", name="uq_notify_delivery"),
    )
    op.create_index(
        "ix_notify_delivery_due",
        "notify_delivery",
        ["next_attempt_at"],
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index("ix_notify_delivery_channel", "notify_delivery", ["channel_id", "status"])
    op.create_table(
        "notify_attempt",
        sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
        sa.Column("company_id", sa.Uuid),
        sa.Column(
            "delivery_id",
            sa.BigInteger,
            sa.ForeignKey("notify_delivery.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("channel_id", sa.Uuid, nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("outcome", sa.Text, nullable=False),
        sa.Column("error_code", sa.Text),
        sa.Column("detail", sa.Text),
        sa.Column("duration_ms", sa.Integer, nullable=False),
    )
    op.create_index("ix_notify_attempt_delivery", "notify_attempt", ["delivery_id"])
    op.create_index("ix_notify_attempt_channel_at", "notify_attempt", ["channel_id", "at"])
    op.create_table(
        "notify_read",
        sa.Column(
            "notice_id",
            sa.BigInteger,
            sa.ForeignKey("notify_notice.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("user_id", sa.Text, primary_key=True),
        sa.Column("company_id", sa.Uuid),
        sa.Column("read_at", TS, nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "notify_sync_watch",
        sa.Column("integration_id", sa.Text, primary_key=True),
        sa.Column("resource", sa.Text, primary_key=True),
        sa.Column("failing_since", TS),
        sa.Column("empty_polls", sa.Integer, nullable=False, server_default="0"),
        sa.Column("empty_since", TS),
    )
    for table in (
        "notify_channel",
        "notify_rule",
        "notify_notice",
        "notify_delivery",
        "notify_attempt",
        "notify_read",
    ):
        for stmt in rls_policy_sql(table):
            op.execute(stmt)
    # The poll watch is the consumer's bookkeeping (owner role only).
    op.execute("""DO $$ BEGIN
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'soc_tenant_app') THEN
            REVOKE ALL ON notify_sync_watch FROM soc_tenant_app;
        END IF;
    END $$""")


def downgrade() -> None:
    for table in (
        "notify_sync_watch",
        "notify_read",
        "notify_attempt",
        "notify_delivery",
        "notify_notice",
        "notify_rule",
        "notify_channel",
    ):
        op.drop_table(table)
