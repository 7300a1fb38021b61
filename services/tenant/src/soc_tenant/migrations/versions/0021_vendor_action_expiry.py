"""Vendor actions expire: each keeps the time past which it is no longer wanted (``expires_at``,
sent with the command so that the ingestor never starts it later), and an action without an
outcome by then ends ``expired``.

Revision ID: 0021_vendor_action_expiry
Revises: 0020_partition_read_model
"""

import sqlalchemy as sa
from alembic import op

revision = "0021_vendor_action_expiry"
down_revision = "0020_partition_read_model"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "vendor_action",
        sa.Column(
            "expires_at",
            sa.DateTime(timezone=True),
            comment="without an outcome by then the action ends expired",
        ),
    )
    op.drop_constraint("ck_vendor_action_status", "vendor_action", type_="check")
    op.create_check_constraint(
        "ck_vendor_action_status", "vendor_action", "status IN ('accepted', 'succeeded', 'failed', 'expired')"
    )
    op.create_index(
        "ix_vendor_action_expiry",
        "vendor_action",
        ["expires_at"],
        postgresql_where=sa.text("status = 'accepted'"),
    )


def downgrade() -> None:
    op.drop_index("ix_vendor_action_expiry", table_name="vendor_action")
    op.execute("UPDATE vendor_action SET status = 'failed' WHERE status = 'expired'")
    op.drop_constraint("ck_vendor_action_status", "vendor_action", type_="check")
    op.create_check_constraint(
        "ck_vendor_action_status", "vendor_action", "status IN ('accepted', 'succeeded', 'failed')"
    )
    op.drop_column("vendor_action", "expires_at")
