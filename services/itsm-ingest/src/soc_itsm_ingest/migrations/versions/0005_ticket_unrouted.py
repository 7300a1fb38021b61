"""Open incidents of XSOAR accounts not mapped yet, kept so that a mapping made later applies to
them (reconsidered by the ticket reconciler), not only to their next change.

Revision ID: 0005_ticket_unrouted
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0005_ticket_unrouted"
down_revision = "0004_oauth_token"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ticket_unrouted",
        sa.Column("soar_integration_id", sa.Text, nullable=False),
        sa.Column("soar_account", sa.Text, nullable=False),
        sa.Column("incident_id", sa.Text, nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("incident", JSONB, nullable=False, comment="the incident as last delivered"),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint(
            "soar_integration_id", "soar_account", "incident_id", name="pk_ticket_unrouted"
        ),
    )


def downgrade() -> None:
    op.drop_table("ticket_unrouted")
