"""Integrations known to this ingestor, the per-(integration, resource) sync state, and the
per-incident war-room watermarks of the notes resource.

Revision ID: 0001_initial
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001_initial"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Integrations this ingestor serves (from tenant.integration.changed; no secret is kept here).
    op.create_table(
        "integration",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("subtype", sa.Text, nullable=False),
        sa.Column("instance_name", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("deleted", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("base_url", sa.Text, nullable=False),
        sa.Column("verify_tls", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("polling_interval_seconds", sa.Integer, nullable=False, server_default="300"),
        sa.Column("credential_kind", sa.Text, nullable=False),
        sa.Column("credentials_version", sa.Integer, nullable=False, server_default="1"),
        sa.Column("company_id", sa.Text),
        sa.Column("settings", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
    )
    # One row per (integration, resource): cursor, schedule, lease, last outcome.
    op.create_table(
        "sync_state",
        sa.Column("integration_id", sa.Text, primary_key=True),
        sa.Column("resource", sa.Text, primary_key=True),
        sa.Column("cursor", JSONB),
        sa.Column("interval_seconds", sa.Integer, nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("next_run_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("lease_owner", sa.Text),
        sa.Column("lease_until", sa.DateTime(timezone=True)),
        sa.Column("last_started_at", sa.DateTime(timezone=True)),
        sa.Column("last_success_at", sa.DateTime(timezone=True)),
        sa.Column("last_error", sa.Text),
        sa.Column("last_error_category", sa.Text),
        sa.Column("consecutive_failures", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_records", sa.Integer, nullable=False, server_default="0"),
        sa.Column("total_records", sa.BigInteger, nullable=False, server_default="0"),
    )
    op.create_index("ix_sync_state_due", "sync_state", ["next_run_at"], postgresql_where=sa.text("enabled"))
    op.create_table(
        "note_mark",
        sa.Column("integration_id", sa.Text, primary_key=True),
        sa.Column("account", sa.Text, primary_key=True),
        sa.Column("incident_id", sa.Text, primary_key=True),
        sa.Column("last_entry_at", sa.Text, nullable=False),
        sa.Column("last_entry_ns", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )


def downgrade() -> None:
    op.drop_table("note_mark")
    op.drop_table("sync_state")
    op.drop_table("integration")
