"""Vendor actions on command (escalate, update, run a playbook): one row per asker's idempotency
key, recorded before any vendor call, with the outcome.

Revision ID: 0002_vendor_action
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002_vendor_action"
down_revision = "0001_initial"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "vendor_action",
        sa.Column("requested_by", sa.Text, nullable=False, comment="the asker (user id)"),
        sa.Column("idempotency_key", sa.Text, nullable=False, comment="the asker's key"),
        sa.Column("command_id", sa.Text, nullable=False, unique=True),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("integration_id", sa.Text, nullable=False),
        sa.Column("vendor_tenant", sa.Text, nullable=False),
        sa.Column("company_id", sa.Text),
        sa.Column("command", JSONB, nullable=False, comment="the command as received"),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("owner", sa.Text),
        sa.Column("lease_until", sa.DateTime(timezone=True)),
        sa.Column("sent_at", sa.DateTime(timezone=True), comment="a non-idempotent call was sent"),
        sa.Column("result", JSONB),
        sa.Column("error_category", sa.Text),
        sa.Column("error_message", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("requested_by", "idempotency_key", name="pk_vendor_action"),
        sa.CheckConstraint("state IN ('pending', 'succeeded', 'failed')", name="ck_vendor_action_state"),
    )
    op.create_index(
        "ix_vendor_action_due",
        "vendor_action",
        ["lease_until"],
        postgresql_where=sa.text("state = 'pending'"),
    )


def downgrade() -> None:
    op.drop_table("vendor_action")
